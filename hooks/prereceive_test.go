package hooks

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUpdates(t *testing.T) {
	tests := []struct {
		name, in string
		want     []Update
		bad      bool
	}{
		{name: "one", in: ZeroRev + " abc refs/heads/main\n", want: []Update{{Ref: "refs/heads/main", Old: ZeroRev, New: "abc"}}},
		{name: "two and a blank line", in: "a b refs/heads/main\n\nc d refs/tags/v1\n", want: []Update{{Ref: "refs/heads/main", Old: "a", New: "b"}, {Ref: "refs/tags/v1", Old: "c", New: "d"}}},
		{name: "empty", in: ""},
		{name: "short line", in: "a b\n", bad: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseUpdates(strings.NewReader(tc.in))
			if (err != nil) != tc.bad {
				t.Fatalf("err = %v, want error %v", err, tc.bad)
			}
			if !tc.bad && !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The hook hands its updates and git's quarantine variables (nothing else
// of its environment) to the gate, and exits with the verdict.
func TestGateRoundTrip(t *testing.T) {
	for _, verdict := range []int{0, 1} {
		g, err := Listen(filepath.Join(t.TempDir(), "gates"))
		if err != nil {
			t.Fatal(err)
		}
		env := []string{g.Env(), "GIT_QUARANTINE_PATH=/r/objects/incoming-1", "GIT_OBJECT_DIRECTORY=/r/objects/incoming-1",
			"GIT_ALTERNATE_OBJECT_DIRECTORIES=/r/objects", "SECRET=x"}
		code := make(chan int, 1)
		var stderr strings.Builder
		go func() { code <- RunPreReceive(strings.NewReader("a b refs/heads/main\n"), env, &stderr) }()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		p, err := g.Wait(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if want := []Update{{Ref: "refs/heads/main", Old: "a", New: "b"}}; !reflect.DeepEqual(p.Updates, want) {
			t.Errorf("updates = %+v", p.Updates)
		}
		if want := env[1:4]; !reflect.DeepEqual(p.Env, want) {
			t.Errorf("env = %q, want %q", p.Env, want)
		}
		if err := p.Reply(verdict); err != nil {
			t.Fatal(err)
		}
		if got := <-code; got != verdict {
			t.Errorf("hook exited %d, want %d (%s)", got, verdict, stderr.String())
		}
		g.Close()
	}
}

// A hook whose daemon is gone refuses the push; so does one run by hand.
func TestHookWithoutDaemonRefuses(t *testing.T) {
	g, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	env := []string{g.Env()}
	g.Close()
	for _, env := range [][]string{env, nil} {
		var stderr strings.Builder
		if code := RunPreReceive(strings.NewReader("a b refs/heads/main\n"), env, &stderr); code == 0 {
			t.Errorf("hook with env %q accepted the push", env)
		}
		if !strings.HasPrefix(stderr.String(), " !     push refused") {
			t.Errorf("stderr = %q", stderr.String())
		}
	}
}

// Wait gives up when its context ends (git ended without the hook).
func TestGateWaitCancelled(t *testing.T) {
	g, err := Listen(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.Wait(ctx); err == nil {
		t.Fatal("Wait returned a push after its context ended")
	}
}
