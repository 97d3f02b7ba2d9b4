package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRouterHosts serves two apps on their own hosts plus hosts added with
// HOST_NAME in the repository's .env and with domains:add, and refuses a
// host another app answers to, naming that app, whichever way it is asked
// for: domains:add, config:set HOST_NAME, or HOST_NAME in a pushed .env.
func TestRouterHosts(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	c := edgeClient(t, d.httpAddr, nil)

	newWorkdir(t, routerApp("alpha", map[string]string{".env": "HOST_NAME=www.alpha.test,Alpha.Example.org\n"})).mustPush(d, alice, "alpha")
	newWorkdir(t, routerApp("beta", nil)).mustPush(d, alice, "beta")
	d.mustCmd(alice, "domains:add", "beta", "api.beta.test")

	served := map[string]string{
		"alpha.localhost":   "alpha /x",
		"www.alpha.test":    "alpha /x",
		"alpha.example.org": "alpha /x",
		"ALPHA.example.org": "alpha /x",
		"beta.localhost":    "beta /x",
		"api.beta.test":     "beta /x",
	}
	check := func(when string) {
		t.Helper()
		for host, want := range served {
			if r := mustFetch(t, c, "GET", appURL(d, host, "/x"), nil); r.status != 200 || r.body != want {
				t.Errorf("%s: GET %s/x = %d %q, want %q", when, host, r.status, r.body, want)
			}
		}
	}
	check("after deploys")

	refusals := []struct {
		args  []string
		owner string
	}{
		{[]string{"domains:add", "alpha", "api.beta.test"}, "beta"},
		{[]string{"domains:add", "alpha", "beta.localhost"}, "beta"},
		{[]string{"config:set", "alpha", "HOST_NAME=api.beta.test"}, "beta"},
		{[]string{"config:set", "beta", "HOST_NAME=www.alpha.test"}, "alpha"},
	}
	for _, rf := range refusals {
		r := d.command(alice, "", rf.args...)
		if r.code == 0 || !(strings.Contains(r.stderr, "app "+rf.owner) || strings.Contains(r.stderr, "app named "+rf.owner)) {
			t.Errorf("%q: want a refusal naming %s: %s", rf.args, rf.owner, r)
		}
	}
	out, err := newWorkdir(t, routerApp("gamma", map[string]string{".env": "HOST_NAME=api.beta.test\n"})).push(d, alice, "gamma")
	if err == nil || !strings.Contains(out, "host api.beta.test belongs to app beta") {
		t.Errorf("push claiming beta's host: err=%v, want a refusal naming beta:\n%s", err, out)
	}
	if r := mustFetch(t, c, "GET", appURL(d, "gamma.localhost", "/"), nil); r.status != 404 {
		t.Errorf("refused app gamma answers: %d %q", r.status, r.body)
	}
	check("after the refusals")
	// Both apps still deploy with their hosts.
	d.mustCmd(alice, "deploy", "alpha")
	d.mustCmd(alice, "deploy", "beta")
	check("after deploying again")
}

// TestRouterHostFromRepoEnv asks, with domains:add, for a host another app
// declares with HOST_NAME in its repository's .env: the refusal must name
// that app and leave nothing behind, so that app keeps deploying and hop3
// keeps starting.
func TestRouterHostFromRepoEnv(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("alpha", map[string]string{".env": "HOST_NAME=www.alpha.test\n"})).mustPush(d, alice, "alpha")
	newWorkdir(t, routerApp("beta", nil)).mustPush(d, alice, "beta")

	r := d.command(alice, "", "domains:add", "beta", "www.alpha.test")
	if r.code == 0 || !strings.Contains(r.stderr, "alpha") {
		t.Errorf("domains:add beta www.alpha.test: want a refusal naming alpha: %s", r)
	}
	if list := d.mustCmd(alice, "domains", "beta").stdout; strings.Contains(list, "www.alpha.test") {
		t.Errorf("the refused host stays with beta:\n%s", list)
	}
	if r := d.command(alice, "", "deploy", "alpha"); r.code != 0 {
		t.Errorf("alpha no longer deploys: %s", r)
	}
	addr := d.httpAddr
	d.stop()
	d2 := startDaemon(t, root, addr)
	wantBody(t, d2, "www.alpha.test", "/", "alpha /")
}

