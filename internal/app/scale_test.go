package app

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
)

func TestUnpinnedWorkers(t *testing.T) {
	t.Parallel()
	most := maxAppWorkers()
	tests := []struct{ pinned, want int }{
		{0, 1}, // pinned at zero: it runs again, from one
		{1, 1},
		{most, most},
		{most + 1, most}, // never more than the autoscaler would give
		{MaxScale, most},
	}
	for _, tt := range tests {
		if got := unpinnedWorkers(tt.pinned); got != tt.want {
			t.Errorf("unpinnedWorkers(%d) = %d, want %d", tt.pinned, got, tt.want)
		}
	}
}

func TestAutoScaleRefusal(t *testing.T) {
	t.Parallel()
	wsgi := procfile.Entry{Name: "wsgi", Kind: procfile.KindWSGI}
	tests := []struct {
		name   string
		e      procfile.Entry
		env    map[string]string
		config map[string]string
		want   string // "": handed back
	}{
		{"wsgi", wsgi, nil, nil, ""},
		{"asgi", procfile.Entry{Name: "api", Kind: procfile.KindASGI}, nil, nil, ""},
		{"threads pin nothing", wsgi, map[string]string{"GRANIAN_THREADS": "4"}, map[string]string{"GRANIAN_THREADS": "4"}, ""},
		{"web", procfile.Entry{Name: "web", Kind: procfile.KindWeb}, nil, nil,
			"scale web=auto: only wsgi/asgi entries are scaled automatically; web is a web process, give it a count (web=N)"},
		{"worker", procfile.Entry{Name: "jobs", Kind: procfile.KindWorker}, nil, nil,
			"scale jobs=auto: only wsgi/asgi entries are scaled automatically; jobs is a worker process, give it a count (jobs=N)"},
		{"config pin", wsgi, map[string]string{"GRANIAN_WORKERS": "4"}, map[string]string{"GRANIAN_WORKERS": "4"},
			"scale wsgi=auto: GRANIAN_WORKERS=4 in shop's config pins its workers; `config:unset shop GRANIAN_WORKERS` hands them to the autoscaler"},
		{"repository pin", wsgi, map[string]string{"WEB_CONCURRENCY": "2"}, map[string]string{},
			"scale wsgi=auto: WEB_CONCURRENCY=2 in shop's ENV or .env pins its workers; remove it there and push to hand them to the autoscaler"},
	}
	for _, tt := range tests {
		r := release{app: "shop", env: tt.env}
		if got := autoScaleRefusal(r, tt.e, tt.config); got != tt.want {
			t.Errorf("%s: refusal = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestScaleAuto pins an app's wsgi entry with ps:scale, then hands it
// back: the pin leaves the store, the entry switches (start before drain)
// to a generation the autoscaler owns, from the count it ran; a second
// auto changes nothing; auto for a worker entry or a GRANIAN_WORKERS pin
// is refused with nothing changed.
func TestScaleAuto(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	u.goLive(t, "shop", u.addRelease(t, "shop", "wsgi: app:app\nworker: exec sleep 60\n", `{"venv":"/venv"}`))
	var out bytes.Buffer
	w := ui.New(&out, false)
	scale := func(counts map[string]int) error {
		out.Reset()
		return u.m.Scale(ctx, "shop", counts, w)
	}
	wsgi := func() (workers, scaling string) {
		t.Helper()
		for _, s := range u.sup.runningSpecs("shop") {
			if s.Labels["kind"] == "wsgi" {
				return s.Labels[workersLabel], s.Labels[scalingLabel]
			}
		}
		t.Fatal("no wsgi process runs")
		return "", ""
	}
	stored := func() map[string]int {
		t.Helper()
		got, err := u.st.Scale(ctx, "shop")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	if n, s := wsgi(); n != "1" || s != ScalingAuto {
		t.Fatalf("first deploy: %s workers (%s), want 1 (auto)", n, s)
	}
	if err := scale(map[string]int{"wsgi": 2}); err != nil {
		t.Fatal(err)
	}
	if n, s := wsgi(); n != "2" || s != ScalingPinned {
		t.Fatalf("after wsgi=2: %s workers (%s), want 2 (pinned)", n, s)
	}
	pinnedGen := u.sup.names("shop")

	if err := scale(map[string]int{"wsgi": store.ScaleAuto}); err != nil {
		t.Fatal(err)
	}
	if got := stored(); len(got) != 0 {
		t.Errorf("stored scale after wsgi=auto = %v, want none", got)
	}
	want := unpinnedWorkers(2)
	if n, s := wsgi(); n != strconv.Itoa(want) || s != ScalingAuto {
		t.Errorf("after wsgi=auto: %s workers (%s), want %d (auto)", n, s, want)
	}
	if got := u.m.workers.count(workerKey{"shop", "wsgi"}); got != want {
		t.Errorf("autoscaler's count = %d, want %d", got, want)
	}
	if !strings.Contains(out.String(), "wsgi's workers follow the load again, from "+strconv.Itoa(want)) {
		t.Errorf("output lacks the hand-back:\n%s", out.String())
	}
	// Zero downtime: the new wsgi generation started before the pinned
	// one drained, and the worker entry was left alone.
	calls, _ := u.sup.record()
	wsgiOf := func(names []string) string {
		i := slices.IndexFunc(names, func(n string) bool { return strings.Contains(n, "wsgi") })
		if i < 0 {
			t.Fatalf("no wsgi among %q", names)
		}
		return names[i]
	}
	oldWSGI, newWSGI := wsgiOf(pinnedGen), wsgiOf(u.sup.names("shop"))
	started := slices.Index(calls, "start "+newWSGI)
	drained := slices.Index(calls, "drain "+oldWSGI)
	if oldWSGI == newWSGI || started < 0 || drained < 0 || started > drained {
		t.Errorf("calls %q: want %s started before %s drained", calls, newWSGI, oldWSGI)
	}
	for _, name := range pinnedGen {
		if strings.Contains(name, "worker") && !slices.Contains(u.sup.names("shop"), name) {
			t.Errorf("the worker entry %s was restarted", name)
		}
	}

	// Already auto: nothing to switch.
	before := u.sup.names("shop")
	if err := scale(map[string]int{"wsgi": store.ScaleAuto}); err != nil {
		t.Fatal(err)
	}
	if got := u.sup.names("shop"); !slices.Equal(got, before) {
		t.Errorf("a second wsgi=auto switched %q to %q", before, got)
	}
	if !strings.Contains(out.String(), "wsgi is already scaled automatically") {
		t.Errorf("output:\n%s", out.String())
	}

	// Refused: a worker entry, also beside a valid change, which is then
	// not made either.
	if err := u.st.SetScale(ctx, "shop", map[string]int{"wsgi": 2}); err != nil {
		t.Fatal(err)
	}
	err := scale(map[string]int{"worker": store.ScaleAuto, "wsgi": store.ScaleAuto})
	if err == nil || !strings.Contains(err.Error(), "only wsgi/asgi entries are scaled automatically") {
		t.Errorf("worker=auto: %v", err)
	}
	if got := stored(); !maps.Equal(got, map[string]int{"wsgi": 2}) {
		t.Errorf("stored scale after a refused auto = %v", got)
	}
	if got := u.sup.names("shop"); !slices.Equal(got, before) {
		t.Errorf("a refused auto switched %q to %q", before, got)
	}

	// ValidateScale says the same before anything is said or done.
	if err := u.m.ValidateScale(ctx, "shop", map[string]int{"worker": store.ScaleAuto}); err == nil || !strings.Contains(err.Error(), "only wsgi/asgi") {
		t.Errorf("ValidateScale(worker=auto) = %v", err)
	}
	if err := u.m.ValidateScale(ctx, "shop", map[string]int{"wsgi": store.ScaleAuto, "worker": 2}); err != nil {
		t.Errorf("ValidateScale(wsgi=auto worker=2) = %v", err)
	}

	// A config pin: auto says how to remove it and changes nothing.
	if err := u.st.SetConfig(ctx, "shop", map[string]string{"GRANIAN_WORKERS": "3"}); err != nil {
		t.Fatal(err)
	}
	err = scale(map[string]int{"wsgi": store.ScaleAuto})
	if err == nil || !strings.Contains(err.Error(), "`config:unset shop GRANIAN_WORKERS`") || strings.Contains(err.Error(), "\n") {
		t.Errorf("wsgi=auto under GRANIAN_WORKERS: %v", err)
	}
	if verr := u.m.ValidateScale(ctx, "shop", map[string]int{"wsgi": store.ScaleAuto}); verr == nil || err == nil || verr.Error() != err.Error() {
		t.Errorf("ValidateScale = %v, want Scale's %v", verr, err)
	}
	if got := stored(); !maps.Equal(got, map[string]int{"wsgi": 2}) {
		t.Errorf("stored scale after a refused auto = %v", got)
	}
	if got := u.sup.names("shop"); !slices.Equal(got, before) {
		t.Errorf("a refused auto switched %q to %q", before, got)
	}
}

// TestScaleAutoStopped: a stopped app's pin is removed with nothing
// started, and it starts from one auto worker.
func TestScaleAutoStopped(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	u.goLive(t, "shop", u.addRelease(t, "shop", "wsgi: app:app\n", `{"venv":"/venv"}`))
	w := ui.New(&bytes.Buffer{}, false)
	if err := u.m.Scale(ctx, "shop", map[string]int{"wsgi": 3}, w); err != nil {
		t.Fatal(err)
	}
	if err := u.m.StopApp(ctx, "shop", w); err != nil {
		t.Fatal(err)
	}
	if err := u.m.Scale(ctx, "shop", map[string]int{"wsgi": store.ScaleAuto}, w); err != nil {
		t.Fatal(err)
	}
	if got := u.sup.names("shop"); len(got) != 0 {
		t.Errorf("auto on a stopped app started %q", got)
	}
	if err := u.m.StartApp(ctx, "shop", w); err != nil {
		t.Fatal(err)
	}
	specs := u.sup.runningSpecs("shop")
	got := make([]map[string]string, 0, len(specs))
	for _, s := range specs {
		got = append(got, map[string]string{"workers": s.Labels[workersLabel], "scaling": s.Labels[scalingLabel]})
	}
	if want := []map[string]string{{"workers": "1", "scaling": ScalingAuto}}; !reflect.DeepEqual(got, want) {
		t.Errorf("started %v, want %v", got, want)
	}
}

// TestScaleAutoRepositoryPin: WEB_CONCURRENCY from the repository's .env
// pins too, and auto names the file to change.
func TestScaleAutoRepositoryPin(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	v := u.addRelease(t, "shop", "wsgi: app:app\n", `{"venv":"/venv"}`)
	if err := os.WriteFile(filepath.Join(u.releaseDir("shop", v), ".env"), []byte("WEB_CONCURRENCY=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u.goLive(t, "shop", v)
	err := u.m.Scale(ctx, "shop", map[string]int{"wsgi": store.ScaleAuto}, ui.New(&bytes.Buffer{}, false))
	if err == nil || !strings.Contains(err.Error(), "WEB_CONCURRENCY=2 in shop's ENV or .env pins its workers") {
		t.Errorf("wsgi=auto under a .env pin: %v", err)
	}
}
