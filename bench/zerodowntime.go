package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadGen sends GETs through Caddy from a few clients with keep-alive,
// counting every answer that is not a 200 and every transport error.
type loadGen struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	kinds        map[string]int
	stop         chan struct{}
	stopOnce     sync.Once
	wg           sync.WaitGroup
}

const (
	loadWorkers  = 8
	loadPause    = 5 * time.Millisecond
	loadMaxTotal = 2_000_000
)

func startLoad(ctx context.Context, url, host string) *loadGen {
	g := &loadGen{kinds: map[string]int{}, stop: make(chan struct{})}
	for w := 0; w < loadWorkers; w++ {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for g.sent.Load() < loadMaxTotal {
				select {
				case <-g.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				code, _, err := httpGet(ctx, c, url, host)
				g.sent.Add(1)
				if err != nil || code != 200 {
					g.failed.Add(1)
					k := fmt.Sprintf("status %d", code)
					if err != nil {
						k = err.Error()
						if i := strings.LastIndex(k, ": "); i >= 0 {
							k = k[i+2:]
						}
					}
					g.mu.Lock()
					g.kinds[k]++
					g.mu.Unlock()
				}
				time.Sleep(loadPause)
			}
		}()
	}
	return g
}

func (g *loadGen) snapshot() (int64, int64) { return g.sent.Load(), g.failed.Load() }

func (g *loadGen) finish() {
	g.stopOnce.Do(func() { close(g.stop) })
	g.wg.Wait()
}

