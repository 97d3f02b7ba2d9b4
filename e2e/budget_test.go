package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// cpuApp answers after 20 ms of its thread's CPU time in pure Python: a
// CPU-bound view, however busy the machine.
func cpuApp() map[string]string {
	return map[string]string{
		"app.py": `import time
def app(environ, start_response):
    end = time.thread_time() + 0.02
    n = 0
    while time.thread_time() < end:
        n += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
`,
		"requirements.txt": "# no dependencies\n",
		"Procfile":         "wsgi: app:app\n",
	}
}

// endLoad stops a load and checks every request got its 200.
func endLoad(t *testing.T, g *loadGen, what string) {
	t.Helper()
	res := g.stop()
	t.Logf("%s: %d requests, %d failed", what, res.total, res.failed)
	if res.failed > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %s", what, res.failed, res.total, res.firstErr)
	}
	if res.total == 0 || res.bodies["ok"] != res.total-res.failed {
		t.Errorf("%s: answers %v of %d requests, want all \"ok\"", what, res.bodies, res.total)
	}
}

// webWorkers reads ps --json: the worker counts and scaling of the app's
// wsgi processes that are not draining.
func webWorkers(t *testing.T, d *daemon, u user, app string) []string {
	t.Helper()
	var rows []struct {
		Kind    string `json:"kind"`
		State   string `json:"state"`
		Workers int    `json:"workers"`
		Scaling string `json:"scaling"`
	}
	out := d.mustCmd(u, "ps", app, "--json").stdout
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("ps --json: %v\n%s", err, out)
	}
	var got []string
	for _, r := range rows {
		if r.Kind == "wsgi" && r.State != "draining" {
			got = append(got, fmt.Sprintf("%d %s", r.Workers, r.Scaling))
		}
	}
	return got
}

func wantWorkers(d *daemon, u user, app string, want string) func() error {
	return func() error {
		got := webWorkers(d.t, d, u, app)
		if len(got) != 1 || got[0] != want {
			return fmt.Errorf("%s's wsgi workers (ps) = %q, want [%s]", app, got, want)
		}
		return nil
	}
}

// budgetDaemon starts hop3 with the autoscaler sampling every 300 ms (an
// entry is busy after 1.5 s of load, idle after 9 s) and one user.
func budgetDaemon(t *testing.T) (*daemon, user) {
	t.Helper()
	d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_TEST_AUTOSCALE_INTERVAL=300ms"})
	alice := newUser(t, "alice")
	d.register(alice)
	return d, alice
}

// TestWorkerBudgetScales: an auto app starts with one Granian worker,
// gains a second under sustained CPU load driven through Caddy, and gives
// it back once the load stops, each change a zero-downtime switch that
// fails no request; events record both decisions. An app pinned with
// ps:scale stays at its count under the same load.
func TestWorkerBudgetScales(t *testing.T) {
	t.Parallel()
	d, alice := budgetDaemon(t)

	w := newWorkdir(t, cpuApp())
	w.mustPush(d, alice, "busy")
	wantBody(t, d, "busy.localhost", "/", "ok")
	eventually(t, 10*time.Second, wantWorkers(d, alice, "busy", "1 auto"))

	start := time.Now()
	l := startLoad(t, d, "busy.localhost", 6)
	eventually(t, 120*time.Second, wantWorkers(d, alice, "busy", "2 auto"))
	took := time.Since(start)
	t.Logf("scaled up after %s of load", took.Round(time.Millisecond))
	// Load goes on across the switch and a little after.
	time.Sleep(3 * time.Second)
	endLoad(t, l, "under load")

	// Idle: the odd request, each answered, while the worker goes back.
	eventually(t, 120*time.Second, func() error {
		wantBody(t, d, "busy.localhost", "/", "ok")
		return wantWorkers(d, alice, "busy", "1 auto")()
	})

	ev := d.mustCmd(alice, "events", "busy").stdout
	for _, want := range []string{"scaled wsgi to 2 workers (load)", "scaled wsgi to 1 worker (idle)"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}

	// Pinned: the same load for longer than the auto app needed changes
	// nothing.
	p := newWorkdir(t, cpuApp())
	p.mustPush(d, alice, "pinned")
	d.mustCmd(alice, "ps:scale", "pinned", "wsgi=1")
	eventually(t, 10*time.Second, wantWorkers(d, alice, "pinned", "1 pinned"))
	l = startLoad(t, d, "pinned.localhost", 6)
	time.Sleep(max(2*took, 10*time.Second))
	if err := wantWorkers(d, alice, "pinned", "1 pinned")(); err != nil {
		t.Error(err)
	}
	endLoad(t, l, "pinned under load")
	if ev := d.mustCmd(alice, "events", "pinned").stdout; strings.Contains(ev, "autoscale") {
		t.Errorf("the pinned app was autoscaled:\n%s", ev)
	}
}

