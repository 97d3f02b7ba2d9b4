package app

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"hop3/internal/store"
	"hop3/internal/ui"
)

// genericApp is a Procfile-only app: nothing to build, a release command,
// a web process and a worker.
var genericApp = map[string]string{
	"Procfile": "release: echo migrating\nweb: exec sleep 60\nworker: exec sleep 60\n",
}

// TestDeployGenericApp deploys a committed revision through Deploy: the
// attempt is recorded as release v1 with its revision and actor, the
// release command runs before any process starts, every process starts in
// the release's directory and environment, the app's route points at the
// new web process, and the current link names the release.
func TestDeployGenericApp(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	rev := u.commit(t, "shop", genericApp)

	var out bytes.Buffer
	if err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&out, false)); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	a, err := u.st.App(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != 1 || a.State != store.AppRunning {
		t.Errorf("app after the deploy: release %d, state %v; want 1, running", a.Release, a.State)
	}
	rel, err := u.st.Release(ctx, "shop", 1)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Status != store.Succeeded || rel.Revision != rev || rel.Pusher != "alice" {
		t.Errorf("release v1 = %+v; want succeeded, revision %s, by alice", rel, rev)
	}

	dir := u.releaseDir("shop", 1)
	calls, ran := u.sup.record()
	if len(calls) == 0 || calls[0] != "run shop/release.1@v1.0" {
		t.Errorf("supervisor calls %q: want the release command first", calls)
	}
	if len(ran) != 1 || !slices.Equal(ran[0].Command, []string{"/bin/sh", "-c", "echo migrating"}) ||
		ran[0].Dir != dir || !slices.Contains(ran[0].Env, "PROC_TYPE=release") {
		t.Errorf("release command run as %+v", ran)
	}

	specs := u.sup.runningSpecs("shop")
	var kinds []string
	port := ""
	for _, s := range specs {
		kinds = append(kinds, s.Labels["kind"]+"."+s.Labels["index"])
		if s.Dir != dir || s.Labels["release"] != "1" {
			t.Errorf("%s runs in %s (release %s), want %s (1)", s.Name, s.Dir, s.Labels["release"], dir)
		}
		if !slices.Contains(s.Env, "APP=shop") || !slices.Contains(s.Env, "PROC_TYPE="+s.Labels["kind"]) {
			t.Errorf("%s lacks hop3's own variables: %v", s.Name, s.Env)
		}
		if s.Labels["kind"] == "web" {
			port = s.Labels["port"]
			if port == "" || !slices.Contains(s.Env, "PORT="+port) {
				t.Errorf("web.1 listens on %q, env %v", port, s.Env)
			}
		}
	}
	if !slices.Equal(kinds, []string{"web.1", "worker.1"}) {
		t.Errorf("running %q, want web.1 and worker.1", kinds)
	}

	routes := u.rt.routes("shop")
	if len(routes) == 0 {
		t.Fatal("no route set for shop")
	}
	route := routes[len(routes)-1]
	if !slices.Equal(route.Hosts, []string{"shop.localhost"}) || !slices.Equal(route.Upstreams, []string{"127.0.0.1:" + port}) {
		t.Errorf("route = hosts %q upstreams %q; want shop.localhost to 127.0.0.1:%s", route.Hosts, route.Upstreams, port)
	}
	if got := u.current(t, "shop"); got != dir {
		t.Errorf("current -> %s, want %s", got, dir)
	}
	for _, want := range []string{"Deploying shop (" + rev[:7] + "), deploy d1", "Running release command: echo migrating", "web.1 ready", "worker.1 ready", "shop v1 is live at http://shop.localhost/"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	evs, err := u.st.Events(ctx, "shop", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs, func(e store.Event) bool {
		return e.Kind == "deploy" && e.Actor == "alice" && e.Message == "deployed v1 ("+rev[:7]+")"
	}) {
		t.Errorf("events lack the deploy: %+v", evs)
	}
}

// TestDeployFailureKeepsLiveRelease: a deploy whose web process does not
// start fails, takes no release number, stops what it started, and leaves
// the live release serving: its processes, its route and its current link.
func TestDeployFailureKeepsLiveRelease(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	u.commit(t, "shop", genericApp)
	if err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&bytes.Buffer{}, false)); err != nil {
		t.Fatal(err)
	}
	liveProcs := u.sup.names("shop")
	liveRoutes := len(u.rt.routes("shop"))

	u.commit(t, "shop", map[string]string{"Procfile": "web: exec sleep 61\nworker: exec sleep 61\n"})
	u.sup.setFailKind("web")
	var out bytes.Buffer
	err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&out, false))
	if err == nil || !strings.Contains(err.Error(), "web.1 did not start") {
		t.Fatalf("deploy with a web process that exits = %v, want web.1 did not start", err)
	}
	if !strings.Contains(out.String(), "deploy d2 failed and took no release number; v1 serves on") {
		t.Errorf("output lacks the failure summary:\n%s", out.String())
	}
	// Told once, and marked so: the command that asked prints it no more.
	if n := strings.Count(out.String(), " !     web.1 did not start"); n != 1 || !ui.IsReported(err) {
		t.Errorf("the failure was printed %d times (want 1), marked as told: %v\n%s", n, ui.IsReported(err), out.String())
	}
	a, err := u.st.App(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if a.Release != 1 {
		t.Errorf("live release after a failed deploy = v%d, want v1", a.Release)
	}
	att, err := u.st.Attempt(ctx, "shop", 2)
	if err != nil {
		t.Fatal(err)
	}
	if att.Status != store.Failed || att.Number != 0 || !strings.Contains(att.Detail, "web.1 did not start") {
		t.Errorf("attempt d2 = %+v; want failed, no number, with the reason", att)
	}
	if got := u.sup.names("shop"); !slices.Equal(got, liveProcs) {
		t.Errorf("running after the failure %q, want v1's %q alone", got, liveProcs)
	}
	if n := len(u.rt.routes("shop")); n != liveRoutes {
		t.Errorf("a failed deploy set %d routes", n-liveRoutes)
	}
	if got := u.current(t, "shop"); got != u.releaseDir("shop", 1) {
		t.Errorf("current -> %s after a failed deploy, want v1", got)
	}
}

