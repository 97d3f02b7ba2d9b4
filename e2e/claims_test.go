package e2e

// Claims and limits, tried as a new user would: a deployer key limited to
// app a beside an admin's app b, on a platform domain of its own
// (hop3.test), so that the apex, the platform wildcard and localhost are
// three different names.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const claimsDomain = "hop3.test"

// TestClaimsDeployerHosts: every host a deployer of a may not claim is
// refused with one line and a non-zero exit, through config:set and
// through a pushed .env, and nothing is stored; b.<domain> keeps reaching
// b throughout. Before the host rule, `config:set a HOST_NAME=*.<domain>`
// was accepted and b.<domain> then served a.
func TestClaimsDeployerHosts(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0", "--domain", claimsDomain)
	alice := newUser(t, "alice")
	d.register(alice)
	dee := newUser(t, "dee")
	d.register(dee, "--role", "deployer", "--apps", "a")

	wa := newWorkdir(t, staticSite("a\n"))
	wa.mustPush(d, dee, "a")
	newWorkdir(t, staticSite("b\n")).mustPush(d, alice, "b")
	bReaches := func(when string) {
		t.Helper()
		if code, body := get(t, d, "b."+claimsDomain, "/"); code != 200 || body != "b\n" {
			t.Errorf("%s: b.%s = %d %q, want b", when, claimsDomain, code, body)
		}
	}
	bReaches("at start")
	before := d.mustCmd(dee, "config", "a", "--json").stdout

	refused := []struct{ host, why string }{
		{"*." + claimsDomain, "only an admin key"},
		{claimsDomain, "only an admin key"},
		{"x.b." + claimsDomain, "reserved for an app named b"},
		{"*.b." + claimsDomain, "reserved for an app named b"},
		{"localhost", "only an admin key"},
		{"127.0.0.1", "only an admin key"},
		{"d." + claimsDomain, "reserved for an app named d"},
	}
	for _, rf := range refused {
		wantFail(t, d.command(dee, "", "config:set", "a", "HOST_NAME="+rf.host), 1, rf.why)
		wantFail(t, d.command(dee, "", "config:set", "a", "NGINX_SERVER_NAME="+rf.host), 1, rf.why)
		wantFail(t, d.command(dee, "", "domains:add", "a", rf.host), 1, rf.why)
		if after := d.mustCmd(dee, "config", "a", "--json").stdout; after != before {
			t.Errorf("refused HOST_NAME=%s changed a's config:\n%s\nwas:\n%s", rf.host, after, before)
		}
		bReaches("after HOST_NAME=" + rf.host)
	}
	if got := d.mustCmd(dee, "domains", "a").stdout; strings.TrimSpace(got) != "a."+claimsDomain+" (default)" {
		t.Errorf("refused domains:add left domains:\n%s", got)
	}

	// The same through a pushed .env: the push fails before the build,
	// naming why, and a's live release serves on.
	for _, host := range []string{"*." + claimsDomain, "x.b." + claimsDomain, "localhost"} {
		wa.commit("claim "+host, map[string]string{".env": "HOST_NAME=" + host + "\n"})
		out, err := wa.push(d, dee, "a")
		if err == nil || !strings.Contains(out, "host "+host+" ") {
			t.Errorf("push with HOST_NAME=%s: err=%v, want a refusal naming it:\n%s", host, err, out)
		}
		if strings.Contains(out, "is live") {
			t.Errorf("the refused push went live:\n%s", out)
		}
		wantBody(t, d, "a."+claimsDomain, "/", "a\n")
		bReaches("after a push claiming " + host)
		if code, body := get(t, d, "other."+claimsDomain, "/"); code != 404 {
			t.Errorf("other.%s answers %d %q after a refused wildcard", claimsDomain, code, body)
		}
	}

	// d.<domain> belongs to the app named d before it exists: the admin's
	// first push of d works.
	newWorkdir(t, staticSite("d\n")).mustPush(d, alice, "d")
	wantBody(t, d, "d."+claimsDomain, "/", "d\n")
	bReaches("at the end")
}

