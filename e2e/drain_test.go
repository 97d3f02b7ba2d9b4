package e2e

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowApp answers /slow after 15 s and / at once, both with its version.
func slowApp(version string) map[string]string {
	return map[string]string{
		"app.py": fmt.Sprintf(`import time
def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(15)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slow %[1]s"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%[1]s"]
`, version),
		"requirements.txt": "# no dependencies\n",
		"Procfile":         "wsgi: app:app\n",
	}
}

// slowAnswer is what a request to slowApp's /slow got.
type slowAnswer struct {
	code int
	body string
	err  error
}

// requestSlow starts a request to host's /slow and returns once it is in
// the running release's hands; its answer comes on the channel.
func requestSlow(d *daemon, host string) <-chan slowAnswer {
	slow := make(chan slowAnswer, 1)
	go func() {
		code, body, err := tryGet(d.httpAddr, host, "/slow")
		slow <- slowAnswer{code, body, err}
	}()
	time.Sleep(time.Second)
	return slow
}

// wantSlowAnswer waits for requestSlow's answer, which must be 200 want
// from the release that took it.
func wantSlowAnswer(t *testing.T, slow <-chan slowAnswer, want string) {
	t.Helper()
	select {
	case a := <-slow:
		if a.err != nil || a.code != 200 || a.body != want {
			t.Fatalf("long request = %d %q %v, want 200 %q from the old release", a.code, a.body, a.err, want)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("long request never answered")
	}
}

// TestDrainLongRequest starts a 15 s request, then pushes: the push returns
// as soon as the new release is live (under 5 s, the build being cached),
// new requests reach the new release at once, `ps` shows the old one
// draining, and the old release answers the long request with 200.
func TestDrainLongRequest(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	w := newWorkdir(t, slowApp("v1"))
	w.mustPush(d, alice, "slow")
	wantBody(t, d, "slow.localhost", "/", "v1")

	slow := requestSlow(d, "slow.localhost")

	w.commit("v2", slowApp("v2"))
	start := time.Now()
	out := w.mustPush(d, alice, "slow")
	took := time.Since(start)
	t.Logf("push with a request in flight took %s", took.Round(10*time.Millisecond))
	if took >= 5*time.Second {
		t.Errorf("push took %s: it waited for the old release's request\n%s", took, out)
	}
	wantBody(t, d, "slow.localhost", "/", "v2")
	ps, _, _ := d.ssh(alice, "ps", "slow")
	if !strings.Contains(ps, "draining (") {
		t.Errorf("ps does not show the old release draining with its connections:\n%s", ps)
	}
	t.Logf("ps during the drain:\n%s", ps)
	wantSlowAnswer(t, slow, "slow v1")
	// The drained generation is gone.
	eventually(t, 10*time.Second, func() error {
		if ps, _, _ := d.ssh(alice, "ps", "slow"); strings.Contains(ps, "draining") {
			return fmt.Errorf("still draining:\n%s", ps)
		}
		return nil
	})
}

// TestDrainWebSocket keeps a WebSocket open on an asgi app through a push:
// it still echoes 10 s after the push, and when WS_DRAIN_TIMEOUT (12 s
// here) ends it receives a close frame with 1001 Going Away, not a reset.
func TestDrainWebSocket(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	files := map[string]string{
		"app.py":           asgiEcho,
		"requirements.txt": "# none\n",
		"Procfile":         "asgi: app:app\n",
		".env":             "WS_DRAIN_TIMEOUT=12\n",
	}
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "live")
	ws, err := dialWS(d.httpAddr, "live.localhost")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.conn.Close()
	if got, err := ws.echo("before"); err != nil || got != "echo:before" {
		t.Fatalf("echo before the push = %q, %v", got, err)
	}

	// While the WebSocket holds the old generation, 20 clients keep
	// requesting: none may fail, and the old release answers over Caddy's
	// pooled connections only until it has seen the drain (each such
	// connection then closes after its answer).
	load := startLoad(t, d, "live.localhost", 20)
	files["app.py"] = strings.Replace(asgiEcho, "asgi ok", "asgi v2", 1)
	w.commit("v2", files)
	w.mustPush(d, alice, "live")
	pushed := time.Now()
	wantBody(t, d, "live.localhost", "/", "asgi v2")
	time.Sleep(2 * time.Second)
	res := load.stop()
	t.Logf("load through the push: %d requests, %d failed, bodies %v", res.total, res.failed, res.bodies)
	if res.failed > 0 {
		t.Errorf("%d of %d requests failed; first: %s", res.failed, res.total, res.firstErr)
	}

	time.Sleep(10*time.Second - time.Since(pushed))
	if got, err := ws.echo("after 10s"); err != nil || got != "echo:after 10s" {
		t.Fatalf("echo 10 s after the push = %q, %v: the WebSocket was not kept open", got, err)
	}
	code, err := ws.waitClose(20 * time.Second)
	if err != nil {
		t.Fatalf("waiting for the close frame: %v", err)
	}
	if code != 1001 {
		t.Fatalf("close code %d, want 1001", code)
	}
	t.Logf("WebSocket closed with %d %s after the push", code, time.Since(pushed).Round(100*time.Millisecond))
}