func (g *loadGen) failureKinds() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.kinds) == 0 {
		return ""
	}
	var out []string
	for _, k := range sortedKeys(g.kinds) {
		out = append(out, fmt.Sprintf("%s ×%d", k, g.kinds[k]))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// operation is one kind of change made under load.
type operation struct {
	label string
	count int
	run   func(ctx context.Context, i int) (string, error) // returns a note
}

func unavailable(out string) bool {
	return strings.Contains(strings.ToLower(out), "unknown command")
}

func scenarioZeroDowntime(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	d := m.d
	a := m.app("hello")
	sshOp := func(args func(i int) []string) func(ctx context.Context, i int) (string, error) {
		return func(ctx context.Context, i int) (string, error) {
			argv := args(i)
			out, code := d.ssh(ctx, argv...)
			if unavailable(out) {
				return "unavailable", nil
			}
			if code != 0 {
				return "", fmt.Errorf("ssh %s: exit %d: %s", strings.Join(argv, " "), code, clip(out, 300))
			}
			return "", nil
		}
	}
	ops := []operation{
		{"deploy (`git push` of a new commit)", 10, func(ctx context.Context, i int) (string, error) {
			v := "zd-" + strconv.Itoa(i)
			if err := a.repo.commit("version "+v, map[string]string{"VERSION": v + "\n"}); err != nil {
				return "", err
			}
			if _, err := d.push(ctx, a.repo.dir, a.name); err != nil {
				return "", err
			}
			// hop3 answers the push once the new release serves.
			if _, body, err := httpGet(ctx, freshClient(10*time.Second), d.url("/version"), d.host(a.name)); err != nil || body != v {
				return "stale", nil
			}
			return "", nil
		}},
		{"`config:set hello BENCH_N=<i>`", 10, sshOp(func(i int) []string {
			return []string{"config:set", a.name, "BENCH_N=" + strconv.Itoa(i)}
		})},
		{"`ps:scale hello wsgi=1|2`", 5, sshOp(func(i int) []string {
			return []string{"ps:scale", a.name, "wsgi=" + strconv.Itoa(1+i%2)}
		})},
		{"`restart hello`", 5, sshOp(func(i int) []string { return []string{"restart", a.name} })},
	}
	g := startLoad(ctx, d.url("/version"), d.host(a.name))
	defer g.finish()
	time.Sleep(time.Second)
	var b strings.Builder
	fmt.Fprintf(&b, "A load generator (Go, %d clients with keep-alive, each pausing %s between requests) sends `GET /version` to the minimal app through hop3's Caddy ", loadWorkers, loadPause)
	b.WriteString("while the operations below run one after the other. A request fails if it gets a transport error or any status but 200 (timeout 15 s). ")
	b.WriteString("After each deploy the next request must already see the new version: hop3 answers the push once the new release serves.\n\n")
	b.WriteString("| operation | runs | wall time | requests sent | failed | note |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	var totalSent, totalFailed int64
	var notRun []string
	for _, op := range ops {
		s0, f0 := g.snapshot()
		t0 := time.Now()
		runs, stale := 0, 0
		note := ""
		for i := 0; i < op.count; i++ {
			n, err := op.run(ctx, i)
			if err != nil {
				return b.String(), err
			}
			if n == "unavailable" {
				note = "not run: command not available"
				break
			}
			if n == "stale" {
				stale++
			}
			runs++
		}
		s1, f1 := g.snapshot()
		totalSent += s1 - s0
		totalFailed += f1 - f0
		if note == "" && strings.HasPrefix(op.label, "deploy") {
			note = fmt.Sprintf("new version served right after the push: %d/%d", runs-stale, runs)
		}
		if runs == 0 {
			notRun = append(notRun, op.label)
			fmt.Fprintf(&b, "| %s | 0 of %d | — | — | — | **%s** |\n", op.label, op.count, note)
			continue
		}
		logf("zero downtime: %s ×%d: %d requests, %d failed", op.label, runs, s1-s0, f1-f0)
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %s |\n", op.label, runs, time.Since(t0).Round(100*time.Millisecond), s1-s0, f1-f0, note)
	}
	fmt.Fprintf(&b, "| **all** | | | **%d** | **%d** | |\n\n", totalSent, totalFailed)
	if k := g.failureKinds(); k != "" {
		fmt.Fprintf(&b, "Failures: %s.\n\n", k)
	}
	if totalFailed == 0 {
		b.WriteString("**hop3 kept every request answered** through all the operations that ran.\n")
	} else {
		fmt.Fprintf(&b, "**hop3 loses requests**: %d of %d failed.\n", totalFailed, totalSent)
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "\n**Not run: command not available:** %s.\n", strings.Join(notRun, ", "))
	}
	// Leave the app as the other scenarios expect it.
	if out, code := d.ssh(ctx, "ps:scale", a.name, "wsgi=2"); code != 0 && !unavailable(out) {
		logf("ps:scale back to 2: %s", out)
	}
	g.finish()
	body, err := longLivedThroughDeploys(ctx, env, d)
	b.WriteString("\n" + body)
	if err != nil {
		return b.String(), err
	}
	return b.String(), nil
}

// longLivedApp is an ASGI app with a quick /version, a /slow answered after
// longRequest, and a WebSocket echo at /ws.
const longLivedApp = `import asyncio, os
VERSION = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "VERSION")).read().strip()
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
        if scope["path"] == "/slow":
            await asyncio.sleep(float(os.environ["SLOW_SECONDS"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": VERSION.encode()})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": msg.get("text") or ""})
`

const (
	longRequest     = 12 * time.Second // longer than STOP_TIMEOUT, which used to cut it
	longClients     = 4
	wsClients       = 4
	wsGrace         = 20 * time.Second // WS_DRAIN_TIMEOUT of the app
	longLivedPushes = 5
)

// longLived counts what happened to long requests and WebSockets.
type longLived struct {
	mu                         sync.Mutex
	longSent, longOK, longFail int
	wsOpened, wsGoingAway      int
	wsDropped                  int
	wsShortest                 time.Duration // shortest life after the push that replaced its generation
	pushes                     []time.Time   // when each push returned
	failures                   map[string]int
}

func (l *longLived) fail(kind string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures[kind]++
}

// longLivedThroughDeploys deploys an ASGI app while some clients hold
// requests that take longRequest and others hold WebSockets, on top of a
// keep-alive load of quick requests, and reports how each kind ended.
func longLivedThroughDeploys(ctx context.Context, env *benchEnv, d *hop3d) (string, error) {
	const name = "longlived"
	var b strings.Builder
	src := filepath.Join(env.work, "fixture-"+name)
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	files := map[string]string{
		"app.py":           longLivedApp,
		"requirements.txt": "# none\n",
		"Procfile":         "asgi: app:app\n",
		"VERSION":          "ll-0\n",
		".env":             fmt.Sprintf("SLOW_SECONDS=%d\nWS_DRAIN_TIMEOUT=%d\n", int(longRequest.Seconds()), int(wsGrace.Seconds())),
	}
	for f, c := range files {
		if err := os.WriteFile(filepath.Join(src, f), []byte(c), 0o644); err != nil {
			return "", err
		}
	}
	r, err := newRepo(env, src, name)
	if err != nil {
		return "", err
	}
	if _, err := d.push(ctx, r.dir, name); err != nil {
		return "", err
	}
	if err := waitHTTP(ctx, d.url("/version"), d.host(name), "ll-0", 30*time.Second); err != nil {
		return "", err
	}
	ll := &longLived{failures: map[string]int{}, wsShortest: time.Hour}
	quick := startLoad(ctx, d.url("/version"), d.host(name))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range longClients {
		wg.Go(func() {
			c := freshClient(longRequest + 15*time.Second)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ll.mu.Lock()
				ll.longSent++
				ll.mu.Unlock()
				code, _, err := httpGet(ctx, c, d.url("/slow"), d.host(name))
				ll.mu.Lock()
				if err == nil && code == 200 {
					ll.longOK++
				} else {
					ll.longFail++
					k := fmt.Sprintf("long request: status %d", code)
					if err != nil {
						k = "long request: " + err.Error()
					}
					ll.failures[k]++
				}
				ll.mu.Unlock()
			}
		})
	}
	for range wsClients {
		wg.Go(func() { ll.holdWebSockets(ctx, d.httpAddr, d.host(name), stop) })
	}
	time.Sleep(2 * time.Second)
	var pushTimes []time.Duration
	for i := 1; i <= longLivedPushes; i++ {
		v := "ll-" + strconv.Itoa(i)
		if err := r.commit("version "+v, map[string]string{"VERSION": v + "\n"}); err != nil {
			return "", err
		}
		t0 := time.Now()
		if _, err := d.push(ctx, r.dir, name); err != nil {
			return "", err
		}
		pushTimes = append(pushTimes, time.Since(t0))
		ll.mu.Lock()
		ll.pushes = append(ll.pushes, time.Now())
		ll.mu.Unlock()
		time.Sleep(3 * time.Second)
	}
	// Every WebSocket of a replaced generation gets its close frame by now.
	time.Sleep(wsGrace + 3*time.Second)
	close(stop)
	wg.Wait()
	quick.finish()
	sent, failed := quick.snapshot()
	sort.Slice(pushTimes, func(i, j int) bool { return pushTimes[i] < pushTimes[j] })
	ll.mu.Lock()
	defer ll.mu.Unlock()
	logf("zero downtime, long-lived: %d long requests (%d failed), %d WebSockets (%d closed with 1001, %d dropped)", ll.longSent, ll.longFail, ll.wsOpened, ll.wsGoingAway, ll.wsDropped)
	fmt.Fprintf(&b, "**Long requests and WebSockets.** An ASGI app (`longlived`) is deployed %d times, 3 s apart, while the load generator above sends `GET /version` to it, %d clients each hold a request that takes %s (longer than `STOP_TIMEOUT`, 10 s, which used to cut such requests) and %d clients each hold a WebSocket, sending a message every second and opening a new one when it is closed. The app sets `WS_DRAIN_TIMEOUT=%d`.\n\n",
		longLivedPushes, longClients, longRequest, wsClients, int(wsGrace.Seconds()))
	b.WriteString("| what | count | failed or dropped | note |\n| --- | ---: | ---: | --- |\n")
	fmt.Fprintf(&b, "| pushes | %d | 0 | wall time %s to %s (the old release drains after the push returns) |\n", len(pushTimes), pushTimes[0].Round(10*time.Millisecond), pushTimes[len(pushTimes)-1].Round(10*time.Millisecond))
	fmt.Fprintf(&b, "| quick requests | %d | %d | |\n", sent, failed)
	fmt.Fprintf(&b, "| long requests answered | %d | %d | each takes %s |\n", ll.longOK, ll.longFail, longRequest)
	shortest := "—"
	if ll.wsGoingAway > 0 {
		shortest = ll.wsShortest.Round(100 * time.Millisecond).String()
	}
	fmt.Fprintf(&b, "| WebSockets opened | %d | %d | %d ended with a close frame 1001 Going Away; the shortest lived %s after the push that replaced its release |\n\n", ll.wsOpened, ll.wsDropped, ll.wsGoingAway, shortest)
	if len(ll.failures) > 0 {
		var kinds []string
		for _, k := range sortedKeys(ll.failures) {
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, ll.failures[k]))
		}
		fmt.Fprintf(&b, "Failures: %s.\n", strings.Join(kinds, "; "))
	}
	return b.String(), nil
}

