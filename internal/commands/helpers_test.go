package commands

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"hop3/gitserver"
	"hop3/internal/hostclaim"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// fakeBackend stands in for the orchestrator: it records what it was asked
// and keeps app records in the real store, as the orchestrator does.
type fakeBackend struct {
	st   *store.Store
	root string

	mu      sync.Mutex
	calls   []string
	procs   map[string][]supervisor.Status
	liveEnv map[string]string
	fail    error  // returned by the methods that change an app
	say     string // a failure line Restart prints before returning fail
	told    bool   // Restart marks fail as reported (ui.Reported), as the orchestrator does
	runCode int
}

var _ Backend = (*fakeBackend)(nil)

func (f *fakeBackend) record(format string, a ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
	return f.fail
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// DiskTotal reports 3 MiB for every app but one not measured yet.
func (f *fakeBackend) DiskTotal(app string) (int64, bool) {
	if app == "unmeasured" {
		return 0, false
	}
	return 3 << 20, true
}

func (f *fakeBackend) URL(app string) string { return "http://" + app + ".localhost:8080/" }

func (f *fakeBackend) Create(ctx context.Context, app string) error {
	if err := f.record("Create %s", app); err != nil {
		return err
	}
	_, err := f.st.CreateApp(ctx, app)
	return err
}

func (f *fakeBackend) Destroy(ctx context.Context, app string, purge bool) error {
	if err := f.record("Destroy %s purge=%v", app, purge); err != nil {
		return err
	}
	return f.st.DeleteApp(ctx, app)
}

func (f *fakeBackend) Deploy(ctx context.Context, app string, noCache bool, actor string, admin bool, out *ui.Writer) error {
	return f.record("Deploy %s nocache=%v actor=%s", app, noCache, actor)
}

func (f *fakeBackend) Restart(ctx context.Context, app string, out *ui.Writer) error {
	if f.say != "" {
		out.Fail(f.say)
	}
	err := f.record("Restart %s", app)
	if f.told {
		return ui.Reported(err)
	}
	return err
}

func (f *fakeBackend) StopApp(ctx context.Context, app string, out *ui.Writer) error {
	return f.record("StopApp %s", app)
}

func (f *fakeBackend) StartApp(ctx context.Context, app string, out *ui.Writer) error {
	return f.record("StartApp %s", app)
}

func (f *fakeBackend) Scale(ctx context.Context, app string, counts map[string]int, out *ui.Writer) error {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, k+"="+countLabel(counts[k]))
	}
	return f.record("Scale %s %s", app, strings.Join(parts, " "))
}

// ValidateScale refuses auto for any kind but wsgi, as the orchestrator
// does for entries Granian does not serve.
func (f *fakeBackend) ValidateScale(ctx context.Context, app string, counts map[string]int) error {
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if counts[k] == store.ScaleAuto && k != "wsgi" {
			return fmt.Errorf("scale %s=auto: only wsgi/asgi entries are scaled automatically", k)
		}
	}
	return nil
}

func (f *fakeBackend) Rollback(ctx context.Context, app string, number int, actor string, out *ui.Writer) error {
	return f.record("Rollback %s %d actor=%s", app, number, actor)
}

func (f *fakeBackend) ApplyConfig(ctx context.Context, app string, out *ui.Writer) error {
	return f.record("ApplyConfig %s", app)
}

func (f *fakeBackend) Processes(app string) []supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.procs[app])
}

func (f *fakeBackend) LiveEnv(ctx context.Context, app string) (map[string]string, error) {
	if err := f.record("LiveEnv %s", app); err != nil {
		return nil, err
	}
	return f.liveEnv, nil
}