// TestWorkerBudgetUnpin: ps:scale wsgi=2 pins an auto app's workers (ps:
// 2 pinned), wsgi=auto hands them back from that count (ps: 2 auto) and
// the autoscaler then takes the idle second worker back, while a client
// requesting the page through both switches gets every answer. auto is
// refused in one line for a worker entry and under a GRANIAN_WORKERS pin,
// which it names.
func TestWorkerBudgetUnpin(t *testing.T) {
	t.Parallel()
	d, alice := budgetDaemon(t)
	files := wsgiApp("ok")
	files["Procfile"] = "wsgi: app:app\nworker: exec sleep 600\n"
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "flex")
	wantBody(t, d, "flex.localhost", "/", "ok")
	eventually(t, 10*time.Second, wantWorkers(d, alice, "flex", "1 auto"))

	l := startLoad(t, d, "flex.localhost", 1)
	d.mustCmd(alice, "ps:scale", "flex", "wsgi=2")
	if err := wantWorkers(d, alice, "flex", "2 pinned")(); err != nil {
		t.Error(err)
	}
	if ps := d.mustCmd(alice, "ps", "flex").stdout; !strings.Contains(ps, "2 (pinned)") {
		t.Errorf("ps after wsgi=2 lacks 2 (pinned):\n%s", ps)
	}
	r := d.mustCmd(alice, "ps:scale", "flex", "wsgi=auto")
	if !strings.Contains(r.stderr, "wsgi's workers follow the load again, from 2") {
		t.Errorf("ps:scale wsgi=auto said:\n%s", r.stderr)
	}
	if err := wantWorkers(d, alice, "flex", "2 auto")(); err != nil {
		t.Error(err)
	}
	if ps := d.mustCmd(alice, "ps", "flex").stdout; !strings.Contains(ps, "2 (auto)") {
		t.Errorf("ps after wsgi=auto lacks 2 (auto):\n%s", ps)
	}
	time.Sleep(time.Second) // load a little after the switch too
	endLoad(t, l, "through pin and unpin")

	// The autoscaler owns the entry again: idle, it gives a worker back.
	eventually(t, 90*time.Second, func() error {
		wantBody(t, d, "flex.localhost", "/", "ok")
		return wantWorkers(d, alice, "flex", "1 auto")()
	})
	ev := d.mustCmd(alice, "events", "flex").stdout
	for _, want := range []string{"scaled wsgi=2", "scaled wsgi=auto", "scaled wsgi to 1 worker (idle)"} {
		if !strings.Contains(ev, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}

	wantFail(t, d.command(alice, "", "ps:scale", "flex", "worker=auto"), 1,
		"scale worker=auto: only wsgi/asgi entries are scaled automatically; worker is a worker process, give it a count (worker=N)")
	d.mustCmd(alice, "config:set", "flex", "GRANIAN_WORKERS=2")
	eventually(t, 10*time.Second, wantWorkers(d, alice, "flex", "2 pinned"))
	wantFail(t, d.command(alice, "", "ps:scale", "flex", "wsgi=auto"), 1,
		"scale wsgi=auto: GRANIAN_WORKERS=2 in flex's config pins its workers; `config:unset flex GRANIAN_WORKERS` hands them to the autoscaler")
	if err := wantWorkers(d, alice, "flex", "2 pinned")(); err != nil {
		t.Error(err)
	}
	wantBody(t, d, "flex.localhost", "/", "ok")
}