// TestClaimsAdminWildcard: an admin gives app a the wildcard *.example.test
// and app b the exact www.example.test. The exact host wins whatever the
// order of the app names (routes used to be ordered by name: a's wildcard
// came first and took b's host), and the wildcard serves the rest. An
// admin's push gives app c the platform's wildcard the same way.
func TestClaimsAdminWildcard(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0", "--domain", claimsDomain)
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, staticSite("a\n")).mustPush(d, alice, "a")
	newWorkdir(t, staticSite("b\n")).mustPush(d, alice, "b")
	d.mustCmd(alice, "config:set", "a", "HOST_NAME=*.example.test")
	d.mustCmd(alice, "domains:add", "b", "www.example.test")
	c := edgeClient(t, d.httpAddr, nil)
	for host, want := range map[string]string{
		"www.example.test":   "b\n",
		"shop.example.test":  "a\n",
		"b." + claimsDomain:  "b\n",
		"a." + claimsDomain:  "a\n",
		"x.www.example.test": "",
	} {
		r := mustFetch(t, c, "GET", appURL(d, host, "/"), nil)
		switch {
		case want == "" && r.status != 404:
			t.Errorf("GET %s = %d %q, want 404", host, r.status, r.body)
		case want != "" && (r.status != 200 || r.body != want):
			t.Errorf("GET %s = %d %q, want %q", host, r.status, r.body, want)
		}
	}
	wantFail(t, d.command(alice, "", "domains:add", "b", "*.example.test"), 1, "belongs to app a")

	// An admin's push may give its app the platform's wildcard through
	// .env: the pusher's role reaches the check. Exact hosts still win.
	site := staticSite("c\n")
	site[".env"] = "HOST_NAME=*." + claimsDomain + "\n"
	newWorkdir(t, site).mustPush(d, alice, "c")
	for host, want := range map[string]string{"other." + claimsDomain: "c\n", "b." + claimsDomain: "b\n", "www.example.test": "b\n"} {
		if r := mustFetch(t, c, "GET", appURL(d, host, "/"), nil); r.status != 200 || r.body != want {
			t.Errorf("after c's wildcard: GET %s = %d %q, want %q", host, r.status, r.body, want)
		}
	}
}

// TestClaimsKeyOptions: a key's from= and expiry-time= decide where and
// until when it logs in, with the real ssh client from 127.0.0.1; command=
// is refused when the key is added, by keys:add and by `hop3 keys add`,
// which share one set of rules.
func TestClaimsKeyOptions(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)

	add := func(u user, opts string) cmdResult {
		t.Helper()
		return d.command(alice, opts+" "+u.pub(t), "keys:add", u.name)
	}
	far, near, old := newUser(t, "far"), newUser(t, "near"), newUser(t, "old")
	for u, opts := range map[user]string{far: `from="10.9.9.9"`, near: `from="127.0.0.1"`, old: `expiry-time="20200101Z"`} {
		if r := add(u, opts); r.code != 0 {
			t.Fatalf("keys:add %s with %s: %s", u.name, opts, r)
		}
	}
	if r := d.command(far, "", "version"); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf(`a from="10.9.9.9" key logged in from 127.0.0.1: %s`, r)
	}
	if r := d.command(near, "", "version"); r.code != 0 {
		t.Errorf(`a from="127.0.0.1" key could not log in: %s`, r)
	}
	if r := d.command(old, "", "version"); r.code == 0 || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("an expired key logged in: %s", r)
	}
	keys := d.mustCmd(alice, "keys").stdout
	if !strings.Contains(keys, `from="10.9.9.9"`) || !strings.Contains(keys, `expiry-time="20200101000000Z"`) {
		t.Errorf("keys does not show the options:\n%s", keys)
	}

	piku := newUser(t, "piku")
	line := `command="FINGERPRINT=x NAME=default /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding ` + piku.pub(t)
	wantFail(t, d.command(alice, line, "keys:add", "piku"), 1, `strip the command="..." prefix`)
	if out, err := d.hop3(line, "keys", "add", "piku"); err == nil || !strings.Contains(out, `strip the command="..." prefix`) {
		t.Errorf("hop3 keys add took a command= key: %v\n%s", err, out)
	}
	wantFail(t, d.command(alice, "no-pty "+piku.pub(t), "keys:add", "piku"), 1, "option no-pty is not supported")
	if r := d.command(piku, "", "version"); r.code == 0 {
		t.Errorf("a refused key logs in: %s", r)
	}

	// One set of rules on the server too: --apps needs --role deployer,
	// flags go after the name, and every key of a file is added.
	ci, ci2 := newUser(t, "ci"), newUser(t, "ci2")
	if out, err := d.hop3(ci.pub(t), "keys", "add", "ci", "--apps", "a"); err == nil || !strings.Contains(out, "--apps is for deployer keys") {
		t.Errorf("hop3 keys add --apps without --role deployer: %v\n%s", err, out)
	}
	if out, err := d.hop3(ci.pub(t)+ci2.pub(t), "keys", "add", "ci", "--apps", "a", "--role", "deployer"); err != nil {
		t.Fatalf("hop3 keys add ci (two keys): %v\n%s", err, out)
	}
	for _, u := range []user{ci, ci2} {
		if r := d.command(u, "", "apps"); r.code != 0 {
			t.Errorf("key %s of the file cannot log in: %s", u.name, r)
		}
		if r := d.command(u, "", "keys"); r.code == 0 {
			t.Errorf("key %s of a deployer file is an admin: %s", u.name, r)
		}
	}
}

