package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"hop3/runtime/supervisor"
)

// gatedSupervisor is a fakeSupervisor whose starts of a held app's
// processes wait until the test opens that app's gate, as a real start
// waits until the process is ready. It tells the test when each start
// begins, and counts the starts under way.
type gatedSupervisor struct {
	*fakeSupervisor
	begun chan string              // the app of each start, as it begins
	gates map[string]chan struct{} // closed: the app's starts may finish

	mu       sync.Mutex
	underway int // starts begun and not yet returned
	most     int // the most starts ever under way at once
}

func (s *gatedSupervisor) Start(ctx context.Context, spec supervisor.Spec) error {
	s.mu.Lock()
	s.underway++
	s.most = max(s.most, s.underway)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.underway--
		s.mu.Unlock()
	}()
	app := spec.Labels["app"]
	s.begun <- app
	if gate, ok := s.gates[app]; ok {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.fakeSupervisor.Start(ctx, spec)
}

// mostAtOnce is the most starts that were ever under way at once.
func (s *gatedSupervisor) mostAtOnce() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.most
}

// lockedBuffer is a log destination several goroutines may write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// restartedManager is a unitManager as hop3 finds it after a restart: each
// app of procfiles has a live release and nothing runs. Starts of the held
// apps wait for their gates; what the manager logs goes to the returned
// buffer.
func restartedManager(t *testing.T, procfiles map[string]string, held ...string) (*unitManager, *gatedSupervisor, *lockedBuffer) {
	t.Helper()
	u := newUnitManager(t)
	for app, text := range procfiles {
		n := u.addRelease(t, app, text, "{}")
		if err := u.st.SetLiveRelease(t.Context(), app, n); err != nil {
			t.Fatal(err)
		}
	}
	g := &gatedSupervisor{fakeSupervisor: u.sup, begun: make(chan string, 64), gates: map[string]chan struct{}{}}
	for _, app := range held {
		g.gates[app] = make(chan struct{})
	}
	u.m.cfg.Supervisor = g
	logs := &lockedBuffer{}
	u.m.log = slog.New(slog.NewTextHandler(logs, nil))
	return u, g, logs
}

// TestRestoreStartsAppsSideBySide holds both apps' processes short of
// ready: only a restore that starts the second app before the first is
// ready sees both starts begin. Once let through, both are live again and
// routed to their own port: ports and routes are handed out to both at
// once (the race detector watches).
func TestRestoreStartsAppsSideBySide(t *testing.T) {
	t.Parallel()
	procfiles := map[string]string{"alpha": "web: exec sleep 60\n", "beta": "web: exec sleep 60\n"}
	u, g, _ := restartedManager(t, procfiles, "alpha", "beta")
	done := make(chan error, 1)
	go func() { done <- u.m.Restore(t.Context()) }()

	// Not a measure of speed: one app after another would never begin
	// the second start while the first waits, however long this waits.
	begun := map[string]bool{}
	giveUp := time.After(time.Minute)
	for len(begun) < 2 {
		select {
		case app := <-g.begun:
			begun[app] = true
		case <-giveUp:
			for _, gate := range g.gates {
				close(gate)
			}
			<-done
			t.Fatalf("only %v began to start while it was not ready yet: apps are restored one after another", begun)
		}
	}
	for _, gate := range g.gates {
		close(gate)
	}
	if err := <-done; err != nil {
		t.Fatalf("restore: %v", err)
	}
	ports := map[string]bool{}
	for app := range procfiles {
		specs := u.sup.runningSpecs(app)
		if len(specs) != 1 {
			t.Fatalf("%s runs %+v after the restore, want its one web process", app, specs)
		}
		if got := u.current(t, app); got != u.releaseDir(app, 1) {
			t.Errorf("current of %s -> %s, want v1's directory", app, got)
		}
		port := specs[0].Labels["port"]
		want := []string{"127.0.0.1:" + port}
		if routes := u.rt.routes(app); len(routes) != 1 || !slices.Equal(routes[0].Upstreams, want) {
			t.Errorf("%s routed %+v, want one route to %v", app, routes, want)
		}
		if ports[port] {
			t.Errorf("both apps were given port %s", port)
		}
		ports[port] = true
	}
}

// TestRestoreFailureLeavesOthers breaks one app of three, in each way a
// restore can fail: the others come back, and the error and the log name
// the broken app.
func TestRestoreFailureLeavesOthers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		breakApp func(u *unitManager)
		want     string // in the returned error
	}{
		{"process exits at once", func(u *unitManager) { u.sup.setFailKind("broken") }, "broken.1 did not start"},
		{"release directory gone", func(u *unitManager) {
			if err := os.RemoveAll(u.releaseDir("bravo", 1)); err != nil {
				t.Fatal(err)
			}
		}, "Procfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			procfiles := map[string]string{
				"alpha":   "worker: exec sleep 60\n",
				"bravo":   "broken: exec sleep 60\n",
				"charlie": "worker: exec sleep 60\n",
			}
			// alpha is held until bravo has failed: its failure must not
			// cut short a start under way either.
			u, g, logs := restartedManager(t, procfiles, "alpha")
			tt.breakApp(u)
			done := make(chan error, 1)
			go func() { done <- u.m.Restore(t.Context()) }()
			failed := logged(logs, "app=bravo")
			close(g.gates["alpha"])
			if !failed {
				<-done
				t.Fatalf("bravo did not fail while alpha waited to be ready: apps are restored one after another:\n%s", logs)
			}

			err := <-done
			if err == nil || !strings.Contains(err.Error(), "bravo: ") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("restore returned %v, want bravo's failure naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "alpha") || strings.Contains(err.Error(), "charlie") {
				t.Errorf("restore blames the healthy apps: %v", err)
			}
			for _, app := range []string{"alpha", "charlie"} {
				if names := u.sup.names(app); len(names) != 1 {
					t.Errorf("%s runs %q after bravo failed, want its one worker", app, names)
				}
			}
			if names := u.sup.names("bravo"); len(names) != 0 {
				t.Errorf("broken bravo runs %q", names)
			}
			log := logs.String()
			for _, want := range []string{`msg="restore app" app=bravo`, `msg="app restored" app=alpha`, `msg="app restored" app=charlie`} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %s:\n%s", want, log)
				}
			}
		})
	}
}

// logged waits until the log holds want, and reports whether it came.
// Not a measure of speed: a restore that waits for a held app before it
// turns to the next never writes it, however long this waits.
func logged(logs *lockedBuffer, want string) bool {
	giveUp := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(giveUp) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestRestoreCapsAppsAtOnce restores more apps than the cap with every
// start held short of ready. The test runs in a synctest bubble, so that
// synctest.Wait returns only once every start that can begin has begun:
// a restore that ignored the cap would have every app's start under way
// at the first wait. Held starts are then let through one at a time, and
// each must let exactly one more app begin, until every app is live.
func TestRestoreCapsAppsAtOnce(t *testing.T) {
	t.Parallel()
	if got, want := restoreLimit(), min(2*runtime.NumCPU(), 8); got != want {
		t.Fatalf("restoreLimit() = %d, want min(2 × %d cores, 8) = %d", got, runtime.NumCPU(), want)
	}
	tests := []struct {
		name  string
		limit int // 0: Restore with its own cap, restoreLimit
		apps  int
	}{
		{"one at a time", 1, 3},
		{"three at once", 3, 7},
		{"Restore's own cap", 0, restoreLimit() + 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				procfiles := map[string]string{}
				var names []string
				for i := range tt.apps {
					name := fmt.Sprintf("app%02d", i)
					procfiles[name] = "web: exec sleep 60\n"
					names = append(names, name)
				}
				u, g, logs := restartedManager(t, procfiles, names...)
				limit, restore := tt.limit, func() error { return u.m.restoreApps(t.Context(), tt.limit) }
				if tt.limit == 0 {
					limit, restore = restoreLimit(), func() error { return u.m.Restore(t.Context()) }
				}
				done := make(chan error, 1)
				go func() { done <- restore() }()

				var held []string // apps whose start is under way, oldest first
				released := 0
				var err error
				for finished := false; !finished; {
					synctest.Wait()
					for len(g.begun) > 0 {
						held = append(held, <-g.begun)
					}
					// Every app not yet let through has begun, up to the cap.
					if want := min(limit, tt.apps-released); len(held) != want {
						t.Errorf("%d starts under way at once with %d apps let through, want %d", len(held), released, want)
					}
					select {
					case err = <-done:
						finished = true
						continue
					default:
					}
					if len(held) == 0 {
						t.Fatalf("restore waits with no start under way:\n%s", logs)
					}
					close(g.gates[held[0]])
					held = held[1:]
					released++
				}
				if err != nil {
					t.Fatalf("restore: %v", err)
				}
				if most := g.mostAtOnce(); most != limit {
					t.Errorf("at most %d starts were under way at once, want the cap, %d", most, limit)
				}
				for _, app := range names {
					if specs := u.sup.runningSpecs(app); len(specs) != 1 {
						t.Errorf("%s runs %+v after the restore, want its one web process", app, specs)
					}
				}
			})
		})
	}
}
