package router

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestRouterSync(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	ctx := context.Background()
	routes := []Route{webRoute("b"), webRoute("a")}

	if err := r.Sync(ctx, routes); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := f.take()
	if callNames(got) != "POST /load" {
		t.Fatalf("calls = %s, want one POST /load", callNames(got))
	}
	want, _ := Config(offOpts(), routes)
	if got[0].Body != string(want) || got[0].ContentType != "application/json" {
		t.Errorf("load body differs from Config:\n%s", got[0].Body)
	}
	if n := r.Changes(); n != 1 {
		t.Errorf("Changes = %d, want 1", n)
	}
	apps := []string{}
	for _, rt := range r.Routes() {
		apps = append(apps, rt.App)
	}
	if !slices.Equal(apps, []string{"a", "b"}) {
		t.Errorf("Routes = %v", apps)
	}

	bad := []Route{webRoute("a"), webRoute("a")}
	if err := r.Sync(ctx, bad); err == nil {
		t.Error("Sync accepted a duplicate app")
	}
	if c := f.take(); len(c) != 0 {
		t.Errorf("invalid Sync made calls: %s", callNames(c))
	}
}

func TestRouterSet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	changed := webRoute("a")
	changed.Upstreams = []string{"unix//var/lib/hop3/run/a/web.2.sock"}
	conflict := webRoute("c")
	conflict.Hosts = []string{"a.hop3.example.com"}

	tests := []struct {
		name    string
		synced  bool    // Sync [a] first, so the router knows Caddy's state
		pre     []Route // Set before the measured Set
		set     Route
		want    string // calls of the measured Set
		wantErr string
	}{
		{"new app after sync inserts before the catch-all", true, nil, webRoute("b"),
			"PUT /id/hop3_server/routes/0", ""},
		{"unchanged route makes no call", true, nil, webRoute("a"), "", ""},
		{"changed route is replaced in place", true, nil, changed, "PATCH /id/hop3_app_a", ""},
		{"set twice is one call", true, []Route{webRoute("b")}, webRoute("b"), "", ""},
		{"unknown state tries replace first", false, nil, webRoute("a"),
			"PATCH /id/hop3_app_a, PUT /id/hop3_server/routes/0", ""},
		{"host of another app is refused", true, nil, conflict, "", "already belongs to a"},
		{"invalid route is refused", true, nil, Route{App: "x"}, "", "no hosts"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAdmin(t)
			r := New(offOpts(), f.client(), nil)
			if tc.synced {
				if err := r.Sync(ctx, []Route{webRoute("a")}); err != nil {
					t.Fatal(err)
				}
			} else {
				// Caddy already has a's server but the router never loaded it.
				f.server = true
			}
			for _, p := range tc.pre {
				if err := r.Set(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			f.take()
			before := r.Changes()
			err := r.Set(ctx, tc.set)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Set error = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Set: %v", err)
			}
			got := f.take()
			if callNames(got) != tc.want {
				t.Fatalf("calls = %q, want %q", callNames(got), tc.want)
			}
			if len(got) > 0 {
				last := got[len(got)-1]
				want, _ := routeJSON(offOpts(), tc.set)
				if last.Body != string(want) {
					t.Errorf("body = %s\nwant %s", last.Body, want)
				}
				if n := r.Changes() - before; n != 1 {
					t.Errorf("Changes grew by %d, want 1", n)
				}
			}
		})
	}
}

func TestRouterSetFailureKeepsDesired(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	ctx := context.Background()
	if err := r.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	f.fail["PUT /id/hop3_server/routes/0"] = http.StatusInternalServerError
	err := r.Set(ctx, webRoute("a"))
	want := "set route a: caddy admin: PUT /id/hop3_server/routes/0: 500: injected failure"
	if err == nil || err.Error() != want {
		t.Fatalf("Set error = %v, want %q", err, want)
	}
	if rs := r.Routes(); len(rs) != 1 || rs[0].App != "a" {
		t.Errorf("failed Set must keep the route desired, Routes = %v", rs)
	}
	if r.Changes() != 1 {
		t.Errorf("a failed call counted as a change")
	}
	// The same Set again is not a no-op: Caddy may not have it.
	delete(f.fail, "PUT /id/hop3_server/routes/0")
	f.take()
	if err := r.Set(ctx, webRoute("a")); err != nil {
		t.Fatal(err)
	}
	if got := callNames(f.take()); got != "PATCH /id/hop3_app_a, PUT /id/hop3_server/routes/0" {
		t.Errorf("calls after failure = %s", got)
	}
}