// TestRouterStaticFiles checks that STATIC_PATHS are served by Caddy, not
// the app (file-server headers, no app header, conditional requests), and
// that a static: app with CATCH_ALL falls back to its index for client-side
// routes.
func TestRouterStaticFiles(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	c := edgeClient(t, d.httpAddr, nil)

	const css = "body { color: teal }\n"
	newWorkdir(t, routerApp("assets", map[string]string{
		".env":              "STATIC_PATHS=/static:static\n",
		"static/app.css":    css,
		"static/img/a.txt":  "a\n",
		"static/.env":       "SECRET=1\n",
		"templates/x.html":  "<p>not static</p>\n",
		"static/index.html": "<p>index</p>\n",
	})).mustPush(d, alice, "assets")

	r := mustFetch(t, c, "GET", appURL(d, "assets.localhost", "/static/app.css"), nil)
	if r.status != 200 || r.body != css {
		t.Fatalf("static file: %d %q", r.status, r.body)
	}
	if r.header.Get("X-Served-By") != "" {
		t.Errorf("static file went through the app: %v", r.header)
	}
	etag := r.header.Get("Etag")
	if etag == "" || r.header.Get("Last-Modified") == "" {
		t.Errorf("static file lacks the file server's Etag/Last-Modified: %v", r.header)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("static file Content-Type %q", ct)
	}
	req, _ := http.NewRequest("GET", appURL(d, "assets.localhost", "/static/app.css"), nil)
	req.Header.Set("If-None-Match", etag)
	if resp, err := c.Do(req); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET with the Etag: %d, want 304", resp.StatusCode)
	}
	if r := mustFetch(t, c, "GET", appURL(d, "assets.localhost", "/static/img/a.txt"), nil); r.status != 200 || r.body != "a\n" {
		t.Errorf("static file in a subdirectory: %d %q", r.status, r.body)
	}
	for _, p := range []string{"/static/none.css", "/static/.env"} {
		if r := mustFetch(t, c, "GET", appURL(d, "assets.localhost", p), nil); r.status != 404 || r.header.Get("X-Served-By") != "" {
			t.Errorf("GET %s = %d (X-Served-By %q), want Caddy's 404", p, r.status, r.header.Get("X-Served-By"))
		}
	}
	for p, want := range map[string]string{"/": "assets /", "/staticky": "assets /staticky", "/templates/x.html": "assets /templates/x.html"} {
		if r := mustFetch(t, c, "GET", appURL(d, "assets.localhost", p), nil); r.status != 200 || r.body != want || r.header.Get("X-Served-By") != "assets" {
			t.Errorf("GET %s = %d %q, want the app's %q", p, r.status, r.body, want)
		}
	}

	const index = "<!doctype html><div id=app></div>\n"
	newWorkdir(t, map[string]string{
		"Procfile":             "static: public\n",
		".env":                 "CATCH_ALL=index.html\n",
		"public/index.html":    index,
		"public/assets/app.js": "console.log(1)\n",
	}).mustPush(d, alice, "spa")
	for p, want := range map[string]string{
		"/":                      index,
		"/assets/app.js":         "console.log(1)\n",
		"/some/client/route":     index,
		"/users/42?tab=settings": index,
	} {
		r := mustFetch(t, c, "GET", appURL(d, "spa.localhost", p), nil)
		if r.status != 200 || r.body != want {
			t.Errorf("spa GET %s = %d %q, want %q", p, r.status, r.body, want)
		}
		if r.header.Get("Etag") == "" {
			t.Errorf("spa GET %s: no Etag from the file server", p)
		}
	}
}

// TestRouterHTTPS runs hop3 with --tls internal: the HTTPS port (port 0
// resolved) is in the ready line, certificates verify against the root of
// Caddy's local CA fetched from its admin API, and HTTPS_ONLY=1 redirects
// plain HTTP with 308.
func TestRouterHTTPS(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d, ready := startRouterDaemon(t, root, nil, "--tls", "internal", "--https-addr", "127.0.0.1:0")
	httpsAddr := ready["https"]
	_, httpsPort, err := net.SplitHostPort(httpsAddr)
	if err != nil || httpsPort == "0" || httpsAddr == d.httpAddr {
		t.Fatalf("ready line https=%q (http=%s)", httpsAddr, d.httpAddr)
	}
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("plain", nil)).mustPush(d, alice, "plain")
	out := newWorkdir(t, routerApp("secure", map[string]string{".env": "HTTPS_ONLY=1\n"})).mustPush(d, alice, "secure")
	// With TLS on, the URL a push ends with is the https one.
	if want := "is live at https://secure.localhost:" + httpsPort + "/"; !strings.Contains(out, want) {
		t.Errorf("push output lacks %q:\n%s", want, out)
	}

	roots := localCA(t, root)
	tlsc := edgeClient(t, httpsAddr, roots)
	httpc := edgeClient(t, d.httpAddr, nil)
	httpsURL := func(host, path string) string { return "https://" + host + ":" + httpsPort + path }

	// Certificates are issued in the background after a config load.
	for _, app := range []string{"plain", "secure"} {
		host := app + ".localhost"
		var resp *http.Response
		eventually(t, 20*time.Second, func() error {
			var err error
			resp, err = tlsc.Get(httpsURL(host, "/s"))
			return err
		})
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("X-Served-By") != app {
			t.Errorf("https %s: %d %v", host, resp.StatusCode, resp.Header)
		}
		cert := resp.TLS.PeerCertificates[0]
		if err := cert.VerifyHostname(host); err != nil {
			t.Errorf("https %s: %v", host, err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host, Intermediates: intermediates(resp)}); err != nil {
			t.Errorf("https %s: certificate does not chain to Caddy's local root: %v", host, err)
		}
	}

	// Without Caddy's root, the certificate is not trusted.
	if _, err := edgeClient(t, httpsAddr, x509.NewCertPool()).Get(httpsURL("plain.localhost", "/")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("https with an empty trust store: %v, want a certificate error", err)
	}

	if r := mustFetch(t, httpc, "GET", appURL(d, "plain.localhost", "/p"), nil); r.status != 200 || r.body != "plain /p" {
		t.Errorf("plain app over http: %d %q", r.status, r.body)
	}
	r := mustFetch(t, httpc, "GET", appURL(d, "secure.localhost", "/x?y=1"), nil)
	if want := httpsURL("secure.localhost", "/x?y=1"); r.status != http.StatusPermanentRedirect || r.header.Get("Location") != want {
		t.Errorf("HTTPS_ONLY app over http: %d Location %q, want 308 %q", r.status, r.header.Get("Location"), want)
	}
	if r := mustFetch(t, tlsc, "GET", httpsURL("secure.localhost", "/x?y=1"), nil); r.status != 200 || r.body != "secure /x" {
		t.Errorf("HTTPS_ONLY app over https: %d %q", r.status, r.body)
	}
}

func intermediates(resp *http.Response) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range resp.TLS.PeerCertificates[1:] {
		p.AddCert(c)
	}
	return p
}

