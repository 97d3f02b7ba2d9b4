package app

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// TestActivateSwitchesGeneration switches an app from v1 to v2 for each
// kind of app: the store records v2 as live, the current link and (for
// wsgi) the stable socket name v2's processes, Caddy gets the route to the
// new generation, and v1's processes are drained, none of v2's.
func TestActivateSwitchesGeneration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		procfile string
		build    string
		// route says what the route must be, given v2's running
		// processes; nil: the app has no route.
		route func(u *unitManager, v2 []supervisor.Spec) []string
	}{
		{"web", "web: exec sleep 60\n", "{}", func(_ *unitManager, v2 []supervisor.Spec) []string {
			return []string{"127.0.0.1:" + v2[0].Labels["port"]}
		}},
		{"wsgi", "wsgi: app:app\n", `{"venv":"/venv"}`, func(u *unitManager, _ []supervisor.Spec) []string {
			return []string{"unix/" + u.webSocketLink("shop")}
		}},
		{"worker only", "worker: exec sleep 60\n", "{}", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUnitManager(t)
			ctx := t.Context()
			v1 := u.addRelease(t, "shop", tt.procfile, tt.build)
			v2 := u.addRelease(t, "shop", tt.procfile, tt.build)
			u.goLive(t, "shop", v1)
			old := u.sup.names("shop")
			routesBefore := len(u.rt.routes("shop"))

			u.goLive(t, "shop", v2)

			a, err := u.st.App(ctx, "shop")
			if err != nil {
				t.Fatal(err)
			}
			if a.Release != v2 {
				t.Errorf("live release v%d, want v%d", a.Release, v2)
			}
			if got := u.current(t, "shop"); got != u.releaseDir("shop", v2) {
				t.Errorf("current -> %s, want v%d's directory", got, v2)
			}
			specs := u.sup.runningSpecs("shop")
			if len(specs) != 1 || specs[0].Labels["release"] != "2" || specs[0].Dir != u.releaseDir("shop", v2) {
				t.Fatalf("running after the switch: %+v, want v2's one process", specs)
			}
			drained := u.sup.callsOf("drain")
			if !slices.Equal(drained, old) {
				t.Errorf("drained %q, want v1's %q", drained, old)
			}
			if tt.name == "wsgi" {
				link, err := os.Readlink(u.webSocketLink("shop"))
				if err != nil || link != filepath.Base(specs[0].Socket) {
					t.Errorf("web.sock -> %q (%v), want v2's socket %s", link, err, filepath.Base(specs[0].Socket))
				}
			}
			routes := u.rt.routes("shop")
			if tt.route == nil {
				if len(routes) != 0 {
					t.Errorf("an app with no web process got routes %+v", routes)
				}
				return
			}
			if len(routes) != routesBefore+1 {
				t.Fatalf("the switch set %d routes, want 1", len(routes)-routesBefore)
			}
			got := routes[len(routes)-1]
			if want := tt.route(u, specs); !slices.Equal(got.Upstreams, want) || !slices.Equal(got.Hosts, []string{"shop.localhost"}) {
				t.Errorf("route = hosts %q upstreams %q; want shop.localhost to %q", got.Hosts, got.Upstreams, want)
			}
		})
	}
}

// TestActivateFailureLeavesLive: a generation whose process does not
// start is stopped; the live release keeps its processes, its route, its
// links and its place in the store.
func TestActivateFailureLeavesLive(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	const pf = "wsgi: app:app\nworker: exec sleep 60\n"
	v1 := u.addRelease(t, "shop", pf, `{"venv":"/venv"}`)
	v2 := u.addRelease(t, "shop", pf, `{"venv":"/venv"}`)
	u.goLive(t, "shop", v1)
	live := u.sup.names("shop")
	link, err := os.Readlink(u.webSocketLink("shop"))
	if err != nil {
		t.Fatal(err)
	}
	routes := len(u.rt.routes("shop"))

	u.sup.setFailKind("worker")
	r, err := u.m.loadRelease(ctx, "shop", v2)
	if err != nil {
		t.Fatal(err)
	}
	err = u.m.activate(ctx, r, nil, ui.New(&bytes.Buffer{}, false))
	if err == nil || !strings.Contains(err.Error(), "worker.1 did not start: exited after 10ms") {
		t.Fatalf("activate = %v, want worker.1 did not start", err)
	}
	if a, _ := u.st.App(ctx, "shop"); a.Release != v1 {
		t.Errorf("live release v%d after a failed switch, want v%d", a.Release, v1)
	}
	if got := u.sup.names("shop"); !slices.Equal(got, live) {
		t.Errorf("running %q, want v1's %q alone", got, live)
	}
	if drained := u.sup.callsOf("drain"); len(drained) != 0 {
		t.Errorf("a failed switch drained %q", drained)
	}
	if got, _ := os.Readlink(u.webSocketLink("shop")); got != link {
		t.Errorf("web.sock -> %s, want v1's %s", got, link)
	}
	if got := u.current(t, "shop"); got != u.releaseDir("shop", v1) {
		t.Errorf("current -> %s, want v1's directory", got)
	}
	if n := len(u.rt.routes("shop")); n != routes {
		t.Errorf("a failed switch set %d routes", n-routes)
	}
}

