package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// fakeSupervisor runs nothing: a started process is at once ready, and
// stays running until it is stopped or drained. It records, in order, what
// the orchestrator asked of it, so tests can tell which generation was
// started, which was drained and what ran before the switch.
type fakeSupervisor struct {
	mu      sync.Mutex
	running map[string]supervisor.Spec
	since   map[string]time.Time // when each running process started
	started []supervisor.Spec
	ran     []supervisor.Spec
	calls   []string // "start NAME", "stop NAME", "drain NAME", "run NAME"
	// failKind, when set, makes starts of that Procfile entry fail, as a
	// process that exits at once would.
	failKind string
	// serving, when set (serveSockets), gives each started process with a
	// socket an HTTP server on it, so requests through the app's stable
	// socket link reach the generation that runs.
	serving bool
	servers map[string]*http.Server
	// reported holds processes the supervisor lists in a state the test
	// chose (crashed, backing off), as it would after their exits.
	reported map[string]supervisor.Status
}

var _ Supervisor = (*fakeSupervisor)(nil)

func newFakeSupervisor() *fakeSupervisor {
	return &fakeSupervisor{
		running:  map[string]supervisor.Spec{},
		since:    map[string]time.Time{},
		servers:  map[string]*http.Server{},
		reported: map[string]supervisor.Status{},
	}
}

// serveSockets makes every later start of a process with a socket listen
// on it and answer each request with the process's name, until the
// process is stopped or drained or the test ends. Socket paths must stay
// short (a temporary root from os.MkdirTemp, not t.TempDir).
func (s *fakeSupervisor) serveSockets(t *testing.T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serving = true
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for name, srv := range s.servers {
			srv.Close()
			delete(s.servers, name)
		}
	})
}

// report makes the supervisor list st (and answer Status for its name)
// until it is stopped or drained, as a process in st.State would be.
func (s *fakeSupervisor) report(st supervisor.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reported[st.Name] = st
}

func (s *fakeSupervisor) Start(ctx context.Context, spec supervisor.Spec) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "start "+spec.Name)
	s.started = append(s.started, spec)
	if s.failKind != "" && spec.Labels["kind"] == s.failKind {
		return &supervisor.StartError{Name: spec.Name, Err: errors.New("exited after 10ms (exit status 1)")}
	}
	if s.serving && spec.Socket != "" {
		ln, err := net.Listen("unix", spec.Socket)
		if err != nil {
			return &supervisor.StartError{Name: spec.Name, Err: err}
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, spec.Name)
		})}
		go srv.Serve(ln)
		s.servers[spec.Name] = srv
	}
	s.running[spec.Name] = spec
	s.since[spec.Name] = time.Now()
	return nil
}

// age makes every running process look started d earlier.
func (s *fakeSupervisor) age(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, t := range s.since {
		s.since[name] = t.Add(-d)
	}
}

func (s *fakeSupervisor) Stop(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "stop "+name)
	return s.end(name)
}

// Drain ends the process at once: the fake has no requests to wait for.
func (s *fakeSupervisor) Drain(name string, _ supervisor.Drain) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "drain "+name)
	return s.end(name)
}

// end removes process name, closing its server; s.mu is held.
func (s *fakeSupervisor) end(name string) error {
	if _, ok := s.reported[name]; ok {
		delete(s.reported, name)
		return nil
	}
	if _, ok := s.running[name]; !ok {
		return supervisor.ErrNotFound
	}
	if srv, ok := s.servers[name]; ok {
		srv.Close()
		delete(s.servers, name)
	}
	delete(s.running, name)
	return nil
}

func (s *fakeSupervisor) Status(name string) (supervisor.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.reported[name]; ok {
		return st, true
	}
	spec, ok := s.running[name]
	return supervisor.Status{Name: name, Labels: spec.Labels, State: supervisor.Running}, ok
}

func (s *fakeSupervisor) List() []supervisor.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []supervisor.Status
	for name, spec := range s.running {
		out = append(out, supervisor.Status{Name: name, Labels: spec.Labels, State: supervisor.Running, StartedAt: s.since[name]})
	}
	for _, st := range s.reported {
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b supervisor.Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Run records a one-off command (release, preflight, run) and reports
// success without running it.
func (s *fakeSupervisor) Run(ctx context.Context, spec supervisor.Spec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, "run "+spec.Name)
	s.ran = append(s.ran, spec)
	return 0, nil
}

// last returns the spec of the most recent start.
func (s *fakeSupervisor) last() supervisor.Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started[len(s.started)-1]
}

// names lists the running processes of app, sorted.
func (s *fakeSupervisor) names(app string) []string {
	var out []string
	for _, st := range s.List() {
		if st.Labels["app"] == app {
			out = append(out, st.Name)
		}
	}
	return out
}