// asgiEvents streams an event every 0.2 s from /events, with its version.
const asgiEvents = `import asyncio
VERSION = "v1"
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        if scope["path"] == "/events":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
            i = 0
            while True:
                await send({"type": "http.response.body", "body": ("data: %s %d\n\n" % (VERSION, i)).encode(), "more_body": True})
                i += 1
                await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": VERSION.encode()})
`

// TestDrainEventStream keeps an event stream (text/event-stream) open on an
// asgi app through a push: it outlives DRAIN_TIMEOUT (2 s here), gets the
// longer WS_DRAIN_TIMEOUT (8 s), and then ends as a complete answer rather
// than being cut.
func TestDrainEventStream(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	files := map[string]string{
		"app.py":           asgiEvents,
		"requirements.txt": "# none\n",
		"Procfile":         "asgi: app:app\n",
		".env":             "DRAIN_TIMEOUT=2\nWS_DRAIN_TIMEOUT=8\n",
	}
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "events")
	req, err := http.NewRequest("GET", "http://"+d.httpAddr+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = "events.localhost"
	req.Header.Set("Accept", "text/event-stream") // as a browser's EventSource
	resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	type event struct {
		at   time.Time
		line string
	}
	events := make(chan event, 1024)
	ended := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if line := sc.Text(); line != "" {
				events <- event{time.Now(), line}
			}
		}
		ended <- sc.Err()
	}()

	files["app.py"] = strings.Replace(asgiEvents, `VERSION = "v1"`, `VERSION = "v2"`, 1)
	w.commit("v2", files)
	w.mustPush(d, alice, "events")
	pushed := time.Now()
	wantBody(t, d, "events.localhost", "/", "v2")

	var last event
	select {
	case err := <-ended:
		if err != nil {
			t.Fatalf("the stream was cut: %v (last event %q at +%s)", err, last.line, last.at.Sub(pushed))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stream never ended")
	}
	for len(events) > 0 {
		last = <-events
	}
	lived := last.at.Sub(pushed)
	t.Logf("event stream ended cleanly; its last event %q came %s after the push", last.line, lived.Round(100*time.Millisecond))
	if lived < 5*time.Second || !strings.HasPrefix(last.line, "data: v1 ") {
		t.Fatalf("last event %q at +%s: the old release's stream did not outlive DRAIN_TIMEOUT", last.line, lived)
	}
}