// TestRollback switches to an earlier release's build without building:
// by default the newest good release before the live one, or the one
// named; it records who did it.
func TestRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		number int // asked for; 0: the default
		want   int
	}{
		{"default: the release before", 0, 2},
		{"a named release", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUnitManager(t)
			ctx := t.Context()
			for range 3 {
				u.addRelease(t, "shop", "web: exec sleep 60\n", "{}")
			}
			u.goLive(t, "shop", 3)
			v3 := u.sup.names("shop")
			buildsBefore := len(u.sup.callsOf("run"))

			var out bytes.Buffer
			if err := u.m.Rollback(ctx, "shop", tt.number, "bob", ui.New(&out, false)); err != nil {
				t.Fatalf("rollback: %v\n%s", err, out.String())
			}
			if a, _ := u.st.App(ctx, "shop"); a.Release != tt.want {
				t.Errorf("live release after rollback v%d, want v%d", a.Release, tt.want)
			}
			specs := u.sup.runningSpecs("shop")
			if len(specs) != 1 || specs[0].Labels["release"] != strconv.Itoa(tt.want) || specs[0].Dir != u.releaseDir("shop", tt.want) {
				t.Fatalf("running after rollback: %+v, want v%d's web.1", specs, tt.want)
			}
			if drained := u.sup.callsOf("drain"); !slices.Equal(drained, v3) {
				t.Errorf("drained %q, want v3's %q", drained, v3)
			}
			if n := len(u.sup.callsOf("run")); n != buildsBefore {
				t.Errorf("rollback ran %d commands; it builds nothing", n-buildsBefore)
			}
			routes := u.rt.routes("shop")
			if last := routes[len(routes)-1]; !slices.Equal(last.Upstreams, []string{"127.0.0.1:" + specs[0].Labels["port"]}) {
				t.Errorf("route after rollback %q, want the new web.1's port %s", last.Upstreams, specs[0].Labels["port"])
			}
			if got := u.current(t, "shop"); got != u.releaseDir("shop", tt.want) {
				t.Errorf("current -> %s, want v%d's directory", got, tt.want)
			}
			if !strings.Contains(out.String(), "Rolling shop back to v"+strconv.Itoa(tt.want)) {
				t.Errorf("output:\n%s", out.String())
			}
			evs, _ := u.st.Events(ctx, "shop", 0)
			if !slices.ContainsFunc(evs, func(e store.Event) bool {
				return e.Kind == "rollback" && e.Actor == "bob" && e.Message == "rolled back to v"+strconv.Itoa(tt.want)
			}) {
				t.Errorf("events lack the rollback by bob: %+v", evs)
			}
		})
	}
}

// TestRollbackRefusals: a rollback to a release that is not there, whose
// build was removed, or with no earlier good release, says so in one line
// and changes nothing.
func TestRollbackRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		releases int // succeeded releases, the newest live
		prepare  func(t *testing.T, u *unitManager)
		number   int
		want     string
	}{
		{"missing release", 2, nil, 7, "shop has no release v7"},
		{"removed build", 2, func(t *testing.T, u *unitManager) {
			if err := os.RemoveAll(u.releaseDir("shop", 1)); err != nil {
				t.Fatal(err)
			}
		}, 1, "v1 of shop was removed; choose a newer release"},
		{"no earlier release", 1, nil, 0, "shop has no earlier good release to roll back to"},
		{"only failed attempts before", 1, func(t *testing.T, u *unitManager) {
			// A failed attempt takes no number: nothing to roll back to.
			rel, err := u.st.CreateRelease(t.Context(), "shop", "bad", "alice")
			if err != nil {
				t.Fatal(err)
			}
			if err := u.st.FinishRelease(t.Context(), "shop", rel.Attempt, store.Failed, "build failed", ""); err != nil {
				t.Fatal(err)
			}
		}, 0, "shop has no earlier good release to roll back to"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUnitManager(t)
			ctx := t.Context()
			for range tt.releases {
				u.addRelease(t, "shop", "web: exec sleep 60\n", "{}")
			}
			u.goLive(t, "shop", tt.releases)
			if tt.prepare != nil {
				tt.prepare(t, u)
			}
			live := u.sup.names("shop")
			starts := len(u.sup.callsOf("start"))
			routes := len(u.rt.routes("shop"))

			err := u.m.Rollback(ctx, "shop", tt.number, "bob", ui.New(&bytes.Buffer{}, false))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("rollback = %v, want %q", err, tt.want)
			}
			if a, _ := u.st.App(ctx, "shop"); a.Release != tt.releases {
				t.Errorf("live release v%d after a refused rollback, want v%d", a.Release, tt.releases)
			}
			if n := len(u.sup.callsOf("start")); n != starts || !slices.Equal(u.sup.names("shop"), live) {
				t.Errorf("a refused rollback started %d processes; running %q", n-starts, u.sup.names("shop"))
			}
			if n := len(u.rt.routes("shop")); n != routes {
				t.Errorf("a refused rollback set %d routes", n-routes)
			}
		})
	}
}

// TestRestore starts the live release of every running app, as after a
// restart of hop3, and skips stopped apps and apps never deployed. One
// app whose release cannot be loaded is reported without keeping the
// others down, and a deploy a stop of hop3 cut short is marked failed.
func TestRestore(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	for _, app := range []string{"up", "down", "broken"} {
		n := u.addRelease(t, app, "web: exec sleep 60\nworker: exec sleep 60\n", "{}")
		if err := u.st.SetLiveRelease(ctx, app, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.st.SetAppState(ctx, "down", store.AppStopped); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(u.releaseDir("broken", 1), "Procfile")); err != nil {
		t.Fatal(err)
	}
	if err := u.m.Create(ctx, "fresh"); err != nil {
		t.Fatal(err)
	}
	cut, err := u.st.CreateRelease(ctx, "up", "cut", "alice")
	if err != nil {
		t.Fatal(err)
	}

	err = u.m.Restore(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "broken: ") || strings.Contains(err.Error(), "up:") {
		t.Errorf("restore = %v, want the broken app's failure alone", err)
	}
	var apps []string
	for _, st := range u.sup.List() {
		if !slices.Contains(apps, st.Labels["app"]) {
			apps = append(apps, st.Labels["app"])
		}
	}
	if !slices.Equal(apps, []string{"up"}) {
		t.Errorf("processes of %q run after restore, want up's alone", apps)
	}
	specs := u.sup.runningSpecs("up")
	if len(specs) != 2 || specs[0].Labels["release"] != "1" || specs[0].Dir != u.releaseDir("up", 1) {
		t.Errorf("up runs %+v, want v1's web.1 and worker.1", specs)
	}
	routed := map[string]router.Route{}
	for _, r := range u.rt.routes("") {
		routed[r.App] = r
	}
	if len(routed) != 1 || !slices.Equal(routed["up"].Upstreams, []string{"127.0.0.1:" + specs[0].Labels["port"]}) {
		t.Errorf("routes set %+v, want up's to its web.1", routed)
	}
	att, err := u.st.Attempt(ctx, "up", cut.Attempt)
	if err != nil {
		t.Fatal(err)
	}
	if att.Status != store.Failed || att.Detail != interrupted {
		t.Errorf("the cut-short deploy = %+v, want failed: %s", att, interrupted)
	}
	if a, _ := u.st.App(ctx, "down"); a.State != store.AppStopped {
		t.Errorf("restore changed a stopped app's state to %v", a.State)
	}
}
