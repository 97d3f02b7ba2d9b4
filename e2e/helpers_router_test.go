package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// readyFields matches the key=value pairs of hop3's ready line.
var readyFields = regexp.MustCompile(`(\w+)=(\S+)`)

// startRouterDaemon is startDaemonEnv that also returns every field of the
// ready line ("ssh", "http", "https" with TLS, "root", ...).
func startRouterDaemon(t *testing.T, root string, env []string, extra ...string) (*daemon, map[string]string) {
	t.Helper()
	logPath := filepath.Join(root, "hop3-test.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"serve", "--root", root, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
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
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "hop3 ready: ")
			if !ok {
				continue
			}
			fields := map[string]string{}
			for _, m := range readyFields.FindAllStringSubmatch(line, -1) {
				fields[m[1]] = m[2]
			}
			ready <- fields
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	var fields map[string]string
	select {
	case fields = <-ready:
	case <-d.done:
		t.Fatalf("hop3 serve exited before it was ready:\n%s", d.log())
	case <-time.After(90 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("hop3 serve not ready after 90s:\n%s", d.log())
	}
	d.sshPort = fields["ssh"][strings.LastIndex(fields["ssh"], ":")+1:]
	d.httpAddr = fields["http"]
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("hop3 log:\n%s", d.log())
		}
	})
	return d, fields
}

// caddyBinds reports whether the daemon's Caddy binds its addresses itself
// (a Caddy older than 2.9, which can not inherit hop3's sockets).
func caddyBinds(d *daemon) bool {
	return strings.Contains(d.log(), "caddy predates inherited sockets")
}

// reply is one HTTP answer.
type reply struct {
	status int
	header http.Header
	body   string
}

// edgeClient sends every request to addr whatever host the URL names, so
// URLs carry the app's real host name and port, and follows no redirect.
// roots, when not nil, are the CAs trusted for HTTPS.
func edgeClient(t *testing.T, addr string, roots *x509.CertPool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// fetch sends one request and reads the whole answer.
func fetch(c *http.Client, method, url string, body []byte) (reply, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{resp.StatusCode, resp.Header, string(b)}, nil
}

// mustFetch is fetch failing the test on a transport error.
func mustFetch(t *testing.T, c *http.Client, method, url string, body []byte) reply {
	t.Helper()
	r, err := fetch(c, method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// appURL is http://HOST:PORT/PATH on the daemon's HTTP port.
func appURL(d *daemon, host, path string) string {
	_, port, _ := net.SplitHostPort(d.httpAddr)
	return "http://" + host + ":" + port + path
}

// caddyAdminSocket is the admin socket of a managed Caddy: the one hop3
// binds in <root>/admin when Caddy runs as its own user, else the one Caddy
// binds in its own directory.
func caddyAdminSocket(root string) string {
	if p := filepath.Join(root, "admin", "caddy.sock"); fileExists(p) {
		return p
	}
	return filepath.Join(root, "caddy", "admin", "admin.sock")
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// caddyAdmin returns a client for the admin API of a managed Caddy.
func caddyAdmin(root string) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", caddyAdminSocket(root))
	}}}
}

// adminGet reads path from a Caddy admin API. Host 127.0.0.1 is one that
// Caddy 2.7 to 2.9 accept on a unix socket; later ones accept any.
func adminGet(t *testing.T, c *http.Client, path string) []byte {
	t.Helper()
	resp, err := c.Get("http://127.0.0.1" + path)
	if err != nil {
		t.Fatalf("caddy admin GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("caddy admin GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b
}

// localCA fetches the root (and intermediate) of Caddy's local CA.
func localCA(t *testing.T, root string) *x509.CertPool {
	t.Helper()
	pem := adminGet(t, caddyAdmin(root), "/pki/ca/local/certificates")
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificates in Caddy's answer: %q", pem)
	}
	return pool
}

// routerApp is a WSGI app that names itself in every answer and in an
// X-Served-By header, echoes the path, counts POSTed bytes, and refuses to
// start while $DATA_DIR/down exists.
func routerApp(name string, extra map[string]string) map[string]string {
	files := map[string]string{
		"app.py": fmt.Sprintf(`import os, sys
NAME = %q
if os.path.exists(os.path.join(os.environ.get("DATA_DIR", "/nonexistent"), "down")):
    print("down file present; not starting", file=sys.stderr, flush=True)
    sys.exit(3)
def app(environ, start_response):
    if environ["REQUEST_METHOD"] == "POST":
        n = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(n)
        out = "%%s got %%d bytes" %% (NAME, len(body))
    else:
        out = "%%s %%s" %% (NAME, environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Served-By", NAME)])
    return [out.encode()]
`, name),
		"requirements.txt": "# no dependencies\n",
		"Procfile":         "wsgi: app:app\n",
	}
	for k, v := range extra {
		files[k] = v
	}
	return files
}

// routerLoad is clients requesting one app through Caddy, as startLoad's
// do (Go's default client: keep-alive, two idle connections per host), but
// sorting each failure and never sending a request twice.
type routerLoad struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	res     routerLoadResult
}