// RunOneOff echoes its argv to stdout and its stdin to stderr.
// ValidateConfig applies the host rule as the orchestrator does, against the
// other apps' domains and HOST_NAME in the store, as an admin or not.
func (f *fakeBackend) ValidateConfig(ctx context.Context, app string, vars map[string]string, admin bool) error {
	if strings.Contains(vars["STATIC_PATHS"], "..") {
		return fmt.Errorf("STATIC_PATHS entry %q: the directory leaves the app", vars["STATIC_PATHS"])
	}
	apps, err := f.st.Apps(ctx)
	if err != nil {
		return err
	}
	var held []hostclaim.Held
	for _, a := range apps {
		hosts, _ := f.st.Domains(ctx, a.Name)
		config, _ := f.st.Config(ctx, a.Name)
		hosts = append(hosts, strings.Fields(strings.ReplaceAll(config["HOST_NAME"], ",", " "))...)
		for _, h := range hosts {
			held = append(held, hostclaim.Held{App: a.Name, Host: h})
		}
	}
	for _, h := range strings.Fields(strings.ReplaceAll(vars["HOST_NAME"], ",", " ")) {
		if err := (hostclaim.Rule{Domain: "localhost"}).Check(app, strings.ToLower(h), admin, held); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeBackend) RunTerminal(ctx context.Context, app string, argv []string, rw io.ReadWriter, term string, size supervisor.WinSize, resize <-chan supervisor.WinSize) (int, error) {
	if err := f.record("RunTerminal %s %q %s", app, argv, term); err != nil {
		return 0, err
	}
	return 0, nil
}

func (f *fakeBackend) RunOneOff(ctx context.Context, app string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if err := f.record("RunOneOff %s %q", app, argv); err != nil {
		return 0, err
	}
	fmt.Fprintln(stdout, strings.Join(argv, " "))
	io.Copy(stderr, stdin)
	return f.runCode, nil
}

func (f *fakeBackend) BuildLog(app string, rel store.Release) string {
	return filepath.Join(f.root, "builds", app, strconv.Itoa(rel.Attempt)+".log")
}

func (f *fakeBackend) UpdateRoute(ctx context.Context, app string) error {
	return f.record("UpdateRoute %s", app)
}

// env is a dispatcher over a fresh store and root.
type env struct {
	t    *testing.T
	d    *Dispatcher
	st   *store.Store
	be   *fakeBackend
	root string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	st, err := store.Open(filepath.Join(root, "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	be := &fakeBackend{st: st, root: root, procs: map[string][]supervisor.Status{}}
	d, err := New(Config{Backend: be, Store: st, Root: root, Domain: "localhost", Version: "1.2.3", GranianVersion: "2.8.7"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, d: d, st: st, be: be, root: root}
}

var (
	admin = gitserver.Identity{Name: "alice", Admin: true}
	bob   = gitserver.Identity{Name: "bob", Apps: []string{"mine"}}
)

type result struct {
	stdout, stderr string
	code           int
}

// run runs one command as id with stdin.
func (e *env) run(id gitserver.Identity, stdin string, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := e.d.Run(context.Background(), &gitserver.Session{
		Identity: id,
		Args:     args,
		Stdin:    strings.NewReader(stdin),
		Stdout:   &out,
		Stderr:   &errb,
	})
	return result{out.String(), errb.String(), code}
}

// ok runs a command as admin and fails the test unless it succeeds.
func (e *env) ok(args ...string) result {
	e.t.Helper()
	r := e.run(admin, "", args...)
	if r.code != 0 {
		e.t.Fatalf("%q: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// app creates an app; with a Procfile, also a live release v1 built from it.
func (e *env) app(name, procfile string) {
	e.t.Helper()
	ctx := context.Background()
	if _, err := e.st.CreateApp(ctx, name); err != nil {
		e.t.Fatal(err)
	}
	if procfile == "" {
		return
	}
	e.release(name, procfile, store.Succeeded)
}

// release records a new deploy attempt of app with its source's Procfile,
// and makes it live when it succeeded.
func (e *env) release(name, procfile string, status store.ReleaseStatus) int {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.st.CreateRelease(ctx, name, strings.Repeat("ab", 20), "alice")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.FinishRelease(ctx, name, r.Attempt, status, "", ""); err != nil {
		e.t.Fatal(err)
	}
	if status == store.Failed {
		return 0 // a failed attempt takes no release number, and has no directory
	}
	dir := filepath.Join(e.root, "apps", name, "releases", strconv.Itoa(r.Number))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte(procfile), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if status == store.Succeeded {
		if err := e.st.SetLiveRelease(ctx, name, r.Number); err != nil {
			e.t.Fatal(err)
		}
	}
	return r.Number
}

func (e *env) config(app string) map[string]string {
	e.t.Helper()
	vars, err := e.st.Config(context.Background(), app)
	if err != nil {
		e.t.Fatal(err)
	}
	return vars
}

func (e *env) events(app string) []store.Event {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), app, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

// oneFailLine checks stderr is exactly one failure line containing want.
func oneFailLine(t *testing.T, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], " !     ") {
		t.Errorf("stderr is not one failure line:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
	}
}
