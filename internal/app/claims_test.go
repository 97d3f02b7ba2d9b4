package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"hop3/internal/router"
	"hop3/internal/store"
)

// routesOnly is a router that holds routes in memory, listing them as the
// real one does.
type routesOnly struct{ routes map[string]router.Route }

func (r *routesOnly) Set(_ context.Context, rt router.Route) error { r.routes[rt.App] = rt; return nil }
func (r *routesOnly) Remove(_ context.Context, app string) error   { delete(r.routes, app); return nil }
func (r *routesOnly) Routes() []router.Route {
	var out []router.Route
	for _, rt := range r.routes {
		out = append(out, rt)
	}
	return out
}

func claimsManager(t *testing.T) (*Manager, *store.Store, *routesOnly) {
	t.Helper()
	root := t.TempDir()
	st, err := store.Open(filepath.Join(root, "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rt := &routesOnly{routes: map[string]router.Route{}}
	m, err := New(Config{Root: root, Domain: "hop3.test", Store: st, Router: rt, Supervisor: newFakeSupervisor()})
	if err != nil {
		t.Fatal(err)
	}
	return m, st, rt
}

// TestValidateConfigClaims checks the host rule as config:set, domains:add
// and a push reach it: by the role of the identity in ctx, against other
// apps' domains, config and live routes, and without claiming again what
// the app already holds.
func TestValidateConfigClaims(t *testing.T) {
	t.Parallel()
	m, st, rt := claimsManager(t)
	ctx := context.Background()
	for _, a := range []string{"a", "b"} {
		if _, err := st.CreateApp(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.AddDomains(ctx, "b", []string{"www.example.test"}); err != nil {
		t.Fatal(err)
	}
	// b's pushed .env gave it a wildcard: only its live route says so.
	rt.routes["b"] = router.Route{App: "b", Hosts: []string{"b.hop3.test", "*.b-env.test"}}
	// An admin gave a a platform host earlier.
	if err := st.SetConfig(ctx, "a", map[string]string{"HOST_NAME": "*.hop3.test"}); err != nil {
		t.Fatal(err)
	}
	const admin, deployer = true, false
	tests := []struct {
		admin bool
		vars  map[string]string
		want  string
	}{
		{deployer, map[string]string{"HOST_NAME": "*.hop3.test"}, ""}, // already a's: not claimed again
		{deployer, map[string]string{"HOST_NAME": "*.hop3.test shop.a.hop3.test"}, ""},
		{deployer, map[string]string{"HOST_NAME": "hop3.test"}, "only an admin key"},
		{deployer, map[string]string{"HOST_NAME": "localhost"}, "only an admin key"},
		{deployer, map[string]string{"HOST_NAME": "127.0.0.1"}, "only an admin key"},
		{deployer, map[string]string{"HOST_NAME": "x.b.hop3.test"}, "reserved for an app named b"},
		{deployer, map[string]string{"HOST_NAME": "d.hop3.test"}, "reserved for an app named d"},
		{deployer, map[string]string{"NGINX_SERVER_NAME": "*.example.test"}, "overlaps www.example.test of app b"},
		{deployer, map[string]string{"HOST_NAME": "x.b-env.test"}, "overlaps *.b-env.test of app b"},
		// The variable not in use is claimed too: unsetting HOST_NAME would put it in use.
		{deployer, map[string]string{"HOST_NAME": "ok.example.net", "NGINX_SERVER_NAME": "*.hop3.test localhost"}, "host localhost"},
		{admin, map[string]string{"HOST_NAME": "localhost x.b-env.test *.example.test"}, ""},
		{admin, map[string]string{"HOST_NAME": "www.example.test"}, "belongs to app b"},
		{admin, map[string]string{"HOST_NAME": "*.b-env.test"}, "belongs to app b"},
		{admin, map[string]string{"HOST_NAME": "d.hop3.test"}, "reserved for an app named d"},
		// Values that shape the route go through the route's own checks.
		{admin, map[string]string{"STATIC_PATHS": "/{env.HOME}:public"}, "must be a clean absolute URL path"},
		{admin, map[string]string{"STATIC_PATHS": "/y:../.."}, "leaves the app"},
		{admin, map[string]string{"MAX_BODY_SIZE": "lots"}, "MAX_BODY_SIZE"},
		{admin, map[string]string{"KEEP_RELEASES": "51"}, "above the limit of 50"},
		{admin, map[string]string{"KEEP_RELEASES": "0"}, "from 1 to 50"},
		{admin, map[string]string{"KEEP_RELEASES": "50"}, ""},
	}
	for _, tt := range tests {
		err := m.ValidateConfig(ctx, "a", tt.vars, tt.admin)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("admin=%v %v: %v, want accepted", tt.admin, tt.vars, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("admin=%v %v: %v, want %q", tt.admin, tt.vars, err, tt.want)
		}
	}
}
