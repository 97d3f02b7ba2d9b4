package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hop3/internal/hop3test"
)

// startRouterDaemon is startDaemonEnv that also returns every field of the
// ready line ("ssh", "http", "https" with TLS, "root", ...).
func startRouterDaemon(t *testing.T, root string, env []string, extra ...string) (*daemon, map[string]string) {
	t.Helper()
	d := startWith(t, hop3test.Options{Root: root, Env: env, Args: extra})
	return d, d.Ready
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
type routerLoad struct{ *hop3test.Load }

type routerLoadResult struct {
	ok, unanswered, reset, bad int
	firstBad                   string
}

func (r routerLoadResult) total() int { return r.ok + r.unanswered + r.reset + r.bad }

func (r routerLoadResult) String() string {
	return hop3test.LoadResult{OK: r.ok, Unanswered: r.unanswered, Reset: r.reset, Bad: r.bad}.String()
}

func startRouterLoad(d *daemon, host, want string, n int) *routerLoad {
	ok := func(status int, body string) bool { return status == 200 && body == want }
	return &routerLoad{hop3test.StartLoad(http.DefaultClient, "http://"+d.httpAddr+"/", host, ok, n)}
}

func (l *routerLoad) stop() routerLoadResult {
	r := l.Stop()
	return routerLoadResult{r.OK, r.Unanswered, r.Reset, r.Bad, r.FirstBad}
}

// ownerCaddy is a Caddy someone else runs: its admin API on a unix socket
// and one server of its own, "owner", answering "owner here" on addr.
type ownerCaddy struct {
	sock, addr string
	admin      *http.Client
}

func startOwnerCaddy(t *testing.T) *ownerCaddy {
	t.Helper()
	c := hop3test.StartCaddy(t, tool(t, "caddy"), shortTemp(t), func(port int) string {
		return fmt.Sprintf(`{"http": {"servers": {"owner": {"listen": ["127.0.0.1:%d"], "automatic_https": {"disable": true},
    "routes": [{"@id": "owner_route", "handle": [{"handler": "static_response", "body": "owner here"}]}]}}}}`, port)
	})
	return &ownerCaddy{sock: c.Sock, addr: "127.0.0.1:" + strconv.Itoa(c.Port), admin: c.Admin}
}