// runningSpecs returns the running processes of app, sorted by name.
func (s *fakeSupervisor) runningSpecs(app string) []supervisor.Spec {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []supervisor.Spec
	for _, spec := range s.running {
		if spec.Labels["app"] == app {
			out = append(out, spec)
		}
	}
	slices.SortFunc(out, func(a, b supervisor.Spec) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// record returns a copy of every call so far, in order, and the one-off
// commands run.
func (s *fakeSupervisor) record() (calls []string, ran []supervisor.Spec) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), slices.Clone(s.ran)
}

// callsOf returns the recorded calls of one verb ("start", "drain", ...).
func (s *fakeSupervisor) callsOf(verb string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		if v, name, _ := strings.Cut(c, " "); v == verb {
			out = append(out, name)
		}
	}
	return out
}

func (s *fakeSupervisor) setFailKind(kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failKind = kind
}

// fakeRouter records every route set and removed, as Caddy would be told.
type fakeRouter struct {
	mu      sync.Mutex
	set     []router.Route
	removed []string
}

var _ Router = (*fakeRouter)(nil)

func (r *fakeRouter) Set(ctx context.Context, route router.Route) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set = append(r.set, route)
	return nil
}

func (r *fakeRouter) Remove(ctx context.Context, app string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.removed = append(r.removed, app)
	return nil
}

// routes returns the routes set for app (every app: ""), oldest first.
func (r *fakeRouter) routes(app string) []router.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []router.Route
	for _, route := range r.set {
		if app == "" || route.App == app {
			out = append(out, route)
		}
	}
	return out
}

// unitManager is a Manager over a real store in a temporary root, with a
// fake supervisor and router.
type unitManager struct {
	m   *Manager
	st  *store.Store
	sup *fakeSupervisor
	rt  *fakeRouter
}

func newUnitManager(t *testing.T) *unitManager {
	t.Helper()
	root := t.TempDir()
	st, err := store.Open(filepath.Join(root, "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u := &unitManager{st: st, sup: newFakeSupervisor(), rt: &fakeRouter{}}
	u.m, err = New(Config{Root: root, Store: st, Router: u.rt, Supervisor: u.sup})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// releaseDir is where release n of app is checked out and built.
func (u *unitManager) releaseDir(app string, n int) string { return u.m.paths.Release(app, n) }

// currentDir is the link that names app's live release.
func (u *unitManager) currentDir(app string) string { return u.m.paths.Current(app) }

// webSocketLink is the stable socket Caddy reaches app's wsgi/asgi process at.
func (u *unitManager) webSocketLink(app string) string { return u.m.paths.WebSocket(app) }

// current returns the release directory app's current link names.
func (u *unitManager) current(t *testing.T, app string) string {
	t.Helper()
	target, err := os.Readlink(u.currentDir(app))
	if err != nil {
		t.Fatalf("read the current link of %s: %v", app, err)
	}
	return filepath.Join(filepath.Dir(u.currentDir(app)), target)
}

// addRelease records a built, succeeded release of app (created when
// missing) whose directory holds only procfileText, as a deploy leaves
// it, without building anything, and returns its number. build is the
// recorded build metadata (JSON).
func (u *unitManager) addRelease(t *testing.T, app, procfileText, build string) int {
	t.Helper()
	ctx := t.Context()
	if _, err := u.st.App(ctx, app); errors.Is(err, store.ErrNotFound) {
		if err := u.m.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	rel, err := u.st.CreateRelease(ctx, app, strings.Repeat("c0ffee", 6)+"ab", "alice")
	if err != nil {
		t.Fatal(err)
	}
	dir := u.releaseDir(app, rel.Number)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte(procfileText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := u.st.FinishRelease(ctx, app, rel.Attempt, store.Succeeded, "", build); err != nil {
		t.Fatal(err)
	}
	return rel.Number
}

// goLive activates release n of app as a deploy's switch would, and
// returns what it printed.
func (u *unitManager) goLive(t *testing.T, app string, n int) string {
	t.Helper()
	ctx := t.Context()
	r, err := u.m.loadRelease(ctx, app, n)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := u.m.activate(ctx, r, nil, ui.New(&out, false)); err != nil {
		t.Fatalf("activate v%d of %s: %v\n%s", n, app, err, out.String())
	}
	return out.String()
}

// commit makes a commit of files on app's main branch (creating the app
// when missing), as a push would leave its repository, and returns the
// revision.
func (u *unitManager) commit(t *testing.T, app string, files map[string]string) string {
	t.Helper()
	ctx := t.Context()
	if _, err := u.st.App(ctx, app); errors.Is(err, store.ErrNotFound) {
		if err := u.m.Create(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	for name, content := range files {
		path := filepath.Join(work, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", work}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	git("add", "-A")
	git("commit", "-q", "-m", "app")
	git("push", "-q", "--force", u.m.paths.Repo(app), "main")
	return git("rev-parse", "HEAD")
}
