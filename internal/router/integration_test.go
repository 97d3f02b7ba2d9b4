package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hop3/internal/hop3test"
	"hop3/internal/staticserve"
)

// caddyBin finds the real Caddy (hop3test.FindTool), or skips the test.
func caddyBin(t *testing.T) string {
	t.Helper()
	p, err := hop3test.FindTool("caddy")
	if err != nil {
		t.Skip(err)
	}
	return p
}

// freePort returns a loopback port that was free a moment ago; callers
// retry when Caddy then finds it taken.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// edge is a managed Caddy started for one test.
type edge struct {
	r         *Router
	caddy     *Caddy
	client    *Client
	dir       string
	httpPort  int
	httpsPort int
}

var (
	inheritOnce sync.Once
	inheritOK   bool
	caddyVer    string
)

// inherits reports whether the Caddy under test serves on inherited
// sockets (2.9 and later); older ones bind their addresses themselves.
func inherits(t *testing.T) bool {
	t.Helper()
	bin := caddyBin(t)
	inheritOnce.Do(func() {
		v, err := CaddyVersion(context.Background(), bin)
		if err != nil {
			t.Logf("caddy version unknown (%v); assuming a recent one", err)
		}
		caddyVer, inheritOK = v, InheritsSockets(v)
	})
	return inheritOK
}

