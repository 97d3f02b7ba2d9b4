package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// specRecorder starts nothing: it records the processes started, ready at
// once, and runs one-off commands (preflight, release) with run.
type specRecorder struct {
	noSupervisor
	run func(spec supervisor.Spec) int

	mu      sync.Mutex
	started []supervisor.Spec
}

func (s *specRecorder) Start(ctx context.Context, spec supervisor.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started = append(s.started, spec)
	return nil
}

func (s *specRecorder) Run(ctx context.Context, spec supervisor.Spec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if s.run == nil {
		return 0, nil
	}
	return s.run(spec), nil
}

// deployable returns a Manager with app "shop", whose main branch holds
// files, and the store and supervisor behind it.
func deployable(t *testing.T, files map[string]string) (*Manager, *store.Store, *specRecorder) {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sup := &specRecorder{}
	m, err := New(Config{Root: t.TempDir(), Store: st, Router: nopRouter{}, Supervisor: sup, Executable: "/bin/false"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.ensureApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(work, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"add", "-A"},
		{"-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "v1"},
		{"push", "-q", m.paths.repo("shop"), "HEAD:refs/heads/main"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %s: %v\n%s", args[0], err, out)
		}
	}
	return m, st, sup
}

// A failed deploy tells its failure once, and returns it marked as told,
// so the command that asked does not print it again.
func TestDeployFailureReportedOnce(t *testing.T) {
	m, st, _ := deployable(t, map[string]string{"README": "no Procfile here\n"})
	var b bytes.Buffer
	err := m.Deploy(context.Background(), "shop", DeployOptions{Actor: "alice"}, ui.New(&b, false))
	if err == nil || !strings.Contains(err.Error(), "no Procfile") {
		t.Fatalf("deploy without a Procfile: %v\n%s", err, b.String())
	}
	if !ui.IsReported(err) {
		t.Errorf("the failure was printed but not marked as told: %v", err)
	}
	if n := strings.Count(b.String(), " !     no Procfile"); n != 1 {
		t.Errorf("the failure line was printed %d times, want once:\n%s", n, b.String())
	}
	rels, err := st.Releases(context.Background(), "shop")
	if err != nil || len(rels) != 1 || rels[0].Status != store.Failed {
		t.Errorf("releases after a failed deploy: %+v, %v", rels, err)
	}
}

// A deploy reads the app's config and the release's ENV and .env once,
// before its build: the build runs the app's code, which may rewrite .env,
// and config:set may change the config meanwhile, but the processes get
// what the build was given (ENV expanded for each as it should be).
func TestDeployReadsSettingsOnce(t *testing.T) {
	m, st, sup := deployable(t, map[string]string{
		"Procfile": "worker: sleep 600\npreflight: rewrite the settings\n",
		".env":     "FROM_DOTENV=committed\n",
		"ENV":      "FROM_ENV=$DATA_ROOT/up\n",
	})
	ctx := context.Background()
	if err := st.SetConfig(ctx, "shop", map[string]string{"GREETING": "before"}); err != nil {
		t.Fatal(err)
	}
	var preflight map[string]string
	sup.run = func(spec supervisor.Spec) int {
		preflight = envMap(spec.Env)
		if err := os.WriteFile(filepath.Join(spec.Dir, ".env"), []byte("FROM_DOTENV=rewritten\n"), 0o644); err != nil {
			t.Error(err)
		}
		if err := os.WriteFile(filepath.Join(spec.Dir, "ENV"), []byte("FROM_ENV=rewritten\n"), 0o644); err != nil {
			t.Error(err)
		}
		if err := st.SetConfig(ctx, "shop", map[string]string{"GREETING": "after"}); err != nil {
			t.Error(err)
		}
		return 0
	}
	var b bytes.Buffer
	if err := m.Deploy(ctx, "shop", DeployOptions{Actor: "alice"}, ui.New(&b, false)); err != nil {
		t.Fatalf("deploy: %v\n%s", err, b.String())
	}
	if preflight == nil {
		t.Fatalf("the preflight command did not run:\n%s", b.String())
	}
	// The build's view: piku's variables stay as written.
	want := map[string]string{"FROM_DOTENV": "committed", "FROM_ENV": "$DATA_ROOT/up", "GREETING": "before"}
	for k, v := range want {
		if preflight[k] != v {
			t.Errorf("preflight %s = %q, want %q", k, preflight[k], v)
		}
	}
	sup.mu.Lock()
	defer sup.mu.Unlock()
	if len(sup.started) != 1 {
		t.Fatalf("started %d processes, want the worker", len(sup.started))
	}
	got := envMap(sup.started[0].Env)
	want = map[string]string{"FROM_DOTENV": "committed", "FROM_ENV": m.paths.data("shop") + "/up", "GREETING": "before"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("worker %s = %q, want %q", k, got[k], v)
		}
	}
}

func envMap(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