// TestClaimsConnectionFlood: 80 idle TCP connections from 127.0.0.2 (never
// a byte sent) leave 5 of 5 real ssh logins from 127.0.0.1 working. Before
// the per-address share, 64 such connections locked every user out until
// they timed out.
func TestClaimsConnectionFlood(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: 5 * time.Second}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 80; i++ {
		c, err := dialer.Dial("tcp", "127.0.0.1:"+d.sshPort)
		if err != nil {
			t.Fatalf("flood connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(300 * time.Millisecond) // let the daemon count them all
	var wg sync.WaitGroup
	results := make([]cmdResult, 5)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = d.command(alice, "", "version")
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Errorf("login %d of 5 during the flood: %s", i+1, r)
		}
	}
}

// TestClaimsDisk: KEEP_RELEASES above its bound, and a STATIC_PATHS the
// route would refuse, are refused and not stored; `apps` shows each app's
// disk use once measured.
func TestClaimsDisk(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	w := newWorkdir(t, staticSite("x\n"))
	w.mustPush(d, alice, "site")
	wantFail(t, d.command(alice, "", "config:set", "site", "KEEP_RELEASES=51"), 1, "above the limit of 50")
	wantFail(t, d.command(alice, "", "config:set", "site", "KEEP_RELEASES=lots"), 1, "from 1 to 50")
	// A value that shapes the route is checked by the code that builds
	// it: Caddy would read {env.HOME} in a path matcher as a placeholder.
	wantFail(t, d.command(alice, "", "config:set", "site", "STATIC_PATHS=/{env.HOME}:public"), 1, "must be a clean absolute URL path")
	if cfg := d.mustCmd(alice, "config", "site").stdout; strings.Contains(cfg, "KEEP_RELEASES") || strings.Contains(cfg, "STATIC_PATHS") {
		t.Errorf("a refused value was stored:\n%s", cfg)
	}
	d.mustCmd(alice, "config:set", "--no-restart", "site", "KEEP_RELEASES=50")

	// DATA_DIR counts: 2 MiB there show in the app's disk use.
	if err := os.WriteFile(filepath.Join(root, "data", "site", "blob"), make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	w.commit("again", map[string]string{"public/index.html": "y\n"})
	w.mustPush(d, alice, "site")
	type diskRow struct {
		Name      string `json:"name"`
		DiskBytes *int64 `json:"disk_bytes"`
	}
	eventually(t, 30*time.Second, func() error {
		rows := decode[[]diskRow](t, d.mustCmd(alice, "apps", "--json"))
		if len(rows) != 1 || rows[0].DiskBytes == nil || *rows[0].DiskBytes < 2<<20 {
			return fmt.Errorf("apps --json: %+v", rows)
		}
		return nil
	})
	if out := d.mustCmd(alice, "apps").stdout; !strings.Contains(out, "DISK") || !strings.Contains(out, "MiB") {
		t.Errorf("apps has no disk column:\n%s", out)
	}
}