// TestDeployRefusals: a deploy with nothing to deploy or no Procfile fails
// with one clear line and starts nothing. A deploy that began prints that
// line and returns the error marked as told (ui.Reported); a refusal before
// it began prints nothing and is not marked, so the caller prints it.
func TestDeployRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string // nil: no commit at all
		want  string
		told  bool
	}{
		{"no branch", nil, "shop has no main or master branch to deploy: push first", false},
		{"no Procfile", map[string]string{"README": "hello\n"}, "no Procfile: add one naming your processes", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			u := newUnitManager(t)
			ctx := t.Context()
			if tt.files != nil {
				u.commit(t, "shop", tt.files)
			} else if err := u.m.Create(ctx, "shop"); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&out, false))
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("deploy = %v, want one line with %q", err, tt.want)
			}
			printed, wantPrinted := strings.Count(out.String(), " !     "), 0
			if tt.told {
				wantPrinted = 1
			}
			if ui.IsReported(err) != tt.told || printed != wantPrinted {
				t.Errorf("marked as told: %v, %d failure lines; want %v, %d\n%s", ui.IsReported(err), printed, tt.told, wantPrinted, out.String())
			}
			if calls := u.sup.callsOf("start"); len(calls) != 0 {
				t.Errorf("a refused deploy started %q", calls)
			}
			if a, _ := u.st.App(ctx, "shop"); a.Release != 0 {
				t.Errorf("a refused deploy made v%d live", a.Release)
			}
		})
	}
}
