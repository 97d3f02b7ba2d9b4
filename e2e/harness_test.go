// Package e2e drives hop3 the way its users do: the real hop3 binary, the
// real OpenSSH and git clients, the real Caddy and Granian, on loopback.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"hop3/internal/hop3test"
)

var (
	hop3Bin  string // built once by TestMain
	repoRoot = hop3test.RepoRoot()
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hop3-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if hop3Bin, err = hop3test.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The harness lives in internal/hop3test; these names keep the tests' own.
var (
	sharedCache = hop3test.SharedCache
	shortTemp   = func(t *testing.T) string { return hop3test.ShortTemp(t) }
	openTemp    = func(t *testing.T) string { return hop3test.OpenTemp(t) }
	tryGet      = hop3test.Get
)

// tool finds a binary installed by scripts/setup.sh, or on PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	return hop3test.Tool(t, name)
}

// daemon is one running `hop3 serve`, with the short names the tests use.
type daemon struct {
	*hop3test.Daemon
	t        *testing.T
	root     string
	sshPort  string
	httpAddr string
	cmd      *exec.Cmd
}

// startDaemon runs hop3 serve on root; httpAddr may be "127.0.0.1:0".
func startDaemon(t *testing.T, root, httpAddr string, extra ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, root, httpAddr, nil, extra...)
}

// startDaemonEnv is startDaemon with extra environment variables for hop3.
func startDaemonEnv(t *testing.T, root, httpAddr string, env []string, extra ...string) *daemon {
	t.Helper()
	return startWith(t, hop3test.Options{Root: root, HTTPAddr: httpAddr, Env: env, Args: extra})
}

// startWith starts hop3 serve with the test's binary and o.
func startWith(t *testing.T, o hop3test.Options) *daemon {
	t.Helper()
	o.Bin = hop3Bin
	hd := hop3test.StartDaemon(t, o)
	return &daemon{Daemon: hd, t: t, root: hd.Root, sshPort: hd.SSHPort, httpAddr: hd.HTTPAddr, cmd: hd.Cmd}
}

func (d *daemon) log() string { return d.Log() }

// stop ends the daemon gracefully (SIGTERM) and waits.
func (d *daemon) stop() { d.Stop() }

// kill ends the daemon with SIGKILL, as a crash would.
func (d *daemon) kill() { d.Kill() }

// hop3 runs a local hop3 subcommand on the daemon's root.
func (d *daemon) hop3(stdin string, args ...string) (string, error) { return d.Hop3(stdin, args...) }

// user is someone with an SSH key.
type user struct {
	name string
	key  string // private key path
}

func (u user) h() hop3test.User { return hop3test.User{Name: u.name, Key: u.key} }

// newUser generates an ed25519 key with the real ssh-keygen.
func newUser(t *testing.T, name string) user {
	t.Helper()
	u := hop3test.NewUser(t, name)
	return user{name: u.Name, key: u.Key}
}

func (u user) pub(t *testing.T) string {
	b, err := u.h().PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// register allows the user's key on the daemon (as an admin unless args say otherwise).
func (d *daemon) register(u user, args ...string) {
	d.t.Helper()
	if err := d.AddKey(u.h(), args...); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemon) sshCommand(u user) string { return d.SSHCommand(u.h()) }

// remote is the git URL of an app.
func (d *daemon) remote(app string) string { return d.Remote(app) }

// ssh runs a command on the daemon over the real ssh client.
func (d *daemon) ssh(u user, args ...string) (stdout, stderr string, code int) {
	cmd := d.SSH(context.Background(), u.h(), args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	code = hop3test.ExitCode(cmd.Run())
	return o.String(), e.String(), code
}

// workdir is a local git repository of an app's source.
type workdir struct {
	t   *testing.T
	dir string
}

func newWorkdir(t *testing.T, files map[string]string) *workdir {
	t.Helper()
	w, err := hop3test.InitWorkTree(t.TempDir(), files)
	if err != nil {
		t.Fatal(err)
	}
	return &workdir{t: t, dir: w.Dir}
}

func (w *workdir) h() *hop3test.WorkTree { return &hop3test.WorkTree{Dir: w.dir} }

func (w *workdir) git(args ...string) string {
	w.t.Helper()
	out, err := w.gitErr(nil, args...)
	if err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return out
}

func (w *workdir) gitErr(env []string, args ...string) (string, error) {
	return w.h().Git(env, args...)
}

// commit writes files (an empty content deletes the file) and commits.
func (w *workdir) commit(msg string, files map[string]string) {
	w.t.Helper()
	if err := w.h().Commit(msg, files); err != nil {
		w.t.Fatal(err)
	}
}

// push pushes HEAD to app's main branch with the user's key.
func (w *workdir) push(d *daemon, u user, app string) (string, error) {
	return w.h().Push(context.Background(), d.Daemon, u.h(), app, nil)
}

func (w *workdir) mustPush(d *daemon, u user, app string) string {
	w.t.Helper()
	out, err := w.push(d, u, app)
	if err != nil {
		w.t.Fatalf("push %s: %v\n%s", app, err, out)
	}
	return out
}

// get fetches path from an app through Caddy, with the app's Host header.
func get(t *testing.T, d *daemon, host, path string) (int, string) {
	t.Helper()
	code, body, err := hop3test.Get(d.httpAddr, host, path)
	if err != nil && code == 0 {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return code, body
}

// wantBody fetches and checks a 200 with the given body.
func wantBody(t *testing.T, d *daemon, host, path, want string) {
	t.Helper()
	code, body := get(t, d, host, path)
	if code != 200 || body != want {
		t.Fatalf("GET %s%s = %d %q, want 200 %q", host, path, code, body, want)
	}
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }
