package store

import (
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
)

// TestConcurrentWriters runs writers from many goroutines over two Store
// handles on one file, as the daemon and the CLI do, and expects every call
// to succeed and release numbers never to repeat.
func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hop3.db")

	// Two fresh handles opening at once must not trip over the migration.
	var stores [2]*Store
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for i := range stores {
		wg.Go(func() {
			s, err := Open(path)
			if err != nil {
				errs <- err
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range stores {
		t.Cleanup(func() { s.Close() })
	}
	if n := count(t, stores[0], "schema_migrations"); n != len(migrations()) {
		t.Fatalf("schema_migrations has %d rows, want %d", n, len(migrations()))
	}
	mustApp(t, stores[0], "web")

	const workers, rounds = 8, 10
	errs = make(chan error, 2*workers*rounds*8)
	numbers := make(chan int, 2*workers*rounds)
	for si, s := range stores {
		for w := range workers {
			wg.Go(func() {
				id := fmt.Sprintf("s%dw%d", si, w)
				for r := range rounds {
					rel, err := s.CreateRelease(ctx, "web", id, id)
					if err != nil {
						errs <- err
						continue
					}
					numbers <- rel.Number
					if err := s.FinishRelease(ctx, "web", rel.Number, Succeeded, "", "{}"); err != nil {
						errs <- err
					}
					k := fmt.Sprintf("%s_%d", id, r)
					if err := s.SetConfig(ctx, "web", map[string]string{k: k, "SHARED": id}); err != nil {
						errs <- err
					}
					if err := s.SetScale(ctx, "web", map[string]int{"web": r}); err != nil {
						errs <- err
					}
					if err := s.AddEvent(ctx, Event{App: "web", Kind: "deploy", Actor: id}); err != nil {
						errs <- err
					}
					if err := s.AddDomains(ctx, "web", []string{"shared.example.com", k + ".example.com"}); err != nil {
						errs <- err
					}
					if _, err := s.Config(ctx, "web"); err != nil {
						errs <- err
					}
					if _, err := s.Releases(ctx, "web"); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	close(numbers)
	for err := range errs {
		t.Error(err)
	}

	var got []int
	for n := range numbers {
		got = append(got, n)
	}
	sort.Ints(got)
	total := len(stores) * workers * rounds
	if len(got) != total {
		t.Fatalf("got %d releases, want %d", len(got), total)
	}
	for i, n := range got {
		if n != i+1 {
			t.Fatalf("release numbers %v are not 1..%d", got, total)
		}
	}
	cfg, err := stores[1].Config(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg) != total+1 {
		t.Errorf("config has %d vars, want %d", len(cfg), total+1)
	}
	evs, err := stores[1].Events(ctx, "web", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != total {
		t.Errorf("got %d events, want %d", len(evs), total)
	}
	if err := stores[0].Check(ctx); err != nil {
		t.Error(err)
	}
}
