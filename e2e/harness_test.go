// Package e2e drives hop3 the way its users do: the real hop3 binary, the
// real OpenSSH and git clients, the real Caddy and Granian, on loopback.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	hop3Bin  string // built once by TestMain
	repoRoot string
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	dir, err := os.MkdirTemp("", "hop3-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Apps' users may run hop3 too, as an attacker's code would: the
	// isolation tests must fail for the right reason.
	os.Chmod(dir, 0o755)
	hop3Bin = filepath.Join(dir, "hop3")
	build := exec.Command("go", "build", "-o", hop3Bin, "./cmd/hop3")
	build.Dir = repoRoot
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hop3:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// tool finds a binary installed by scripts/setup.sh, or on PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	if v := os.Getenv("HOP3_" + strings.ToUpper(name) + "_BIN"); v != "" {
		return v
	}
	p := filepath.Join(repoRoot, ".tools", "bin", name)
	if _, err := os.Stat(p); err == nil {
		return reachable(t, p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s not found: run scripts/setup.sh (make setup)", name)
	return ""
}

// sharedCache is where builds keep uv/npm/go caches across tests and runs.
// Apps build as their own users, each in a cache of its own under it (by
// uid, so the first app of every test shares one): it must be reachable by
// them, so a checkout under a closed home directory uses the system's
// temporary directory instead.
func sharedCache() string {
	if v := os.Getenv("HOP3_TEST_CACHE"); v != "" && searchableByAll(filepath.Dir(v)) {
		return v
	}
	return filepath.Join(os.TempDir(), "hop3-test-cache")
}

// searchableByAll reports whether every user may pass through dir and each
// directory above it.
func searchableByAll(dir string) bool {
	// A directory not made yet will be made with a searchable mode.
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for p := real; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

var (
	reachableMu    sync.Mutex
	reachableTools = map[string]string{}
)

// reachable returns the tool at path, or a copy of it beside the hop3
// binary when apps' users (who run uv in builds) could not reach it.
func reachable(t *testing.T, path string) string {
	t.Helper()
	real, err := filepath.EvalSymlinks(path)
	if err != nil || searchableByAll(filepath.Dir(real)) {
		return path
	}
	reachableMu.Lock()
	defer reachableMu.Unlock()
	if p, ok := reachableTools[path]; ok {
		return p
	}
	b, err := os.ReadFile(real)
	if err != nil {
		t.Fatal(err)
	}
	cp := filepath.Join(filepath.Dir(hop3Bin), filepath.Base(path))
	if err := os.WriteFile(cp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	reachableTools[path] = cp
	return cp
}

// shortTemp returns a short temporary directory: unix socket paths under the
// root must stay below 108 bytes, and t.TempDir() names can be long.
func shortTemp(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "h3")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// openTemp is shortTemp that every user may write: apps run as their own
// users, and a test that shares files with an app's processes needs it.
func openTemp(t *testing.T) string {
	t.Helper()
	dir := shortTemp(t)
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// daemon is one running `hop3 serve`.
type daemon struct {
	t        *testing.T
	root     string
	sshPort  string
	httpAddr string
	cmd      *exec.Cmd
	logPath  string
	done     chan struct{}
}

var readyLine = regexp.MustCompile(`hop3 ready: ssh=(\S+) http=(\S+)`)

// startDaemon runs hop3 serve on root; httpAddr may be "127.0.0.1:0".
func startDaemon(t *testing.T, root, httpAddr string, extra ...string) *daemon {
	t.Helper()
	return startDaemonEnv(t, root, httpAddr, nil, extra...)
}

// startDaemonEnv is startDaemon with extra environment variables for hop3.
func startDaemonEnv(t *testing.T, root, httpAddr string, env []string, extra ...string) *daemon {
	t.Helper()
	logPath := filepath.Join(root, "hop3-test.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--root", root, "--ssh-addr", "127.0.0.1:0", "--http-addr", httpAddr,
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--cache-dir", sharedCache()}, extra...)
	cmd := exec.Command(hop3Bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, root: root, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m
			}
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	select {
	case m := <-ready:
		d.sshPort = m[1][strings.LastIndex(m[1], ":")+1:]
		d.httpAddr = m[2]
	case <-d.done:
		t.Fatalf("hop3 serve exited before it was ready:\n%s", d.log())
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("hop3 serve not ready after 90s:\n%s", d.log())
	}
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("hop3 log:\n%s", d.log())
		}
	})
	return d
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// stop ends the daemon gracefully (SIGTERM) and waits.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// kill ends the daemon with SIGKILL, as a crash would.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.done
}

// hop3 runs a local hop3 subcommand on the daemon's root.
func (d *daemon) hop3(stdin string, args ...string) (string, error) {
	cmd := exec.Command(hop3Bin, args...)
	cmd.Env = append(os.Environ(), "HOP3_ROOT="+d.root)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// user is someone with an SSH key.
type user struct {
	name string
	key  string // private key path
}

// newUser generates an ed25519 key with the real ssh-keygen.
func newUser(t *testing.T, name string) user {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	return user{name: name, key: key}
}

func (u user) pub(t *testing.T) string {
	b, err := os.ReadFile(u.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// register allows the user's key on the daemon (as an admin unless args say otherwise).
func (d *daemon) register(u user, args ...string) {
	d.t.Helper()
	out, err := d.hop3(u.pub(d.t), append([]string{"keys", "add"}, append(args, u.name)...)...)
	if err != nil {
		d.t.Fatalf("keys add %s: %v\n%s", u.name, err, out)
	}
}

func (d *daemon) sshCommand(u user) string {
	return fmt.Sprintf("ssh -i %s -p %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR", u.key, d.sshPort)
}

// remote is the git URL of an app.
func (d *daemon) remote(app string) string {
	return "ssh://hop3@127.0.0.1:" + d.sshPort + "/" + app
}

// ssh runs a command on the daemon over the real ssh client.
func (d *daemon) ssh(u user, args ...string) (stdout, stderr string, code int) {
	full := append(strings.Fields(d.sshCommand(u))[1:], "hop3@127.0.0.1")
	full = append(full, args...)
	cmd := exec.Command("ssh", full...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), e.String(), code
}

// workdir is a local git repository of an app's source.
type workdir struct {
	t   *testing.T
	dir string
}

func newWorkdir(t *testing.T, files map[string]string) *workdir {
	t.Helper()
	w := &workdir{t: t, dir: t.TempDir()}
	w.git("init", "-q", "-b", "main")
	w.commit("initial", files)
	return w
}

func (w *workdir) git(args ...string) string {
	w.t.Helper()
	out, err := w.gitErr(nil, args...)
	if err != nil {
		w.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return out
}

func (w *workdir) gitErr(env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// commit writes files (an empty content deletes the file) and commits.
func (w *workdir) commit(msg string, files map[string]string) {
	w.t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			w.t.Fatal(err)
		}
	}
	w.git("add", "-A")
	w.git("commit", "-q", "--allow-empty", "-m", msg)
}

// push pushes HEAD to app's main branch with the user's key.
func (w *workdir) push(d *daemon, u user, app string) (string, error) {
	return w.gitErr([]string{"GIT_SSH_COMMAND=" + d.sshCommand(u)}, "push", d.remote(app), "HEAD:main")
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
	req, err := http.NewRequest("GET", "http://"+d.httpAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
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

var _ = sync.Mutex{}

// tryGet is get without failing the test, for load generators.
func tryGet(addr, host, path string) (int, string, error) {
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func ioReadFull(r io.Reader, b []byte) (int, error) { return io.ReadFull(r, b) }