// TestRouterPages checks hop3's pages: 404 for a host no app answers to,
// 503 for a stopped app, 502 for an app whose processes are down.
func TestRouterPages(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	c := edgeClient(t, d.httpAddr, nil)
	newWorkdir(t, routerApp("sleepy", nil)).mustPush(d, alice, "sleepy")
	newWorkdir(t, routerApp("fragile", nil)).mustPush(d, alice, "fragile")

	page := func(r reply, status int, texts ...string) error {
		if r.status != status {
			return fmt.Errorf("status %d, want %d: %q", r.status, status, r.body)
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			return fmt.Errorf("Content-Type %q, want html", ct)
		}
		for _, s := range append(texts, "<!DOCTYPE html>", "hop3") {
			if !strings.Contains(r.body, s) {
				return fmt.Errorf("page lacks %q: %q", s, r.body)
			}
		}
		return nil
	}

	t.Run("404 unknown host", func(t *testing.T) {
		r := mustFetch(t, c, "GET", appURL(d, "nobody.localhost", "/"), nil)
		if err := page(r, 404, "No app is deployed at this address", "&lt;app&gt;.localhost"); err != nil {
			t.Error(err)
		}
	})

	t.Run("503 stopped", func(t *testing.T) {
		d.mustCmd(alice, "stop", "sleepy")
		r := mustFetch(t, c, "GET", appURL(d, "sleepy.localhost", "/"), nil)
		if err := page(r, 503, "sleepy is stopped"); err != nil {
			t.Error(err)
		}
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After: %v", r.header)
		}
		d.mustCmd(alice, "start", "sleepy")
		if r := mustFetch(t, c, "GET", appURL(d, "sleepy.localhost", "/"), nil); r.status != 200 || r.body != "sleepy /" {
			t.Errorf("after start: %d %q", r.status, r.body)
		}
	})

	t.Run("502 processes down", func(t *testing.T) {
		// The app refuses to start again, then its Granian is killed: the
		// supervisor's restarts fail, and Caddy gives up waiting for it.
		if err := os.WriteFile(filepath.Join(root, "data", "fragile", "down"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		pids := granianPIDs(t, root, "fragile")
		if len(pids) == 0 {
			t.Fatal("no granian for fragile")
		}
		for _, pid := range pids {
			killPID(t, pid)
		}
		eventually(t, 60*time.Second, func() error {
			r, err := fetch(c, "GET", appURL(d, "fragile.localhost", "/"), nil)
			if err != nil {
				return err
			}
			return page(r, 502, "fragile is not answering", "try again in a moment")
		})
		// Other apps are not affected.
		if r := mustFetch(t, c, "GET", appURL(d, "sleepy.localhost", "/"), nil); r.status != 200 {
			t.Errorf("sleepy while fragile is down: %d", r.status)
		}
	})
}

// TestRouterMaxBodySize: with MAX_BODY_SIZE a larger request body is refused
// with 413 before it reaches the app; a smaller one goes through. The size
// reads as every size setting does (1KiB was refused before).
func TestRouterMaxBodySize(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	c := edgeClient(t, d.httpAddr, nil)
	newWorkdir(t, routerApp("upload", map[string]string{".env": "MAX_BODY_SIZE=1KiB\n"})).mustPush(d, alice, "upload")

	if r := mustFetch(t, c, "POST", appURL(d, "upload.localhost", "/"), bytes.Repeat([]byte("x"), 1000)); r.status != 200 || r.body != "upload got 1000 bytes" {
		t.Errorf("POST within the limit: %d %q", r.status, r.body)
	}
	r := mustFetch(t, c, "POST", appURL(d, "upload.localhost", "/"), bytes.Repeat([]byte("x"), 5000))
	if r.status != http.StatusRequestEntityTooLarge || r.header.Get("X-Served-By") != "" {
		t.Errorf("POST over the limit: %d %q (X-Served-By %q), want 413 from Caddy", r.status, r.body, r.header.Get("X-Served-By"))
	}
}

// TestRouterCaddyKill9 kills Caddy with SIGKILL: the next Caddy serves every
// route again within seconds with no action from anyone, and a request made
// while no Caddy runs waits for it instead of being refused (hop3 holds the
// listening socket).
func TestRouterCaddyKill9(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("one", nil)).mustPush(d, alice, "one")
	newWorkdir(t, staticSite("<p>two</p>\n")).mustPush(d, alice, "two")
	wantBody(t, d, "one.localhost", "/", "one /")

	old := caddyPID(t, root)
	killPID(t, old)
	start := time.Now()
	c := edgeClient(t, d.httpAddr, nil)
	if !caddyBinds(d) {
		r, err := fetch(c, "GET", appURL(d, "one.localhost", "/while-down"), nil)
		if err != nil || r.status != 200 || r.body != "one /while-down" {
			t.Errorf("request made while Caddy was down: %d %q %v", r.status, r.body, err)
		}
	}
	eventually(t, 10*time.Second, func() error {
		for host, want := range map[string]string{"one.localhost": "one /", "two.localhost": "<p>two</p>\n"} {
			r, err := fetch(c, "GET", appURL(d, host, "/"), nil)
			if err != nil || r.status != 200 || r.body != want {
				return fmt.Errorf("GET %s = %d %q %v", host, r.status, r.body, err)
			}
		}
		return nil
	})
	t.Logf("every route answered %s after kill -9", time.Since(start).Round(time.Millisecond))
	if pid := caddyPID(t, root); pid == old {
		t.Errorf("Caddy pid unchanged (%d)", pid)
	}
	eventually(t, 5*time.Second, func() error {
		if !strings.Contains(d.log(), "caddy restarted; routes restored") {
			return fmt.Errorf("hop3's log does not tell of the restart")
		}
		return nil
	})
}