type routerLoadResult struct {
	ok, unanswered, reset, bad int
	firstBad                   string
}

func (r routerLoadResult) total() int { return r.ok + r.unanswered + r.reset + r.bad }

func (r routerLoadResult) String() string {
	return fmt.Sprintf("%d requests: %d answered, %d closed unanswered, %d reset, %d wrong answers or other errors",
		r.total(), r.ok, r.unanswered, r.reset, r.bad)
}

func startRouterLoad(d *daemon, host, want string, n int) *routerLoad {
	l := &routerLoad{}
	for range n {
		l.wg.Go(func() {
			for !l.stopped.Load() {
				req, _ := http.NewRequest("GET", "http://"+d.httpAddr+"/", nil)
				req.Host = host
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				resp, err := http.DefaultClient.Do(req.WithContext(ctx))
				// io.EOF from Do itself: not a byte of an answer came.
				closed := errors.Is(err, io.EOF)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				cancel()
				l.mu.Lock()
				switch {
				case closed:
					l.res.unanswered++
				case errors.Is(err, syscall.ECONNRESET):
					l.res.reset++
					if l.res.firstBad == "" {
						l.res.firstBad = err.Error()
					}
				case err != nil || resp.StatusCode != 200 || string(body) != want:
					l.res.bad++
					if l.res.firstBad == "" {
						status := 0
						if resp != nil {
							status = resp.StatusCode
						}
						l.res.firstBad = fmt.Sprintf("%d %q %v", status, body, err)
					}
				default:
					l.res.ok++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *routerLoad) stop() routerLoadResult {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.res
}

// ownerCaddy is a Caddy someone else runs: its admin API on a unix socket
// and one server of its own, "owner", answering "owner here" on addr.
type ownerCaddy struct {
	sock, addr string
	admin      *http.Client
}

func startOwnerCaddy(t *testing.T) *ownerCaddy {
	t.Helper()
	dir := shortTemp(t)
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		o := &ownerCaddy{sock: filepath.Join(dir, "admin.sock"), addr: ln.Addr().String()}
		ln.Close()
		cfg := fmt.Sprintf(`{"admin": {"listen": "unix/%s", "config": {"persist": false}},
  "apps": {"http": {"servers": {"owner": {"listen": [%q], "automatic_https": {"disable": true},
    "routes": [{"@id": "owner_route", "handle": [{"handler": "static_response", "body": "owner here"}]}]}}}}}`, o.sock, o.addr)
		boot := filepath.Join(dir, "owner.json")
		if err := os.WriteFile(boot, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		logf, err := os.Create(filepath.Join(dir, "owner.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tool(t, "caddy"), "run", "--config", boot)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "cfg"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		t.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
		o.admin = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", o.sock)
		}}}
		for range 200 {
			if resp, err := o.admin.Get("http://127.0.0.1/config/"); err == nil {
				resp.Body.Close()
				return o
			}
			select {
			case <-exited:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			break
		}
		if attempt >= 3 {
			b, _ := os.ReadFile(filepath.Join(dir, "owner.log"))
			t.Fatalf("owner's caddy did not start:\n%s", b)
		}
	}
}
