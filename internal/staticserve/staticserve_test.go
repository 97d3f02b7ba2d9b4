package staticserve

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tree builds an app's layout: a release behind a current link, a
// DATA_DIR, and a secret beside them that must never be served.
type tree struct {
	base, release, data, secret string
}

func newTree(t testing.TB) tree {
	t.Helper()
	base := t.TempDir()
	tr := tree{
		base:    base,
		release: filepath.Join(base, "app", "releases", "1"),
		data:    filepath.Join(base, "data"),
		secret:  filepath.Join(base, "hop3.db"),
	}
	write(t, tr.secret, "SECRET")
	for name, body := range map[string]string{
		"app.py":                   "code",
		".env":                     "TOKEN=1",
		"public/app.css":           "body{}",
		"public/img/a.txt":         "a",
		"public/index.html":        "site index",
		"public/docs/index.html":   "docs index",
		"public/empty/.keep":       "",
		"public/.env":              "HIDDEN=1",
		"public/.git/config":       "[core]",
		"public/deep/.git/HEAD":    "ref",
		"public/sub/x.txt":         "x",
		"public/big.txt":           strings.Repeat("0123456789", 100),
		"../../../data/pub/ok.txt": "data ok",
		"../../../data/private":    "app private",
	} {
		write(t, filepath.Join(tr.release, name), body)
	}
	link(t, "app.css", filepath.Join(tr.release, "public/in.css"))
	link(t, "../app.css", filepath.Join(tr.release, "public/sub/up.css"))
	link(t, "img", filepath.Join(tr.release, "public/imgs"))
	link(t, tr.secret, filepath.Join(tr.release, "public/abs"))
	link(t, "../../../../../hop3.db", filepath.Join(tr.release, "public/rel"))
	link(t, "../..", filepath.Join(tr.release, "public/updir"))
	link(t, "../app.py", filepath.Join(tr.release, "public/code.py"))
	link(t, filepath.Join(tr.release, "public/app.css"), filepath.Join(tr.release, "public/absin.css"))
	link(t, "/etc/passwd", filepath.Join(tr.data, "pub/passwd"))
	link(t, "../private", filepath.Join(tr.data, "pub/private"))
	link(t, "/proc/self/root/etc/passwd", filepath.Join(tr.data, "pub/magic"))
	link(t, "releases/1", filepath.Join(base, "app", "current"))
	if err := syscall.Mkfifo(filepath.Join(tr.release, "public/fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return tr
}

func write(t testing.TB, name, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t testing.TB, target, name string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

func (tr tree) handler(t testing.TB, catchAll string) *Handler {
	t.Helper()
	current := filepath.Join(tr.base, "app", "current")
	h, err := New([]Mount{
		{Prefix: "/static", Root: current, Dir: "public"},
		{Prefix: "/static/deep", Root: current, Dir: "public/img"},
		{Prefix: "/pub", Root: tr.data, Dir: "pub"},
		{Prefix: "/", Root: current, Dir: "public", CatchAll: catchAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

type answer struct {
	status int
	body   string
	header http.Header
}

func do(h http.Handler, method, target string, hdr ...string) answer {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return answer{rec.Code, rec.Body.String(), rec.Header()}
}

func TestServe(t *testing.T) {
	tr := newTree(t)
	h := tr.handler(t, "")
	tests := []struct {
		name, path string
		status     int
		body       string // exact, when status is 200
	}{
		{"file", "/static/app.css", 200, "body{}"},
		{"subdirectory", "/static/img/a.txt", 200, "a"},
		{"longest prefix wins", "/static/deep/a.txt", 200, "a"},
		{"dot dot stays inside", "/static/../static/../app.py", 404, ""},
		{"encoded dot dot stays inside", "/static/%2e%2e/app.py", 404, ""},
		{"symlink inside", "/static/in.css", 200, "body{}"},
		{"symlink climbing inside", "/static/sub/up.css", 200, "body{}"},
		{"symlinked dir inside", "/static/imgs/a.txt", 200, "a"},
		{"absolute symlink out", "/static/abs", 404, ""},
		{"relative symlink out", "/static/rel", 404, ""},
		{"through a dir link out", "/static/updir/hop3.db", 404, ""},
		{"symlink to the release outside the dir", "/static/code.py", 404, ""},
		{"absolute symlink, even inside", "/static/absin.css", 404, ""},
		{"dotenv hidden", "/static/.env", 404, ""},
		{"git hidden", "/static/.git/config", 404, ""},
		{"git hidden deeper", "/static/deep/.git/HEAD", 404, ""},
		{"missing", "/static/none.css", 404, ""},
		{"NUL byte", "/static/app.css%00.txt", 404, ""},
		{"fifo does not block", "/static/fifo", 404, ""},
		{"dir index", "/static/docs/", 200, "docs index"},
		{"dir without index", "/static/empty/", 404, ""},
		{"data file", "/pub/ok.txt", 200, "data ok"},
		{"data symlink to /etc/passwd", "/pub/passwd", 404, ""},
		{"data symlink beside the dir", "/pub/private", 404, ""},
		{"magic link", "/pub/magic", 404, ""},
		{"site root", "/", 200, "site index"},
		{"site file", "/img/a.txt", 200, "a"},
		{"no catch-all", "/some/route", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			done := make(chan answer, 1)
			go func() { done <- do(h, "GET", tc.path) }()
			var got answer
			select {
			case got = <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("GET %s hangs", tc.path)
			}
			if got.status != tc.status || (tc.status == 200 && got.body != tc.body) {
				t.Fatalf("GET %s = %d %q, want %d %q", tc.path, got.status, got.body, tc.status, tc.body)
			}
			if strings.Contains(got.body, "SECRET") || strings.Contains(got.body, "root:") || strings.Contains(got.body, "app private") {
				t.Fatalf("GET %s leaked: %q", tc.path, got.body)
			}
		})
	}
}

func TestServeHTTPSemantics(t *testing.T) {
	tr := newTree(t)
	h := tr.handler(t, "index.html")

	r := do(h, "GET", "/static/app.css")
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("Content-Type %q", ct)
	}
	etag := r.header.Get("Etag")
	if etag == "" || r.header.Get("Last-Modified") == "" {
		t.Fatalf("no validators: %v", r.header)
	}
	if r := do(h, "GET", "/static/app.css", "If-None-Match", etag); r.status != 304 {
		t.Errorf("If-None-Match: %d, want 304", r.status)
	}
	if r := do(h, "GET", "/static/app.css", "If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)); r.status != 304 {
		t.Errorf("If-Modified-Since: %d, want 304", r.status)
	}
	if r := do(h, "GET", "/static/big.txt", "Range", "bytes=10-14"); r.status != 206 || r.body != "01234" {
		t.Errorf("Range: %d %q, want 206 01234", r.status, r.body)
	}
	if r := do(h, "HEAD", "/static/app.css"); r.status != 200 || r.body != "" || r.header.Get("Content-Length") != "6" {
		t.Errorf("HEAD: %d %q %v", r.status, r.body, r.header)
	}
	if r := do(h, "POST", "/static/app.css"); r.status != 405 || r.header.Get("Allow") == "" {
		t.Errorf("POST: %d %v", r.status, r.header)
	}
	if r := do(h, "GET", "/static/docs?x=1"); r.status != 308 || r.header.Get("Location") != "/static/docs/?x=1" {
		t.Errorf("dir without slash: %d %v", r.status, r.header)
	}
	for _, p := range []string{"/some/client/route", "/empty/", "/users/42?tab=x"} {
		r := do(h, "GET", p)
		if r.status != 200 || r.body != "site index" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Errorf("catch-all %s: %d %q %v", p, r.status, r.body, r.header)
		}
	}
	// A refused link is not a missing file: no fallback, no content.
	if r := do(h, "GET", "/abs"); r.status != 404 {
		t.Errorf("a link out under a catch-all: %d %q, want 404", r.status, r.body)
	}
}

// TestServeLaterChanges: the checks hold for what the app does after the
// handler started: a symlink made later, the served directory replaced by
// a link out, and a deploy that moves the current link.
func TestServeLaterChanges(t *testing.T) {
	tr := newTree(t)
	h := tr.handler(t, "")
	pub := filepath.Join(tr.release, "public")

	link(t, tr.secret, filepath.Join(pub, "late"))
	if r := do(h, "GET", "/static/late"); r.status != 404 {
		t.Errorf("symlink made after start: %d %q", r.status, r.body)
	}

	next := filepath.Join(tr.base, "app", "releases", "2")
	write(t, filepath.Join(next, "public", "app.css"), "v2")
	cur := filepath.Join(tr.base, "app", "current")
	link(t, "releases/2", cur+".new")
	if err := os.Rename(cur+".new", cur); err != nil {
		t.Fatal(err)
	}
	if r := do(h, "GET", "/static/app.css"); r.status != 200 || r.body != "v2" {
		t.Errorf("after the current link moved: %d %q, want v2", r.status, r.body)
	}

	pub2 := filepath.Join(next, "public")
	if err := os.RemoveAll(pub2); err != nil {
		t.Fatal(err)
	}
	link(t, tr.base, pub2)
	if r := do(h, "GET", "/static/hop3.db"); r.status != 404 {
		t.Errorf("served dir replaced by a link out: %d %q", r.status, r.body)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Mount
	}{
		{"relative root", Mount{Prefix: "/s", Root: "srv", Dir: "."}},
		{"unclean root", Mount{Prefix: "/s", Root: "/srv/../etc", Dir: "."}},
		{"absolute dir", Mount{Prefix: "/s", Root: "/srv", Dir: "/etc"}},
		{"dir climbs", Mount{Prefix: "/s", Root: "/srv", Dir: "../etc"}},
		{"empty dir", Mount{Prefix: "/s", Root: "/srv"}},
		{"prefix slash", Mount{Prefix: "/s/", Root: "/srv", Dir: "."}},
		{"prefix relative", Mount{Prefix: "s", Root: "/srv", Dir: "."}},
		{"catch-all climbs", Mount{Prefix: "/", Root: "/srv", Dir: ".", CatchAll: "../x"}},
	} {
		if _, err := New([]Mount{tc.m}); err == nil {
			t.Errorf("%s: New(%+v) accepted", tc.name, tc.m)
		}
	}
	if _, err := New([]Mount{{Prefix: "/s", Root: "/srv", Dir: "."}, {Prefix: "/s", Root: "/srv", Dir: "x"}}); err == nil {
		t.Error("a prefix listed twice was accepted")
	}
}

func TestServeSocket(t *testing.T) {
	tr := newTree(t)
	h := tr.handler(t, "")
	sock := filepath.Join(tr.base, "s.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, sock, h) }()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = c.Get("http://x/static/app.css"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body{}" {
		t.Fatalf("over the socket: %q", b)
	}
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode: %v %v, want 0660", fi.Mode(), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

// FuzzServe: whatever the path, nothing outside the served directories
// is ever answered.
func FuzzServe(f *testing.F) {
	for _, p := range []string{"/static/abs", "/static/../../hop3.db", "/pub/passwd", "/static/updir/hop3.db", "/%2e%2e/%2e%2e/hop3.db", "/static//rel", "/pub/magic"} {
		f.Add(p)
	}
	tr := newTree(f)
	h := tr.handler(f, "index.html")
	f.Fuzz(func(t *testing.T, p string) {
		req, err := http.NewRequest("GET", "http://x/", nil)
		if err != nil {
			t.Skip()
		}
		req.URL.Path = "/" + strings.TrimPrefix(p, "/")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if body := rec.Body.String(); strings.Contains(body, "SECRET") || strings.Contains(body, "root:") || strings.Contains(body, "app private") || strings.Contains(body, "TOKEN=") || strings.Contains(body, "HIDDEN=") || strings.Contains(body, "[core]") || body == "code" {
			t.Fatalf("GET %q = %d %q", req.URL.Path, rec.Code, body)
		}
	})
}

// TestServeScripted: a PHP document root serves its static files, never a
// script's source, and names the script php-fpm runs for everything else,
// as Caddy's php_fastcgi try_files would.
func TestServeScripted(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "app")
	for name, body := range map[string]string{
		"public/index.php":       "<?php echo 1;",
		"public/style.css":       "body{}",
		"public/blog/index.php":  "<?php echo 2;",
		"public/blog/index.html": "not this one",
		"public/docs/index.html": "docs index",
		"public/Upper.PHP":       "<?php echo 3;",
		"public/.env":            "TOKEN=1",
		"config.php":             "<?php $secret = 1;",
	} {
		write(t, filepath.Join(root, name), body)
	}
	link(t, "../config.php", filepath.Join(root, "public/config.txt"))
	link(t, "index.php", filepath.Join(root, "public/source.txt"))
	h, err := New([]Mount{{Prefix: "/", Root: root, Dir: "public", Script: "index.php"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		status     int
		body       string // exact, when status is 200
		script     string // ScriptHeader of a 404
	}{
		{"static file", "/style.css", 200, "body{}", ""},
		{"site root runs index.php", "/", 404, "", "/index.php"},
		{"script", "/index.php", 404, "", "/index.php"},
		{"script with path info", "/index.php/a/b", 404, "", "/index.php/a/b"},
		{"script, any case", "/Upper.PHP", 404, "", "/Upper.PHP"},
		{"missing script runs the front controller", "/gone.php", 404, "", "/index.php"},
		{"route runs the front controller", "/users/42", 404, "", "/index.php"},
		{"directory index.php before index.html", "/blog/", 404, "", "/blog/index.php"},
		{"directory without slash", "/blog", 308, "", ""},
		{"directory index.html", "/docs/", 200, "docs index", ""},
		{"escaped path kept escaped", "/a%20b.php/x", 404, "", "/index.php"},
		{"symlink out of the root", "/config.txt", 404, "", "/index.php"},
		{"hidden file", "/.env", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := do(h, "GET", tc.path)
			if got.status != tc.status || (tc.status == 200 && got.body != tc.body) {
				t.Fatalf("GET %s = %d %q, want %d %q", tc.path, got.status, got.body, tc.status, tc.body)
			}
			if s := got.header.Get(ScriptHeader); s != tc.script {
				t.Fatalf("GET %s: %s %q, want %q", tc.path, ScriptHeader, s, tc.script)
			}
			if strings.Contains(got.body, "<?php") {
				t.Fatalf("GET %s served PHP source: %q", tc.path, got.body)
			}
		})
	}
	// A link to a script inside the root is still a static file of
	// another name: what a link names is the app's choice, as with Caddy.
	if got := do(h, "GET", "/source.txt"); got.status != 200 {
		t.Fatalf("GET /source.txt = %d", got.status)
	}
	if _, err := New([]Mount{{Prefix: "/", Root: root, Dir: "public", Script: "index.html"}}); err == nil {
		t.Fatal("a script that is not a .php file was accepted")
	}
}