func TestRouterRemove(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		synced bool
		app    string
		want   string
	}{
		{"present app is deleted", true, "a", "DELETE /id/hop3_app_a"},
		{"app known to be absent makes no call", true, "zz", ""},
		{"unknown state: missing app is fine", false, "zz", "DELETE /id/hop3_app_zz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAdmin(t)
			r := New(offOpts(), f.client(), nil)
			if tc.synced {
				if err := r.Sync(ctx, []Route{webRoute("a"), webRoute("b")}); err != nil {
					t.Fatal(err)
				}
			}
			f.take()
			if err := r.Remove(ctx, tc.app); err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if got := callNames(f.take()); got != tc.want {
				t.Fatalf("calls = %q, want %q", got, tc.want)
			}
			for _, rt := range r.Routes() {
				if rt.App == tc.app {
					t.Errorf("%s still desired", tc.app)
				}
			}
		})
	}

	t.Run("other errors are reported", func(t *testing.T) {
		t.Parallel()
		f := newFakeAdmin(t)
		f.fail["DELETE /id/hop3_app_a"] = http.StatusInternalServerError
		r := New(offOpts(), f.client(), nil)
		err := r.Remove(ctx, "a")
		if err == nil || !strings.Contains(err.Error(), "remove route a: caddy admin: DELETE /id/hop3_app_a: 500") {
			t.Fatalf("Remove error = %v", err)
		}
	})
}

