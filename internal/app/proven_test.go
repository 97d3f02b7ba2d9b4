package app

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"hop3/internal/ui"
)

// TestProvenRelease: a push identical to the live release (same tree,
// build, settings) goes live without SETTLE_TIME once the live generation
// has stayed up that long; a live generation younger than that, a changed
// tree or changed settings keep the wait.
func TestProvenRelease(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	deploy := func() string {
		t.Helper()
		var out bytes.Buffer
		if err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&out, false)); err != nil {
			t.Fatalf("deploy: %v\n%s", err, out.String())
		}
		return out.String()
	}
	const skipped = "no settle wait"

	u.commit(t, "shop", genericApp)
	if out := deploy(); strings.Contains(out, skipped) {
		t.Fatalf("first deploy skipped the settle time:\n%s", out)
	}
	u.commit(t, "shop", genericApp)
	if out := deploy(); strings.Contains(out, skipped) {
		t.Errorf("v1 had just started, yet v2 skipped the settle time:\n%s", out)
	}

	u.sup.age(time.Minute)
	u.commit(t, "shop", genericApp)
	if out := deploy(); !strings.Contains(out, "Same tree, build and settings as v2, which has stayed up: no settle wait") {
		t.Errorf("an unchanged push after v2 stayed up waited:\n%s", out)
	}
	if specs := u.sup.runningSpecs("shop"); len(specs) == 0 || specs[0].SettleTime != 0 {
		t.Errorf("v3's processes: %+v; want them started with no settle time", specs)
	}

	u.sup.age(time.Minute)
	changed := map[string]string{"Procfile": genericApp["Procfile"], "README": "changed\n"}
	u.commit(t, "shop", changed)
	if out := deploy(); strings.Contains(out, skipped) {
		t.Errorf("a changed tree skipped the settle time:\n%s", out)
	}

	// Settings: the same tree with another config var is not proven.
	u.sup.age(time.Minute)
	live, err := u.m.loadRelease(ctx, "shop", 4)
	if err != nil {
		t.Fatal(err)
	}
	next := live
	next.number = 5
	if got := u.m.provenBy(ctx, 4, next, time.Now()); got != 4 {
		t.Errorf("provenBy of an identical release = %d, want 4", got)
	}
	next.env = map[string]string{}
	for k, v := range live.env {
		next.env[k] = v
	}
	next.env["GREETING"] = "hi"
	if got := u.m.provenBy(ctx, 4, next, time.Now()); got != 0 {
		t.Errorf("provenBy with another setting = %d, want 0", got)
	}
	next = live
	next.number = 5
	next.meta.Source = ""
	if got := u.m.provenBy(ctx, 4, next, time.Now()); got != 0 {
		t.Errorf("provenBy without a source hash = %d, want 0", got)
	}
}
