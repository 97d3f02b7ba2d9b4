package e2e

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hop3/internal/hop3test"
)

const asgiEcho = `async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"asgi ok"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo:" + (msg.get("text") or "")})
`

const webServer = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("web ok port=%s" % os.environ["PORT"]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`

// TestProcfileKinds pushes one app of each kind and checks each runs: wsgi
// with a worker and a cron entry, asgi with a WebSocket through Caddy, a web
// command on $PORT, a static site.
func TestProcfileKinds(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	// A cron minute lasts a second.
	d := startDaemonEnv(t, root, "127.0.0.1:0", []string{"HOP3_TEST_CLOCK_SCALE=60"})
	alice := newUser(t, "alice")
	d.register(alice)

	t.Run("wsgi worker cron", func(t *testing.T) {
		t.Parallel()
		files := wsgiApp("procs v1")
		files["Procfile"] = "wsgi: app:app\n" +
			"worker: while true; do echo tick >> \"$DATA_DIR/ticks\"; sleep 1; done\n" +
			"cron: * * * * * echo ran >> \"$DATA_DIR/cron.log\"\n"
		w := newWorkdir(t, files)
		out := w.mustPush(d, alice, "procs")
		if !strings.Contains(out, "cron.1 scheduled") {
			t.Errorf("push output does not mention the cron entry:\n%s", out)
		}
		wantBody(t, d, "procs.localhost", "/", "procs v1")
		data := filepath.Join(root, "data", "procs")
		eventually(t, 20*time.Second, func() error { return minLines(filepath.Join(data, "ticks"), 2) })
		eventually(t, 20*time.Second, func() error { return minLines(filepath.Join(data, "cron.log"), 2) })

		// kill -9 the worker: the process manager starts it again.
		pid := pgrep(t, root, "DATA_DIR/ticks")
		if pid == 0 {
			t.Fatal("worker process not found")
		}
		syscall.Kill(pid, syscall.SIGKILL)
		eventually(t, 20*time.Second, func() error {
			if p := pgrep(t, root, "DATA_DIR/ticks"); p == 0 || p == pid {
				return fmt.Errorf("worker not restarted (pid %d)", p)
			}
			return nil
		})
		before := countLines(filepath.Join(data, "ticks"))
		eventually(t, 20*time.Second, func() error { return minLines(filepath.Join(data, "ticks"), before+2) })
	})

	t.Run("asgi websocket", func(t *testing.T) {
		t.Parallel()
		w := newWorkdir(t, map[string]string{
			"app.py":           asgiEcho,
			"requirements.txt": "# none\n",
			"Procfile":         "asgi: app:app\n",
		})
		w.mustPush(d, alice, "sock")
		wantBody(t, d, "sock.localhost", "/", "asgi ok")
		got, err := wsEcho(d.httpAddr, "sock.localhost", "hello")
		if err != nil {
			t.Fatal(err)
		}
		if got != "echo:hello" {
			t.Fatalf("websocket echo = %q", got)
		}
	})

	t.Run("web on PORT", func(t *testing.T) {
		t.Parallel()
		w := newWorkdir(t, map[string]string{
			"server.py": webServer,
			"Procfile":  "web: exec python3 server.py\n",
		})
		w.mustPush(d, alice, "plain")
		_, body := get(t, d, "plain.localhost", "/")
		if !strings.HasPrefix(body, "web ok port=") {
			t.Fatalf("web app answered %q", body)
		}
	})

	t.Run("static", func(t *testing.T) {
		t.Parallel()
		w := newWorkdir(t, map[string]string{
			"public/index.html": "<h1>static ok</h1>\n",
			"Procfile":          "static: public\n",
		})
		w.mustPush(d, alice, "site")
		wantBody(t, d, "site.localhost", "/", "<h1>static ok</h1>\n")
	})
}

// TestDeployFailuresKeepServing checks that a failing release command and an
// app that never becomes healthy both fail the push with the reason, and
// leave the previous release serving.
func TestDeployFailuresKeepServing(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	w := newWorkdir(t, wsgiApp("good"))
	w.mustPush(d, alice, "app")
	wantBody(t, d, "app.localhost", "/", "good")

	w.commit("release fails", map[string]string{"Procfile": "wsgi: app:app\nrelease: echo migrating; exit 3\n"})
	out, err := w.push(d, alice, "app")
	if err == nil || !strings.Contains(out, "release command failed: exit status 3") || !strings.Contains(out, "migrating") {
		t.Fatalf("failing release command: err=%v\n%s", err, out)
	}
	wantBody(t, d, "app.localhost", "/", "good")
	w.git("reset", "-q", "--hard", "HEAD~1")

	unhealthy := wsgiApp("bad")
	unhealthy["app.py"] = `import sys
def app(environ, start_response):
    if environ["PATH_INFO"] == "/health":
        print("health check failing on purpose", file=sys.stderr, flush=True)
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"no"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"bad"]
`
	unhealthy[".env"] = "HEALTHCHECK_PATH=/health\nAPP_START_TIMEOUT=4\n"
	w.commit("never healthy", unhealthy)
	out, err = w.push(d, alice, "app")
	if err == nil || !strings.Contains(out, "did not start") || !strings.Contains(out, "health check failing on purpose") {
		t.Fatalf("unhealthy release: err=%v\n%s", err, out)
	}
	wantBody(t, d, "app.localhost", "/", "good")
}

// TestZeroDowntimeDeploy pushes new releases while 20 clients keep
// requesting the app: no request may fail.
func TestZeroDowntimeDeploy(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	w := newWorkdir(t, wsgiApp("v0"))
	w.mustPush(d, alice, "zdt")
	wantBody(t, d, "zdt.localhost", "/", "v0")

	reloadsBefore := caddyReloadTime(t, root)
	load := startLoad(t, d, "zdt.localhost", 20)
	for i := 1; i <= 3; i++ {
		w.commit(fmt.Sprintf("v%d", i), wsgiApp(fmt.Sprintf("v%d", i)))
		w.mustPush(d, alice, "zdt")
	}
	time.Sleep(500 * time.Millisecond)
	res := load.stop()
	t.Logf("deploys under load: %d requests, %d failed, bodies %v", res.total, res.failed, res.bodies)
	if res.total < 100 {
		t.Fatalf("load generator sent only %d requests", res.total)
	}
	if res.failed > 0 {
		t.Fatalf("%d of %d requests failed during deploys; first: %s", res.failed, res.total, res.firstErr)
	}
	if res.bodies["v3"] == 0 {
		t.Fatalf("the last release never answered: %v", res.bodies)
	}
	// Deploys switch a socket symlink: Caddy's config must not have changed.
	if after := caddyReloadTime(t, root); after != reloadsBefore {
		t.Fatalf("Caddy's config was reloaded during deploys (last reload %s, before %s)", after, reloadsBefore)
	}
}

// caddyReloadTime reads when Caddy last loaded a config, from its admin
// metrics: any config change through the admin API moves it.
func caddyReloadTime(t *testing.T, root string) string {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", caddyAdminSocket(root))
	}}}
	resp, err := client.Get("http://127.0.0.1/metrics")
	if err != nil {
		t.Fatalf("caddy metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "caddy_config_last_reload_success_timestamp_seconds "); ok {
			return v
		}
	}
	t.Fatal("caddy metrics lack the reload timestamp")
	return ""
}

// TestKilledDaemonLeavesNoOrphans kills hop3 with SIGKILL; the next start
// stops every process the dead one left and serves its apps again.
func TestKilledDaemonLeavesNoOrphans(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	files := wsgiApp("alive")
	files["Procfile"] = "wsgi: app:app\nworker: sh -c 'sleep 1000 & sleep 1000'\n"
	newWorkdir(t, files).mustPush(d, alice, "orphans")
	wantBody(t, d, "orphans.localhost", "/", "alive")
	old := pgrepAll(t, root)
	if len(old) < 3 {
		t.Fatalf("expected granian and worker processes under %s, found %v", root, old)
	}
	addr := d.httpAddr
	d.kill()
	d2 := startDaemon(t, root, addr)
	eventually(t, 30*time.Second, func() error {
		if code, body := get(t, d2, "orphans.localhost", "/"); code != 200 || body != "alive" {
			return fmt.Errorf("GET = %d %q", code, body)
		}
		return nil
	})
	for _, pid := range old {
		if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
			t.Errorf("process %d of the killed daemon still runs: %s", pid, cmdline(pid))
		}
	}
}

// --- helpers ---

type loadResult struct {
	total, failed int
	firstErr      string
	bodies        map[string]int
}

type loadGen struct{ *hop3test.Load }

// startLoad runs n clients requesting host through Caddy until stop.
func startLoad(t *testing.T, d *daemon, host string, n int) *loadGen {
	ok := func(status int, _ string) bool { return status == 200 }
	return &loadGen{hop3test.StartLoad(http.DefaultClient, "http://"+d.httpAddr+"/", host, ok, n)}
}

func (g *loadGen) stop() loadResult {
	r := g.Stop()
	return loadResult{total: r.Total(), failed: r.Total() - r.OK, firstErr: r.FirstErr, bodies: r.Bodies}
}

func minLines(path string, n int) error {
	if c := countLines(path); c < n {
		return fmt.Errorf("%s has %d lines, want at least %d", path, c, n)
	}
	return nil
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\n")
}

// pgrep finds the newest process whose command line contains both root and
// pattern.
func pgrep(t *testing.T, root, pattern string) int {
	best := 0
	for _, pid := range pgrepAll(t, root) {
		if strings.Contains(cmdline(pid), pattern) && pid > best {
			best = pid
		}
	}
	return best
}

// pgrepAll lists live processes whose command line or environment mentions
// root (every process hop3 starts for an app has DATA_DIR under it).
func pgrepAll(t *testing.T, root string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || isZombie(pid) {
			continue
		}
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if strings.Contains(string(env), "DATA_DIR="+root+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z'
}

// wsEcho opens a WebSocket to host through Caddy, sends msg, returns the reply.
func wsEcho(addr, host, msg string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(15 * time.Second))
	keyb := make([]byte, 16)
	rand.Read(keyb)
	key := base64.StdEncoding.EncodeToString(keyb)
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	if !strings.Contains(status, "101") {
		return "", fmt.Errorf("upgrade refused: %s", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		if line == "\r\n" {
			break
		}
	}
	// One masked text frame.
	frame := []byte{0x81, 0x80 | byte(len(msg)), 1, 2, 3, 4}
	for i := 0; i < len(msg); i++ {
		frame = append(frame, msg[i]^[]byte{1, 2, 3, 4}[i%4])
	}
	if _, err := conn.Write(frame); err != nil {
		return "", err
	}
	hdr := make([]byte, 2)
	if _, err := ioReadFull(br, hdr); err != nil {
		return "", err
	}
	n := int(hdr[1] & 0x7f)
	payload := make([]byte, n)
	if _, err := ioReadFull(br, payload); err != nil {
		return "", err
	}
	return string(payload), nil
}

var _ = exec.Command

// TestZeroDowntimeOperations runs config:set, restart and ps:scale while 20
// clients keep requesting the app: no request may fail, the new config
// reaches the app, and Caddy's config is never touched.
func TestZeroDowntimeOperations(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	files := wsgiApp("")
	files["app.py"] = `import os
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("greeting=" + os.environ.get("GREETING", "none")).encode()]
`
	newWorkdir(t, files).mustPush(d, alice, "ops")
	wantBody(t, d, "ops.localhost", "/", "greeting=none")
	reloadsBefore := caddyReloadTime(t, root)
	load := startLoad(t, d, "ops.localhost", 20)

	steps := [][]string{
		// ssh joins its arguments with spaces; hop3 splits them like a shell.
		{"config:set", "ops", "GREETING='hello world'"},
		{"restart", "ops"},
		{"ps:scale", "ops", "wsgi=3"},
		{"ps:scale", "ops", "wsgi=1"},
		{"config:set", "ops", "GREETING=bye"},
	}
	for _, step := range steps {
		if out, errOut, code := d.ssh(alice, step...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", step, code, out, errOut)
		}
	}
	time.Sleep(300 * time.Millisecond)
	res := load.stop()
	t.Logf("operations under load: %d requests, %d failed, bodies %v", res.total, res.failed, res.bodies)
	if res.failed > 0 {
		t.Fatalf("%d of %d requests failed; first: %s", res.failed, res.total, res.firstErr)
	}
	if res.bodies["greeting=hello world"] == 0 {
		t.Fatalf("config:set never reached the app: %v", res.bodies)
	}
	wantBody(t, d, "ops.localhost", "/", "greeting=bye")
	if after := caddyReloadTime(t, root); after != reloadsBefore {
		t.Fatalf("Caddy's config changed during config:set, restart and ps:scale")
	}
	// Granian runs one worker again (plus its main process).
	out, _, _ := d.ssh(alice, "ps", "ops")
	if !strings.Contains(out, "wsgi") {
		t.Fatalf("ps lacks the wsgi process:\n%s", out)
	}
}

// TestRunOnTerminal runs a one-off command with `ssh -tt`: it gets a
// terminal, and its exit status comes back as ssh's.
func TestRunOnTerminal(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, wsgiApp("tty")).mustPush(d, alice, "term")
	args := append(strings.Fields(d.sshCommand(alice))[1:], "-tt", "hop3@127.0.0.1",
		"run", "term", "--", "sh", "-c", "'test -t 0 && echo tty=yes; echo app=$APP; exit 5'")
	cmd := exec.Command("ssh", args...)
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 5 {
		t.Fatalf("ssh -tt run: %v (want exit status 5)\n%s", err, out)
	}
	for _, want := range []string{"tty=yes", "app=term"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%q", want, out)
		}
	}
	// Without -t the command has no terminal.
	stdout, _, code := d.ssh(alice, "run", "term", "--", "sh", "-c", "'test -t 0 && echo tty=yes || echo tty=no'")
	if code != 0 || !strings.Contains(stdout, "tty=no") {
		t.Fatalf("run without a terminal: exit %d, %q", code, stdout)
	}
}