// TestDeployMustSettle pushes releases that cannot run: a worker that exits
// at once and a web process listening on another port than $PORT. Each push
// fails with the reason and the process's own lines, quickly, and the
// release before serves on.
func TestDeployMustSettle(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)

	t.Run("worker exits at start", func(t *testing.T) {
		t.Parallel()
		w := newWorkdir(t, wsgiApp("good"))
		w.mustPush(d, alice, "crashy")
		bad := wsgiApp("bad")
		bad["Procfile"] = "wsgi: app:app\nworker: echo cannot reach the queue >&2; exit 3\n"
		w.commit("worker exits", bad)
		out, err := w.push(d, alice, "crashy")
		if err == nil {
			t.Fatalf("push whose worker exits at once succeeded:\n%s", out)
		}
		for _, want := range []string{"worker.1 did not start", "exit status 3", "cannot reach the queue"} {
			if !strings.Contains(out, want) {
				t.Errorf("push output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "is live") {
			t.Errorf("push output calls the failed release live:\n%s", out)
		}
		wantBody(t, d, "crashy.localhost", "/", "good")
	})

	t.Run("web on the wrong port", func(t *testing.T) {
		t.Parallel()
		w := newWorkdir(t, map[string]string{"server.py": webServer, "Procfile": "web: exec python3 server.py\n"})
		w.mustPush(d, alice, "porty")
		wrong := strings.Replace(webServer, `int(os.environ["PORT"])`, "0", 1)
		w.commit("wrong port", map[string]string{"server.py": wrong})
		start := time.Now()
		out, err := w.push(d, alice, "porty")
		took := time.Since(start)
		if err == nil {
			t.Fatalf("push of a server on the wrong port succeeded:\n%s", out)
		}
		if took > 20*time.Second {
			t.Errorf("the wrong port took %s to report", took)
		}
		if !strings.Contains(out, "web.1 did not start: listens on 127.0.0.1:") || !strings.Contains(out, "not $PORT (") {
			t.Errorf("push output does not name the port bound and $PORT:\n%s", out)
		}
		if _, body := get(t, d, "porty.localhost", "/"); !strings.HasPrefix(body, "web ok port=") {
			t.Errorf("old release no longer serves: %q", body)
		}
	})
}

// TestHealthCheckHost makes the health path answer only to the app's own
// host name, as Django does with ALLOWED_HOSTS: the probe must send it. A
// health path answering 503 then fails the push quickly, with the status
// and the body.
func TestHealthCheckHost(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	files := wsgiApp("")
	files["app.py"] = `import os
def app(environ, start_response):
    if environ["PATH_INFO"] == "/health":
        if environ.get("HTTP_HOST") != "checked.localhost":
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [("DisallowedHost: " + environ.get("HTTP_HOST", "")).encode()]
        if os.environ.get("BROKEN"):
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"database unreachable\nretry later\n"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"healthy"]
`
	files[".env"] = "HEALTHCHECK_PATH=/health\n"
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "checked")
	wantBody(t, d, "checked.localhost", "/", "healthy")

	files[".env"] = "HEALTHCHECK_PATH=/health\nBROKEN=1\n"
	w.commit("broken", files)
	start := time.Now()
	out, err := w.push(d, alice, "checked")
	took := time.Since(start)
	if err == nil {
		t.Fatalf("push with a failing health check succeeded:\n%s", out)
	}
	for _, want := range []string{"GET /health answered 503", "database unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	if took > 30*time.Second {
		t.Errorf("a failing health check took %s to fail the push (APP_START_TIMEOUT is 60 s)", took)
	}
	wantBody(t, d, "checked.localhost", "/", "healthy")
}

// TestPublicListenerReported pushes a web process that binds every
// interface: the push output and ps say so.
func TestPublicListenerReported(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	open := strings.Replace(webServer, `("127.0.0.1", int(os.environ["PORT"]))`, `("0.0.0.0", int(os.environ["PORT"]))`, 1)
	w := newWorkdir(t, map[string]string{"server.py": open, "Procfile": "web: exec python3 server.py\n"})
	out := w.mustPush(d, alice, "wide")
	if !strings.Contains(out, "web.1 listens on 0.0.0.0:") {
		t.Errorf("push output does not report the public listener:\n%s", out)
	}
	ps, psErr, _ := d.ssh(alice, "ps", "wide")
	if !strings.Contains(psErr, "web.1 listens on 0.0.0.0:") {
		t.Errorf("ps does not report the public listener:\n%s%s", ps, psErr)
	}
	// HOST tells frameworks where to listen.
	env := newWorkdir(t, map[string]string{"server.py": strings.Replace(webServer, `"web ok port=%s" % os.environ["PORT"]`, `"host=%s" % os.environ.get("HOST")`, 1), "Procfile": "web: exec python3 server.py\n"})
	env.mustPush(d, alice, "hosted")
	wantBody(t, d, "hosted.localhost", "/", "host=127.0.0.1")
}

// wsClient is a raw WebSocket client through Caddy.
type wsClient struct {
	conn net.Conn
	br   *bufio.Reader
}