func TestRouterAttach(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	ctx := context.Background()
	if err := r.SetDesired([]Route{webRoute("a")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Attach(ctx); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	got := f.take()
	if callNames(got) != "PATCH /config/apps/http/servers/hop3, PUT /config/apps/http/servers/hop3" {
		t.Fatalf("Attach calls = %s", callNames(got))
	}
	srv, _ := serverObj(offOpts(), []Route{webRoute("a")}, 0)
	want, _ := marshal(srv)
	if got[1].Body != string(want) {
		t.Errorf("server body = %s", got[1].Body)
	}
	if !r.Attached() {
		t.Error("Attached = false")
	}

	if err := r.Sync(ctx, []Route{webRoute("a"), webRoute("b")}); err != nil {
		t.Fatal(err)
	}
	if got := callNames(f.take()); got != "PATCH /config/apps/http/servers/hop3" {
		t.Errorf("attached Sync calls = %s, want only the server replaced", got)
	}

	// The owner reloaded Caddy without hop3's server: Set rebuilds it.
	f.server = false
	f.ids = map[string]bool{}
	c := webRoute("c")
	if err := r.Set(ctx, c); err != nil {
		t.Fatal(err)
	}
	want2 := "PUT /id/hop3_server/routes/0, PATCH /config/apps/http/servers/hop3, PUT /config/apps/http/servers/hop3"
	if got := callNames(f.take()); got != want2 {
		t.Errorf("Set into a lost server: calls = %s, want %s", got, want2)
	}
	if !f.ids["hop3_app_a"] || !f.ids["hop3_app_b"] || !f.ids["hop3_app_c"] {
		t.Errorf("rebuilt server lacks routes: %v", f.ids)
	}

	if _, err := StartCaddy(ctx, ProcessOptions{Bin: "caddy", Dir: shortDir(t)}, r, nil); err == nil {
		t.Error("StartCaddy accepted an attached router")
	}
}

func TestRouterRoutesAreCopies(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	rt := webRoute("a")
	if err := r.Set(context.Background(), rt); err != nil {
		t.Fatal(err)
	}
	rt.Hosts[0] = "changed.example.com"
	got := r.Routes()
	if got[0].Hosts[0] != "a.hop3.example.com" {
		t.Error("router shares the caller's slice")
	}
	got[0].Hosts[0] = "changed.example.com"
	if r.Routes()[0].Hosts[0] != "a.hop3.example.com" {
		t.Error("Routes returns the router's own slice")
	}
}

func TestRouterLockHonoursContext(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	if err := r.lock(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer r.unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Set(ctx, webRoute("a")); err == nil {
		t.Error("Set ran while another change held the lock")
	}
	if len(r.Routes()) != 0 {
		t.Error("a Set that never ran changed the desired set")
	}
}

// TestRouterInheritedLoadsWholeConfig covers inherited sockets: each change
// is one POST /load of the whole config, whose sockets go by the other
// descriptor numbers than the running config's (so Caddy applies the
// reload overlap), and which with TLS holds two servers.
func TestRouterInheritedLoadsWholeConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	opts := tlsOpts(TLSInternal)
	opts.ListenFDs = true
	f := newFakeAdmin(t)
	r := New(opts, f.client(), nil)
	if err := r.Sync(ctx, []Route{webRoute("a")}); err != nil {
		t.Fatal(err)
	}
	first := f.take()
	if callNames(first) != "POST /load" || !strings.Contains(first[0].Body, `"fd/7"`) {
		t.Fatalf("first load: %s, want the alternate descriptors", callNames(first))
	}

	steps := []struct {
		name   string
		do     func() error
		want   string
		routes []Route // what the load must hold
		slot   int
	}{
		{"new app", func() error { return r.Set(ctx, webRoute("b")) }, "POST /load", []Route{webRoute("a"), webRoute("b")}, 0},
		{"unchanged app", func() error { return r.Set(ctx, webRoute("b")) }, "", nil, 0},
		{"removed app", func() error { return r.Remove(ctx, "a") }, "POST /load", []Route{webRoute("b")}, 1},
		{"absent app", func() error { return r.Remove(ctx, "a") }, "", nil, 0},
		{"app again", func() error { return r.Set(ctx, webRoute("a")) }, "POST /load", []Route{webRoute("a"), webRoute("b")}, 0},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := f.take()
		if callNames(got) != s.want {
			t.Fatalf("%s: calls = %q, want %q", s.name, callNames(got), s.want)
		}
		if s.routes == nil {
			continue
		}
		want, err := config(opts, s.routes, s.slot)
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Body != string(want) {
			t.Errorf("%s: load body differs from the config of slot %d:\n%s", s.name, s.slot, got[0].Body)
		}
		for _, w := range []string{`"` + HTTPServerName + `"`, `"shutdown_delay": "100ms"`, `"fdgram/5"`} {
			if !strings.Contains(got[0].Body, w) {
				t.Errorf("%s: load lacks %s", s.name, w)
			}
		}
	}
	if err := r.Attach(ctx); err == nil || !strings.Contains(err.Error(), "inherit") {
		t.Errorf("Attach with inherited sockets: %v", err)
	}
}

// TestRouterSetWildcard: a route with a wildcard host, or one that had
// one, is applied by loading the whole config, since a single insert at the
// head of the routes would put the wildcard before other apps' exact hosts
// (and a PATCH would leave its wildcard route behind).
func TestRouterSetWildcard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFakeAdmin(t)
	r := New(offOpts(), f.client(), nil)
	if err := r.Sync(ctx, []Route{webRoute("b")}); err != nil {
		t.Fatal(err)
	}
	wild := webRoute("a")
	wild.Hosts = append(wild.Hosts, "*.example.test")
	for i, step := range []struct {
		set  Route
		want string
	}{
		{wild, "POST /load"},          // gains a wildcard
		{webRoute("a"), "POST /load"}, // loses it
		{webRoute("a"), ""},           // unchanged
	} {
		f.take()
		if err := r.Set(ctx, step.set); err != nil {
			t.Fatal(err)
		}
		if got := callNames(f.take()); got != step.want {
			t.Errorf("step %d: calls = %q, want %q", i, got, step.want)
		}
	}
	if err := r.Set(ctx, wild); err != nil {
		t.Fatal(err)
	}
	f.take()
	if err := r.Remove(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := callNames(f.take()); got != "POST /load" {
		t.Errorf("removing a wildcard app: calls = %q, want a load", got)
	}
}

// TestRouterAttachMissingParents checks the walk up from hop3's server to
// the first parent Caddy can create, whatever status it answers below.
func TestRouterAttachMissingParents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		missing string // deepest existing parent's child that is missing
		want    string
		wantErr string
	}{
		{"servers missing", "/config/apps/http/servers",
			"PATCH /config/apps/http/servers/hop3, PUT /config/apps/http/servers/hop3, PUT /config/apps/http/servers", ""},
		{"http missing", "/config/apps/http",
			"PATCH /config/apps/http/servers/hop3, PUT /config/apps/http/servers/hop3, PUT /config/apps/http/servers, PUT /config/apps/http", ""},
		{"server refused", "",
			"PATCH /config/apps/http/servers/hop3, PUT /config/apps/http/servers/hop3, PUT /config/apps/http/servers",
			"PUT /config/apps/http/servers/hop3: 400: bad server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAdmin(t)
			var body string
			f.hook = func(c call) (int, string, bool) {
				if tc.missing == "" {
					switch c.Path {
					case "/config/apps/http/servers/hop3":
						return http.StatusBadRequest, "bad server", true
					case "/config/apps/http/servers":
						return http.StatusConflict, "key already exists: servers", true
					}
					return 0, "", false
				}
				if c.Path == tc.missing && c.Method == http.MethodPut {
					body = c.Body
					return http.StatusOK, "", true
				}
				if strings.HasPrefix(c.Path, tc.missing+"/") {
					return http.StatusInternalServerError, "invalid traversal path at: " + strings.TrimPrefix(c.Path, "/"), true
				}
				return 0, "", false
			}
			r := New(offOpts(), f.client(), nil)
			if err := r.SetDesired([]Route{webRoute("a")}); err != nil {
				t.Fatal(err)
			}
			err := r.Attach(context.Background())
			if got := callNames(f.take()); got != tc.want {
				t.Errorf("calls = %s\nwant    %s", got, tc.want)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Attach error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(body), &v); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if tc.missing == "/config/apps/http" {
				v, _ = v["servers"].(map[string]any)
			}
			if _, ok := v[ServerName]; !ok {
				t.Errorf("created parent %s does not hold the server: %s", tc.missing, body)
			}
		})
	}
}