// TestRouterAddRouteUnderLoad adds routes (new apps pushed, a domain added)
// while 20 clients keep requesting another app, and sends no request twice.
// No request may fail with an error answer, a wrong answer or a reset;
// connections the old config accepted but could not answer before it shut
// down are counted and bounded (see internal/router's package doc).
func TestRouterAddRouteUnderLoad(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("busy", nil)).mustPush(d, alice, "busy")
	wantBody(t, d, "busy.localhost", "/", "busy /")
	// Build the new apps' code first so the load runs while routes change,
	// not while uv resolves.
	fresh := []*workdir{newWorkdir(t, routerApp("fresh-a", nil)), newWorkdir(t, staticSite("<p>b</p>\n")), newWorkdir(t, routerApp("fresh-c", nil))}

	admin := caddyAdmin(root)
	before := adminGet(t, admin, "/config/apps/http/servers")
	load := startRouterLoad(d, "busy.localhost", "busy /", 20)
	for i, w := range fresh {
		w.mustPush(d, alice, []string{"fresh-a", "fresh-b", "fresh-c"}[i])
	}
	d.mustCmd(alice, "domains:add", "fresh-a", "www.fresh.test")
	time.Sleep(500 * time.Millisecond)
	res := load.stop()
	t.Logf("routes added under load: %s", res)

	if after := adminGet(t, admin, "/config/apps/http/servers"); bytes.Equal(after, before) {
		t.Fatal("Caddy's config never changed: the test exercised nothing")
	}
	wantBody(t, d, "www.fresh.test", "/", "fresh-a /")
	wantBody(t, d, "fresh-b.localhost", "/", "<p>b</p>\n")
	if res.total() < 200 {
		t.Fatalf("too little load: %s", res)
	}
	maxPercent := 2
	if caddyBinds(d) {
		// Each reload resets what waits on the socket Caddy closes.
		res.unanswered, res.reset, maxPercent = res.unanswered+res.reset, 0, 5
	}
	if res.bad > 0 || res.reset > 0 {
		t.Fatalf("requests to busy failed while routes were added: %s; first: %s", res, res.firstBad)
	}
	if res.unanswered*100 > res.total()*maxPercent {
		t.Fatalf("more than %d%% of requests closed unanswered: %s", maxPercent, res)
	}
}

// TestRouterExternalCaddy runs hop3 against a Caddy someone else runs
// (--caddy-admin): hop3 starts no Caddy, adds only its own server, leaves
// the owner's server and route as they were, and when hop3 stops, the
// owner's Caddy keeps running and serving its route.
func TestRouterExternalCaddy(t *testing.T) {
	t.Parallel()
	owner := startOwnerCaddy(t)
	ownerServer := func() string {
		return string(adminGet(t, owner.admin, "/config/apps/http/servers/owner"))
	}
	before := ownerServer()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--caddy-admin", "unix/"+owner.sock)
	if pids := procsUnder(t, "caddy", "run", root); len(pids) != 0 {
		t.Errorf("hop3 started a Caddy of its own: %v", pids)
	}
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("ext", nil)).mustPush(d, alice, "ext")
	wantBody(t, d, "ext.localhost", "/e", "ext /e")
	d.mustCmd(alice, "domains:add", "ext", "www.ext.test")
	wantBody(t, d, "www.ext.test", "/", "ext /")

	ownerGet := func() error {
		c := edgeClient(t, owner.addr, nil)
		r, err := fetch(c, "GET", "http://anything.test/", nil)
		if err != nil || r.status != 200 || r.body != "owner here" {
			return fmt.Errorf("owner's route: %d %q %v", r.status, r.body, err)
		}
		return nil
	}
	if err := ownerGet(); err != nil {
		t.Error(err)
	}
	if after := ownerServer(); after != before {
		t.Errorf("hop3 changed the owner's server:\nbefore %s\nafter  %s", before, after)
	}
	var servers map[string]json.RawMessage
	if err := json.Unmarshal(adminGet(t, owner.admin, "/config/apps/http/servers"), &servers); err != nil {
		t.Fatal(err)
	}
	if len(servers) != 2 || servers["owner"] == nil || servers["hop3"] == nil {
		t.Errorf("servers in the owner's Caddy: %v, want owner and hop3", keys(servers))
	}

	d.stop()
	if err := ownerGet(); err != nil {
		t.Errorf("after hop3 stopped: %v", err)
	}
	if after := ownerServer(); after != before {
		t.Errorf("the owner's server changed after hop3 stopped: %s", after)
	}
	// The owner's Caddy still runs; hop3 did not stop it.
	if resp, err := owner.admin.Get("http://127.0.0.1/config/"); err != nil {
		t.Errorf("owner's Caddy admin after hop3 stopped: %v", err)
	} else {
		resp.Body.Close()
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