func dialWS(addr, host string) (*wsClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	keyb := make([]byte, 16)
	rand.Read(keyb)
	key := base64.StdEncoding.EncodeToString(keyb)
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, key)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, err
	}
	if !strings.Contains(status, "101") {
		conn.Close()
		return nil, fmt.Errorf("upgrade refused: %s", strings.TrimSpace(status))
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	return &wsClient{conn: conn, br: br}, nil
}

// frame reads one frame: opcode and payload.
func (c *wsClient) frame() (byte, []byte, error) {
	hdr := make([]byte, 2)
	if _, err := ioReadFull(c.br, hdr); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n == 126 {
		ext := make([]byte, 2)
		if _, err := ioReadFull(c.br, ext); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(ext))
	}
	payload := make([]byte, n)
	if _, err := ioReadFull(c.br, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0] & 0x0f, payload, nil
}

func (c *wsClient) echo(msg string) (string, error) {
	c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	mask := []byte{1, 2, 3, 4}
	frame := []byte{0x81, 0x80 | byte(len(msg))}
	frame = append(frame, mask...)
	for i := 0; i < len(msg); i++ {
		frame = append(frame, msg[i]^mask[i%4])
	}
	if _, err := c.conn.Write(frame); err != nil {
		return "", err
	}
	op, payload, err := c.frame()
	if err != nil {
		return "", err
	}
	if op != 1 {
		return "", fmt.Errorf("got opcode %d, want a text frame", op)
	}
	return string(payload), nil
}

// waitClose reads until a close frame and returns its code; an EOF or a
// reset first is an error.
func (c *wsClient) waitClose(timeout time.Duration) (int, error) {
	c.conn.SetDeadline(time.Now().Add(timeout))
	for {
		op, payload, err := c.frame()
		if err != nil {
			return 0, fmt.Errorf("connection ended without a close frame: %w", err)
		}
		if op != 8 {
			continue
		}
		if len(payload) < 2 {
			return 0, errors.New("close frame without a code")
		}
		return int(binary.BigEndian.Uint16(payload)), nil
	}
}

// TestNoOldAnswersAfterSwitch measures, under the load of 20 clients, how
// many requests sent after a push returned were still answered by the
// release it replaced: Caddy keeps idle keep-alive connections to the old
// Granian, and the old Granian must close them (it gets SIGTERM before the
// push returns) so that they carry no new request. None may be, and none
// may fail.
func TestNoOldAnswersAfterSwitch(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	w := newWorkdir(t, wsgiApp("v0"))
	w.mustPush(d, alice, "switch")
	type answer struct {
		start time.Time
		body  string
		err   error
	}
	var (
		mu      sync.Mutex
		answers []answer
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	for range 20 {
		wg.Go(func() {
			for !stop.Load() {
				start := time.Now()
				code, body, err := tryGet(d.httpAddr, "switch.localhost", "/")
				if err == nil && code != 200 {
					err = fmt.Errorf("status %d", code)
				}
				mu.Lock()
				answers = append(answers, answer{start, body, err})
				mu.Unlock()
			}
		})
	}
	var returned []time.Time
	for i := 1; i <= 3; i++ {
		w.commit(fmt.Sprintf("v%d", i), wsgiApp(fmt.Sprintf("v%d", i)))
		w.mustPush(d, alice, "switch")
		returned = append(returned, time.Now())
		time.Sleep(2 * time.Second)
	}
	stop.Store(true)
	wg.Wait()
	failed := 0
	for _, a := range answers {
		if a.err != nil {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, len(answers))
	}
	for i, r := range returned {
		want := fmt.Sprintf("v%d", i+1)
		stale, total := 0, 0
		for _, a := range answers {
			if a.err != nil || !a.start.After(r) || a.start.After(r.Add(2*time.Second)) {
				continue
			}
			total++
			if a.body != want {
				stale++
			}
		}
		t.Logf("push %d: %d of %d requests sent after it returned were answered by an older release", i+1, stale, total)
		if stale > 0 || total == 0 {
			t.Errorf("push %d: %d of %d requests sent after it returned reached an older release", i+1, stale, total)
		}
	}
}