// startEdge starts a managed Caddy with routes already in its boot config.
// It serves on sockets the test binds and Caddy inherits, as hop3 does, or,
// with a Caddy older than 2.9, on addresses Caddy binds.
func startEdge(t *testing.T, mode TLSMode, wait time.Duration, routes []Route) *edge {
	t.Helper()
	if !inherits(t) {
		return startBindingEdge(t, mode, wait, routes)
	}
	bin := caddyBin(t)
	dir := shortDir(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	httpsAddr := ""
	if mode != TLSOff {
		httpsAddr = "127.0.0.1:0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ls, err := Listen(ctx, "127.0.0.1:0", httpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	e := &edge{dir: dir, httpPort: port(t, ls.HTTPAddr())}
	opts := Options{
		HTTPAddr:     ls.HTTPAddr(),
		HTTPSAddr:    ls.HTTPSAddr(),
		TLS:          mode,
		AdminListen:  "unix/" + filepath.Join(dir, "admin.sock") + "|0600",
		Domain:       "test",
		UpstreamWait: wait,
		ListenFDs:    true,
	}
	if mode != TLSOff {
		e.httpsPort = port(t, ls.HTTPSAddr())
	}
	if e.client, err = NewClient(opts.AdminListen); err != nil {
		t.Fatal(err)
	}
	e.r = New(opts, e.client, logger)
	if err := e.r.SetDesired(routes); err != nil {
		t.Fatal(err)
	}
	e.caddy, err = StartCaddy(ctx, ProcessOptions{
		Bin:       bin,
		Dir:       filepath.Join(dir, "caddy"),
		Env:       []string{"GOMAXPROCS=1"},
		Listeners: ls,
	}, e.r, logger)
	if err != nil {
		t.Fatalf("StartCaddy: %v", err)
	}
	e.stopAtCleanup(t)
	return e
}

// startBindingEdge starts a managed Caddy that binds its addresses itself,
// retrying when a port picked free was taken meanwhile.
func startBindingEdge(t *testing.T, mode TLSMode, wait time.Duration, routes []Route) *edge {
	t.Helper()
	bin := caddyBin(t)
	dir := shortDir(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for attempt := 0; ; attempt++ {
		e := &edge{dir: dir, httpPort: freePort(t)}
		opts := Options{
			HTTPAddr:     "127.0.0.1:" + strconv.Itoa(e.httpPort),
			TLS:          mode,
			AdminListen:  "unix/" + filepath.Join(dir, "admin.sock") + "|0600",
			Domain:       "test",
			UpstreamWait: wait,
		}
		if mode != TLSOff {
			e.httpsPort = freePort(t)
			opts.HTTPSAddr = "127.0.0.1:" + strconv.Itoa(e.httpsPort)
		}
		c, err := NewClient(opts.AdminListen)
		if err != nil {
			t.Fatal(err)
		}
		e.client = c
		e.r = New(opts, c, logger)
		if err := e.r.SetDesired(routes); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		e.caddy, err = StartCaddy(ctx, ProcessOptions{Bin: bin, Dir: filepath.Join(dir, "caddy"), Env: []string{"GOMAXPROCS=1"}}, e.r, logger)
		cancel()
		if err != nil && strings.Contains(err.Error(), "address already in use") && attempt < 4 {
			continue
		}
		if err != nil {
			t.Fatalf("StartCaddy: %v", err)
		}
		e.stopAtCleanup(t)
		return e
	}
}

func (e *edge) stopAtCleanup(t *testing.T) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.caddy.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
}

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// httpClient dials Caddy's loopback ports whatever host the URL names, so
// requests carry real app hostnames. Its idle connections are closed before
// Caddy is stopped: Go's server waits 5s for a connection that never sent
// a request before it counts as idle.
func (e *edge) httpClient(t *testing.T, roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			var d net.Dialer
			return d.DialContext(ctx, "tcp", "127.0.0.1:"+port)
		},
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConnsPerHost: 16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *edge) url(host, path string) string {
	return "http://" + host + ":" + strconv.Itoa(e.httpPort) + path
}

func (e *edge) tlsURL(host, path string) string {
	return "https://" + host + ":" + strconv.Itoa(e.httpsPort) + path
}

type reply struct {
	status int
	header http.Header
	body   string
}

// get fetches url once: a request the edge does not answer fails the test.
func get(t *testing.T, c *http.Client, url string) reply {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// getAfterReload is get for a request right after a reload of a Caddy
// that binds its own sockets: a new connection can still be accepted by
// the old server as it closes, and end without an answer (the reload
// residue the package doc names). It tries again on such transport
// errors only, a few times; an answer, whatever its status, is returned.
func getAfterReload(t *testing.T, c *http.Client, url string) reply {
	t.Helper()
	var err error
	for range 5 {
		var resp *http.Response
		if resp, err = c.Get(url); err == nil {
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr != nil {
				t.Fatalf("GET %s: read: %v", url, rerr)
			}
			return reply{resp.StatusCode, resp.Header, string(b)}
		}
		c.CloseIdleConnections()
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, err)
	return reply{}
}

// startApp serves a tiny HTTP app on a unix socket and returns its Caddy
// dial address. Each answer names the app.
func startApp(t *testing.T, dir, name string) string {
	t.Helper()
	sock := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app=%s path=%s host=%s proto=%s", name, r.URL.Path, r.Host, r.Header.Get("X-Forwarded-Proto"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix/" + sock
}

// startStatic serves files as hop3 serve-static does, on a unix socket,
// and returns its Caddy dial address.
func startStatic(t *testing.T, dir, name string, mounts ...staticserve.Mount) string {
	t.Helper()
	h, err := staticserve.New(mounts)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, name+".sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- staticserve.Serve(ctx, sock, h) }()
	t.Cleanup(func() { cancel(); <-done })
	return "unix/" + sock
}

func TestCaddyRouting(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	static := filepath.Join(dir, "static")
	site := filepath.Join(dir, "site")
	for _, d := range []string{static, filepath.Join(site, "docs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		filepath.Join(static, "x.css"):         "body{color:red}",
		filepath.Join(site, "index.html"):      "spa index",
		filepath.Join(site, "docs", "a.txt"):   "doc a",
		filepath.Join(site, "docs/index.html"): "docs index",
		filepath.Join(static, ".env"):          "SECRET=1",
	} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	one := Route{App: "one", Hosts: []string{"one.test"}, Upstreams: []string{startApp(t, dir, "one")},
		StaticPaths:  []string{"/static"},
		StaticServer: startStatic(t, dir, "one-static", staticserve.Mount{Prefix: "/static", Root: static, Dir: "."})}
	two := Route{App: "two", Hosts: []string{"two.test", "www.two.test"}, Upstreams: []string{startApp(t, dir, "two")}}
	down := Route{App: "down", Hosts: []string{"down.test"}, Upstreams: []string{"unix/" + filepath.Join(dir, "nobody.sock")}}
	stopped := Route{App: "sleepy", Hosts: []string{"sleepy.test"}, Stopped: true}
	spa := Route{App: "spa", Hosts: []string{"spa.test"}, Static: true,
		StaticServer: startStatic(t, dir, "spa-static", staticserve.Mount{Prefix: "/", Root: site, Dir: ".", CatchAll: "index.html"})}
	limited := Route{App: "small", Hosts: []string{"small.test"}, Upstreams: []string{startApp(t, dir, "small")}, MaxBodySize: 10}

	e := startEdge(t, TLSOff, time.Second, []Route{one, two, down, stopped, spa, limited})
	c := e.httpClient(t, nil)
	ctx := context.Background()

	tests := []struct {
		name   string
		host   string
		path   string
		status int
		body   string // substring
		header string // a header that must be set
	}{
		{"app one", "one.test", "/hello", 200, "app=one path=/hello host=one.test:", ""},
		{"app two", "two.test", "/", 200, "app=two", ""},
		{"second host of two", "www.two.test", "/", 200, "app=two", ""},
		{"host match ignores case", "ONE.test", "/", 200, "app=one", ""},
		{"unknown host", "nope.test", "/", 404, "No app is deployed at this address", "Content-Type"},
		{"upstream down", "down.test", "/", 502, "down is not answering", "Content-Type"},
		{"stopped", "sleepy.test", "/", 503, "sleepy is stopped", "Retry-After"},
		{"static path by the static server", "one.test", "/static/x.css", 200, "body{color:red}", "Etag"},
		{"static path missing file", "one.test", "/static/none.css", 404, "404 Not Found", ""},
		{"dotenv hidden", "one.test", "/static/.env", 404, "", ""},
		{"path beside static goes to app", "one.test", "/staticky", 200, "app=one path=/staticky", ""},
		{"spa file", "spa.test", "/docs/a.txt", 200, "doc a", "Last-Modified"},
		{"spa dir index", "spa.test", "/docs/", 200, "docs index", ""},
		{"spa fallback", "spa.test", "/some/client/route", 200, "spa index", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := get(t, c, e.url(tc.host, tc.path))
			if got.status != tc.status || !strings.Contains(got.body, tc.body) {
				t.Fatalf("GET %s%s = %d %q, want %d containing %q", tc.host, tc.path, got.status, got.body, tc.status, tc.body)
			}
			if tc.header != "" && got.header.Get(tc.header) == "" {
				t.Errorf("header %s missing: %v", tc.header, got.header)
			}
		})
	}

	t.Run("max body size", func(t *testing.T) {
		resp, err := c.Post(e.url("small.test", "/up"), "text/plain", strings.NewReader(strings.Repeat("x", 100)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("oversized body: status %d, want 413", resp.StatusCode)
		}
	})

	t.Run("set, replace and remove", func(t *testing.T) {
		before := e.r.Changes()
		three := Route{App: "three", Hosts: []string{"three.test"}, Upstreams: []string{startApp(t, dir, "three")}}
		if err := e.r.Set(ctx, three); err != nil {
			t.Fatalf("Set new: %v", err)
		}
		if got := get(t, c, e.url("three.test", "/")); got.status != 200 || !strings.Contains(got.body, "app=three") {
			t.Fatalf("new app: %d %q", got.status, got.body)
		}
		if err := e.r.Set(ctx, three); err != nil {
			t.Fatal(err)
		}
		// Point three at two's socket: replaced in place.
		three.Upstreams = two.Upstreams
		if err := e.r.Set(ctx, three); err != nil {
			t.Fatalf("Set replace: %v", err)
		}
		if got := get(t, c, e.url("three.test", "/")); !strings.Contains(got.body, "app=two") {
			t.Fatalf("replaced upstream not used: %q", got.body)
		}
		if err := e.r.Remove(ctx, "three"); err != nil {
			t.Fatal(err)
		}
		if err := e.r.Remove(ctx, "three"); err != nil {
			t.Fatalf("second Remove: %v", err)
		}
		if got := get(t, c, e.url("three.test", "/")); got.status != 404 {
			t.Fatalf("removed app: %d", got.status)
		}
		if n := e.r.Changes() - before; n != 3 {
			t.Errorf("Changes grew by %d, want 3 (insert, replace, delete)", n)
		}
		// Other apps untouched, catch-all still last.
		if got := get(t, c, e.url("one.test", "/")); got.status != 200 {
			t.Errorf("one after changes: %d", got.status)
		}
		var ids []struct {
			ID string `json:"@id"`
		}
		if err := e.client.Get(ctx, "/id/hop3_server/routes", &ids); err != nil {
			t.Fatal(err)
		}
		if last := ids[len(ids)-1].ID; last != catchAllID {
			t.Errorf("last route = %s, want the catch-all", last)
		}
	})

	t.Run("sync replaces the set", func(t *testing.T) {
		if err := e.r.Sync(ctx, []Route{two}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, c, e.url("one.test", "/")); got.status != 404 {
			t.Errorf("one after Sync without it: %d", got.status)
		}
		if got := get(t, c, e.url("two.test", "/")); got.status != 200 {
			t.Errorf("two after Sync: %d", got.status)
		}
	})

	t.Run("admin error text", func(t *testing.T) {
		err := e.client.Do(ctx, http.MethodPatch, "/id/hop3_app_x", struct{}{})
		want := "caddy admin: PATCH /id/hop3_app_x: 404: unknown object ID 'hop3_app_x'"
		if err == nil || err.Error() != want || !IsNotFound(err) {
			t.Errorf("error = %v, want %q", err, want)
		}
	})

	t.Run("persist off", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(e.dir, "caddy", "config", "caddy", "autosave.json")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("caddy wrote autosave.json: %v", err)
		}
	})
}

// TestCaddySetUnderLoad changes one app's route 50 times while clients
// keep requesting another app, and sends no request twice.
//
// What must never happen: an error response, an answer from anything but
// busy, or a connection reset. Resets were what Caddy's own listeners
// caused: each reload bound a new SO_REUSEPORT socket and closed the old
// one, resetting the connections queued on it. Caddy now inherits sockets
// hop3 bound, which every reload reuses.
//
// What remains (see the package doc): a connection the old server accepted
// but whose first request it had not read when its shutdown began is
// closed unanswered. The reload overlap makes those rare; the test counts
// them, bounds them at 2% of requests and logs them so the rate can be
// followed.
func TestCaddySetUnderLoad(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	busy := Route{App: "busy", Hosts: []string{"busy.test"}, Upstreams: []string{startApp(t, dir, "busy")}}
	other := Route{App: "other", Hosts: []string{"other.test"}, Upstreams: []string{startApp(t, dir, "other")}}
	e := startEdge(t, TLSOff, 0, []Route{busy, other})
	// Clients like Go's default one: keep-alive with two idle
	// connections per host, so most requests open a connection.
	c := e.httpClient(t, nil)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 2
	load := startEdgeLoad(c, e.url("busy.test", "/load"), "app=busy", 20)

	ctx := context.Background()
	const changes = 50
	for i := range changes {
		o := other
		o.Hosts = []string{"other.test", "other" + strconv.Itoa(i%2) + ".test"}
		if err := e.r.Set(ctx, o); err != nil {
			t.Fatalf("Set: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res := load.Stop()
	t.Logf("%d config changes under load (caddy %s): %s", changes, caddyVer, res)
	if !inherits(t) {
		// Caddy binds its own sockets and resets what waits on the old
		// one at each reload: up to 5% of requests may be lost so.
		res.Unanswered, res.Reset = res.Unanswered+res.Reset, 0
		checkLoad(t, res, 5)
		return
	}
	checkLoad(t, res, 2)
}

// checkLoad fails the test on any reset or wrong answer, and on
// connections closed unanswered beyond maxPercent of requests.
func checkLoad(t *testing.T, r hop3test.LoadResult, maxPercent int) {
	t.Helper()
	if err := r.Check(100, maxPercent); err != nil {
		t.Fatal(err)
	}
}

// startEdgeLoad is n clients requesting url with c until stopped, each
// answer a 200 holding want.
func startEdgeLoad(c *http.Client, url, want string, n int) *hop3test.Load {
	return hop3test.StartLoad(c, url, "", func(status int, body string) bool {
		return status == 200 && strings.Contains(body, want)
	}, n)
}

// TestCaddyRestartAfterKill kills Caddy with SIGKILL and expects the
// supervisor to bring every route back without help.
func TestCaddyRestartAfterKill(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	a := Route{App: "a", Hosts: []string{"a.test"}, Upstreams: []string{startApp(t, dir, "a")}}
	b := Route{App: "b", Hosts: []string{"b.test"}, Upstreams: []string{startApp(t, dir, "b")}}
	e := startEdge(t, TLSOff, 0, []Route{a})
	ctx := context.Background()
	// b arrives through the admin API, so only the router remembers it.
	if err := e.r.Set(ctx, b); err != nil {
		t.Fatal(err)
	}
	c := e.httpClient(t, nil)
	old := e.caddy.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// A request made while no Caddy runs waits in the inherited socket's
	// queue and is answered by the next Caddy: nothing is refused.
	for e.caddy.PID() != 0 {
		time.Sleep(5 * time.Millisecond)
	}
	if e.caddy.Restarts() != 0 {
		t.Fatal("caddy restarted before the request could be sent")
	}
	if inherits(t) {
		early := get(t, c, e.url("a.test", "/while-down"))
		if early.status != 200 || !strings.Contains(early.body, "app=a path=/while-down") {
			t.Errorf("request sent while caddy was down: %d %q", early.status, early.body)
		}
	}
	deadline := time.Now().Add(8 * time.Second)
	for e.caddy.Restarts() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("caddy was not restarted; log:\n%s", logTail(e.caddy.LogPath()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid := e.caddy.PID(); pid == old || pid == 0 {
		t.Errorf("PID after restart = %d (old %d)", pid, old)
	}
	// The route set through the admin API is back without any call.
	for _, app := range []string{"a", "b"} {
		if got := get(t, c, e.url(app+".test", "/")); got.status != 200 || !strings.Contains(got.body, "app="+app) {
			t.Errorf("%s after restart: %d %q", app, got.status, got.body)
		}
	}
	// The router is usable at once against the new process.
	if err := e.r.Remove(ctx, "b"); err != nil {
		t.Errorf("Remove after restart: %v", err)
	}
}

// TestCaddyStopDuringBackoff stops a Caddy that has just died: the
// supervisor must give up the restart and return at once.
func TestCaddyStopDuringBackoff(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	e := startEdge(t, TLSOff, 0, []Route{{App: "a", Hosts: []string{"a.test"}, Upstreams: []string{startApp(t, dir, "a")}}})
	pid := e.caddy.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Wait until the supervisor saw the exit.
	for e.caddy.PID() != 0 {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := e.caddy.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if e.caddy.Restarts() != 0 || e.caddy.PID() != 0 {
		t.Errorf("after Stop: restarts %d, pid %d", e.caddy.Restarts(), e.caddy.PID())
	}
	if err := e.client.Get(ctx, "/config/", nil); err == nil {
		t.Error("a Caddy still answers after Stop")
	}
}

func TestCaddyTLSInternal(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	plain := Route{App: "plain", Hosts: []string{"plain.test"}, Upstreams: []string{startApp(t, dir, "plain")}}
	secure := Route{App: "secure", Hosts: []string{"secure.test"}, Upstreams: []string{startApp(t, dir, "secure")}, HTTPSOnly: true}
	e := startEdge(t, TLSInternal, 0, []Route{plain, secure})
	ctx := context.Background()
	// An app added after boot must get its certificate too.
	late := Route{App: "late", Hosts: []string{"late.test"}, Upstreams: []string{startApp(t, dir, "late")}}
	if err := e.r.Set(ctx, late); err != nil {
		t.Fatal(err)
	}

	var pem []byte
	if err := e.client.Get(ctx, "/pki/ca/local/certificates", &pem); err != nil {
		t.Fatalf("get local CA: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificates in %q", pem)
	}
	c := e.httpClient(t, roots)

	// Certificates are issued in the background after a load.
	for _, app := range []string{"plain", "secure", "late"} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := c.Get(e.tlsURL(app+".test", "/x"))
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "app="+app+" path=/x") || !strings.Contains(string(body), "proto=https") {
					t.Fatalf("https %s: %d %q", app, resp.StatusCode, body)
				}
				// HTTP/3 is served on the inherited UDP socket.
				if alt, want := resp.Header.Get("Alt-Svc"), `h3=":`+strconv.Itoa(e.httpsPort)+`"`; !strings.Contains(alt, want) {
					t.Errorf("https %s: Alt-Svc %q, want %s", app, alt, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("https %s: %v", app, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	if got := get(t, c, e.url("plain.test", "/x")); got.status != 200 || !strings.Contains(got.body, "proto=http") {
		t.Errorf("plain over http: %d %q", got.status, got.body)
	}
	got := get(t, c, e.url("secure.test", "/x?y=1"))
	want := e.tlsURL("secure.test", "/x?y=1")
	if got.status != http.StatusPermanentRedirect || got.header.Get("Location") != want {
		t.Errorf("https-only over http: %d Location %q, want 308 %q", got.status, got.header.Get("Location"), want)
	}
}

// startOwnerCaddy starts a Caddy hop3 does not own, with the "apps" object
// apps(port) returns (port is free, for the owner's own server), and
// returns a client for its admin socket.
func startOwnerCaddy(t *testing.T, dir string, apps func(port int) string) (*Client, int) {
	t.Helper()
	c := hop3test.StartCaddy(t, caddyBin(t), dir, apps)
	client, err := NewClient("unix/" + c.Sock)
	if err != nil {
		t.Fatal(err)
	}
	return client, c.Port
}

// TestCaddyAttachCreatesParents attaches to a Caddy whose config lacks
// hop3's server's parents. Caddy answers a PATCH there with 500 "invalid
// traversal path", not 404; attaching must create what is missing anyway.
func TestCaddyAttachCreatesParents(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, apps string }{
		{"empty http", `{"http":{}}`},
		{"empty apps", `{}`},
		{"only tls", `{"tls":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			client, _ := startOwnerCaddy(t, dir, func(int) string { return tc.apps })
			ctx := context.Background()
			app := Route{App: "app", Hosts: []string{"app.test"}, Upstreams: []string{startApp(t, dir, "app")}}
			_, httpPort := attachOnFreePort(ctx, t, client, app)
			e := &edge{httpPort: httpPort}
			if got := get(t, e.httpClient(t, nil), e.url("app.test", "/")); got.status != 200 || !strings.Contains(got.body, "app=app") {
				t.Fatalf("app through attached server: %d %q", got.status, got.body)
			}
		})
	}
}

// attachOnFreePort attaches a router serving app on a free port to the
// Caddy client reaches, trying again when the port was taken meanwhile.
func attachOnFreePort(ctx context.Context, t *testing.T, client *Client, app Route) (*Router, int) {
	t.Helper()
	for attempt := 0; ; attempt++ {
		httpPort := freePort(t)
		r := New(Options{HTTPAddr: "127.0.0.1:" + strconv.Itoa(httpPort)}, client, nil)
		if err := r.SetDesired([]Route{app}); err != nil {
			t.Fatal(err)
		}
		err := r.Attach(ctx)
		if err == nil {
			return r, httpPort
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt >= 4 {
			t.Fatalf("Attach: %v", err)
		}
	}
}

// TestCaddyAttach runs hop3 against a Caddy someone else owns and checks
// that only hop3's server changes.
func TestCaddyAttach(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	client, otherPort := startOwnerCaddy(t, dir, func(port int) string {
		return fmt.Sprintf(`{"http":{"servers":{"other":{"listen":["127.0.0.1:%d"],"automatic_https":{"disable":true},
			"routes":[{"@id":"owner_route","handle":[{"handler":"static_response","body":"owner"}]}]}}}}`, port)
	})
	ctx := context.Background()
	var before json.RawMessage
	if err := client.Get(ctx, "apps/http/servers/other", &before); err != nil {
		t.Fatal(err)
	}

	app := Route{App: "app", Hosts: []string{"app.test"}, Upstreams: []string{startApp(t, dir, "app")}}
	r, httpPort := attachOnFreePort(ctx, t, client, app)
	e := &edge{httpPort: httpPort}
	c := e.httpClient(t, nil)
	if got := get(t, c, e.url("app.test", "/")); got.status != 200 || !strings.Contains(got.body, "app=app") {
		t.Fatalf("app through attached server: %d %q", got.status, got.body)
	}
	two := Route{App: "two", Hosts: []string{"two.test"}, Upstreams: app.Upstreams}
	if err := r.Set(ctx, two); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx, []Route{two}); err != nil {
		t.Fatal(err)
	}
	// An attached Caddy binds its own sockets: a reload ends the old
	// server's idle keep-alive connections, which this client would
	// otherwise reuse (the package doc's reload residue; drops are measured
	// elsewhere, this test is about what the routes answer).
	c.CloseIdleConnections()
	if got := getAfterReload(t, c, e.url("app.test", "/")); got.status != 404 {
		t.Errorf("app after Sync without it: %d", got.status)
	}
	if got := getAfterReload(t, c, e.url("two.test", "/")); got.status != 200 {
		t.Errorf("two: %d", got.status)
	}
	if err := r.Remove(ctx, "two"); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()

	var after json.RawMessage
	if err := client.Get(ctx, "apps/http/servers/other", &after); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("owner's server changed:\nbefore %s\nafter  %s", before, after)
	}
	owner := &edge{httpPort: otherPort}
	if got := get(t, c, owner.url("anything.test", "/")); got.body != "owner" {
		t.Errorf("owner's server answers %q", got.body)
	}
}

func TestStartCaddyStaleSocket(t *testing.T) {
	t.Parallel()
	bin := caddyBin(t)
	tests := []struct {
		name    string
		listen  bool // something still listens on the socket
		wantErr string
	}{
		{"stale file is removed", false, ""},
		{"live socket is refused", true, "in use by another process"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := shortDir(t)
			sock := filepath.Join(dir, "admin.sock")
			ln, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			if tc.listen {
				t.Cleanup(func() { ln.Close() })
			} else {
				ln.(*net.UnixListener).SetUnlinkOnClose(false)
				ln.Close()
			}
			opts := Options{HTTPAddr: "127.0.0.1:" + strconv.Itoa(freePort(t)), AdminListen: "unix/" + sock + "|0600"}
			client, err := NewClient(opts.AdminListen)
			if err != nil {
				t.Fatal(err)
			}
			r := New(opts, client, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			caddy, err := StartCaddy(ctx, ProcessOptions{Bin: bin, Dir: filepath.Join(dir, "caddy")}, r, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("StartCaddy error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("StartCaddy: %v", err)
			}
			if err := caddy.Stop(ctx); err != nil {
				t.Errorf("Stop: %v", err)
			}
			if caddy.PID() != 0 {
				t.Errorf("PID after Stop = %d", caddy.PID())
			}
		})
	}
}

// TestGoldenConfigsValidate runs every golden config through
// `caddy validate`, so the golden files are known to be configs Caddy
// accepts, not just what the builder happens to print.
func TestGoldenConfigsValidate(t *testing.T) {
	t.Parallel()
	bin := caddyBin(t)
	dir := shortDir(t)
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.ListenFDs && !inherits(t) {
				t.Skipf("caddy %s predates inherited sockets (%s)", caddyVer, MinInheritVersion)
			}
			file := filepath.Join("testdata", tc.name+".json")
			if tc.opts.ACMECARoot != "" {
				// Caddy reads the trusted roots when it validates.
				file = withRootFile(t, file, tc.opts.ACMECARoot)
			}
			cmd := exec.Command(bin, "validate", "--config", file)
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "cfg"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
			out, err := cmd.CombinedOutput()
			if p := tc.opts.ACMEDNS; p != nil && !slices.Contains(caddyModules(t, bin), p.Module()) {
				// A stock Caddy has no DNS provider: its error names the
				// missing module, which is what hop3 checks for first.
				if err == nil || !strings.Contains(string(out), p.Module()) {
					t.Fatalf("caddy validate without %s: %v\n%s", p.Module(), err, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("caddy validate: %v\n%s", err, out)
			}
		})
	}
}

// caddyModules lists the modules of the Caddy under test.
func caddyModules(t *testing.T, bin string) []string {
	t.Helper()
	mods, err := CaddyModules(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(mods, "http.handlers.reverse_proxy") {
		t.Fatalf("caddy list-modules lists no reverse_proxy: %v", mods)
	}
	return mods
}

// withRootFile copies the config file, naming a real PEM root file where it
// names path, and returns the copy.
func withRootFile(t *testing.T, file, path string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(out, bytes.ReplaceAll(b, []byte(path), []byte(root)), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// startStreamApp serves an app with two long-lived endpoints: an upgraded
// echo connection (what a WebSocket looks like to a proxy) and /stream,
// which sends one line, then waits for release before the second.
func startStreamApp(t *testing.T, dir string, release <-chan struct{}) string {
	t.Helper()
	sock := filepath.Join(dir, "stream.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
			brw.Flush()
			io.Copy(conn, brw)
			return
		}
		// A known length would let a proxy buffer the whole body; the
		// route's flush_interval makes Caddy pass the first line on while
		// the second is held back.
		w.Header().Set("Content-Length", strconv.Itoa(len("first\nsecond\n")))
		io.WriteString(w, "first\n")
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "second\n")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "unix/" + sock
}

// TestCaddyStreams checks that responses stream as they are written and
// that upgraded connections survive config changes, including a change of
// their own app's route.
func TestCaddyStreams(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	release := make(chan struct{})
	defer close(release)
	app := Route{App: "live", Hosts: []string{"live.test"}, Upstreams: []string{startStreamApp(t, dir, release)}}
	other := Route{App: "other", Hosts: []string{"other.test"}, Upstreams: []string{startApp(t, dir, "other")}}
	e := startEdge(t, TLSOff, 0, []Route{app, other})
	ctx := context.Background()

	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(e.httpPort), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: live.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		t.Fatalf("upgrade answer %q, %v", status, err)
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line == "\r\n" {
			break
		}
	}
	echo := func(msg string) {
		t.Helper()
		if _, err := io.WriteString(conn, msg+"\n"); err != nil {
			t.Fatalf("write %s: %v", msg, err)
		}
		got, err := br.ReadString('\n')
		if err != nil || got != msg+"\n" {
			t.Fatalf("echo %s: got %q, %v", msg, got, err)
		}
	}
	echo("before")
	o := other
	o.Hosts = append(o.Hosts, "other2.test")
	if err := e.r.Set(ctx, o); err != nil {
		t.Fatal(err)
	}
	echo("after another app changed")
	a := app
	a.Hosts = append(a.Hosts, "live2.test")
	if err := e.r.Set(ctx, a); err != nil {
		t.Fatal(err)
	}
	echo("after its own route changed")

	// The first line arrives while the app still holds the response open.
	c := e.httpClient(t, nil)
	c.Timeout = 3 * time.Second
	resp, err := c.Get(e.url("live.test", "/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || first != "first\n" {
		t.Fatalf("streamed line = %q, %v", first, err)
	}
}