// holdWebSockets keeps one WebSocket open at a time, echoing a message
// every second, until stop; it counts how each one ended.
func (l *longLived) holdWebSockets(ctx context.Context, addr, host string, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		conn, br, err := wsDial(addr, host)
		if err != nil {
			l.fail("WebSocket open: " + err.Error())
			time.Sleep(time.Second)
			continue
		}
		l.mu.Lock()
		l.wsOpened++
		l.mu.Unlock()
		opened := time.Now()
		ended := func() string {
			defer conn.Close()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return "stopped"
				default:
				}
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				msg := "m" + strconv.Itoa(i)
				if err := wsWriteText(conn, msg); err != nil {
					return "write: " + err.Error()
				}
				op, payload, err := wsReadFrame(br)
				if err != nil {
					return "read: " + err.Error()
				}
				if op == 8 {
					if len(payload) >= 2 && int(payload[0])<<8|int(payload[1]) == 1001 {
						return "1001"
					}
					return fmt.Sprintf("close frame %x", payload)
				}
				time.Sleep(time.Second)
			}
		}()
		l.mu.Lock()
		switch ended {
		case "stopped":
		case "1001":
			l.wsGoingAway++
			// Its release was replaced by the first push after it opened.
			for _, p := range l.pushes {
				if p.After(opened) {
					l.wsShortest = min(l.wsShortest, time.Since(p))
					break
				}
			}
		default:
			l.wsDropped++
			l.failures["WebSocket "+ended]++
		}
		l.mu.Unlock()
	}
}

func wsDial(addr, host string) (net.Conn, *bufio.Reader, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, base64.StdEncoding.EncodeToString(key))
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, " 101 ") {
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade: %q %v", strings.TrimSpace(status), err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, nil, err
		}
		if line == "\r\n" {
			return conn, br, nil
		}
	}
}

func wsWriteText(conn net.Conn, msg string) error {
	mask := []byte{7, 1, 3, 9}
	frame := append([]byte{0x81, 0x80 | byte(len(msg))}, mask...)
	for i := range len(msg) {
		frame = append(frame, msg[i]^mask[i%4])
	}
	_, err := conn.Write(frame)
	return err
}

func wsReadFrame(br *bufio.Reader) (byte, []byte, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, nil, err
	}
	n := int(hdr[1] & 0x7f)
	if n >= 126 {
		return 0, nil, errors.New("frame too long for this client")
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(br, payload); err != nil {
		return 0, nil, err
	}
	return hdr[0] & 0x0f, payload, nil
}
