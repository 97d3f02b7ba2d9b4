package app

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"hop3/runtime/supervisor"
)

func repeat(u float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = u
	}
	return out
}

func TestScaleDecision(t *testing.T) {
	t.Parallel()
	p := scalePolicy{up: 0.75, down: 0.3, upAfter: 3, downAfter: 5}
	tests := []struct {
		name string
		v    scaleView
		want int
	}{
		{"busy: one more", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.95, 3)}, 1},
		{"busy at the threshold", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.75, 3)}, 1},
		{"busy only lately: wait", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.95, 2)}, 0},
		// The mean of the window decides: a machine busy with other work
		// lets a busy worker have less of a core now and then.
		{"a dip does not break sustained load", scaleView{workers: 1, max: 2, room: 3, samples: []float64{0.9, 0.5, 0.9}}, 1},
		{"a burst is not sustained load", scaleView{workers: 1, max: 2, room: 3, samples: []float64{0.1, 0.2, 1}}, 0},
		{"older quiet samples do not count", scaleView{workers: 1, max: 2, room: 3, samples: []float64{0.1, 0.9, 0.9, 0.9}}, 1},
		{"budget full", scaleView{workers: 1, max: 2, room: 0, samples: repeat(1, 3)}, 0},
		{"at the app's maximum", scaleView{workers: 2, max: 2, room: 3, samples: repeat(1, 5)}, 0},
		{"pinned", scaleView{pinned: true, workers: 1, max: 2, room: 3, samples: repeat(1, 5)}, 0},
		{"pinned and idle", scaleView{pinned: true, workers: 3, max: 4, room: 3, samples: repeat(0, 5)}, 0},
		{"idle long enough: one fewer", scaleView{workers: 2, max: 2, room: 0, samples: repeat(0.02, 5)}, -1},
		{"idle, not long enough", scaleView{workers: 2, max: 2, room: 0, samples: repeat(0.02, 4)}, 0},
		{"already at one", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0, 5)}, 0},
		// 0.2 per worker on 2 is 0.4 on one: above down, so the worker
		// it would take back would be wanted again.
		{"hysteresis: moderate load keeps the worker", scaleView{workers: 2, max: 2, room: 0, samples: repeat(0.2, 5)}, 0},
		{"hysteresis: light load on three gives one back", scaleView{workers: 3, max: 4, room: 0, samples: repeat(0.15, 5)}, -1},
		{"between the thresholds: nothing", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.5, 5)}, 0},
		{"no samples", scaleView{workers: 2, max: 2, room: 3}, 0},
	}
	for _, tt := range tests {
		if got := p.decide(tt.v); got != tt.want {
			t.Errorf("%s: decide(%+v) = %d, want %d", tt.name, tt.v, got, tt.want)
		}
	}
}

func TestWorkerBudget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cores int
		avail int64
		want  int
	}{
		{2, 8 << 30, 4},    // cores decide
		{2, 0, 4},          // memory unknown
		{8, 256 << 20, 4},  // memory decides: 256 MiB / 64 MiB
		{2, 10 << 20, 1},   // at least one
		{0, 0, 2},          // a bad core count counts as one
		{16, 64 << 30, 32}, // two per core
		{4, 200 << 20, 3},  // rounded down
	}
	for _, tt := range tests {
		if got := WorkerBudget(tt.cores, tt.avail); got != tt.want {
			t.Errorf("WorkerBudget(%d, %d) = %d, want %d", tt.cores, tt.avail, got, tt.want)
		}
	}
}

func TestParseWorkerBudget(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{"auto": 0, "": 0, "6": 6, " 3 ": 3, "1024": 1024} {
		if got, err := ParseWorkerBudget(in); err != nil || got != want {
			t.Errorf("ParseWorkerBudget(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"0", "-1", "lots", "1025", "2.5"} {
		if _, err := ParseWorkerBudget(in); err == nil || !strings.Contains(err.Error(), "use auto or a number") {
			t.Errorf("ParseWorkerBudget(%q) = %v, want a refusal", in, err)
		}
	}
}

func TestMemAvailable(t *testing.T) {
	t.Parallel()
	in := "MemTotal:        4000000 kB\nMemFree:          100 kB\nMemAvailable:    2000000 kB\n"
	if got := MemAvailable(strings.NewReader(in)); got != 2000000<<10 {
		t.Errorf("MemAvailable = %d", got)
	}
	for _, in := range []string{"", "MemTotal: 5 kB\n", "MemAvailable: lots kB\n"} {
		if got := MemAvailable(strings.NewReader(in)); got != 0 {
			t.Errorf("MemAvailable(%q) = %d, want 0", in, got)
		}
	}
}

func TestEnvWorkersPin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env    map[string]string
		n      int
		key    string
		pinned bool
	}{
		{map[string]string{}, 0, "", false},
		{map[string]string{"GRANIAN_WORKERS": "3"}, 3, "GRANIAN_WORKERS", true},
		{map[string]string{"WEB_CONCURRENCY": "2"}, 2, "WEB_CONCURRENCY", true},
		{map[string]string{"GRANIAN_WORKERS": "0"}, 0, "", false},
		{map[string]string{"WEB_CONCURRENCY": "many"}, 0, "", false},
		{map[string]string{"GRANIAN_WORKERS": "x", "WEB_CONCURRENCY": "4"}, 4, "WEB_CONCURRENCY", true},
	}
	for _, tt := range tests {
		if n, key, pinned := envWorkers(tt.env); n != tt.n || key != tt.key || pinned != tt.pinned {
			t.Errorf("envWorkers(%v) = %d, %q, %v; want %d, %q, %v", tt.env, n, key, pinned, tt.n, tt.key, tt.pinned)
		}
	}
}

// fakeUsage is a usage reader whose CPU seconds the test sets.
type fakeUsage map[int]float64

func (f fakeUsage) read(pgids []int) map[int]supervisor.Usage {
	out := map[int]supervisor.Usage{}
	for _, g := range pgids {
		if cpu, ok := f[g]; ok {
			out[g] = supervisor.Usage{CPU: cpu}
		}
	}
	return out
}

func granianProc(app string, pid, gen, workers int, scaling string, state supervisor.State) supervisor.Status {
	lbl := labels(app, "wsgi", 1, 1, gen)
	lbl["iface"], lbl["socket"] = "wsgi", "/run/"+app+".sock"
	lbl[workersLabel], lbl[scalingLabel] = strconv.Itoa(workers), scaling
	return supervisor.Status{Name: processName(app, "wsgi", 1, 1, gen), Labels: lbl, PID: pid, State: state}
}

// TestAutoscalerPlan drives the sampler with a fake usage reader: CPU
// seconds per interval become load per worker, a busy auto app gains a
// worker, a pinned one never does, the budget caps the total, one switch
// at a time, and a new generation starts its samples afresh.
func TestAutoscalerPlan(t *testing.T) {
	t.Parallel()
	usage := fakeUsage{}
	a := newAutoscaler(3, 2, usage.read)
	a.policy = scalePolicy{up: 0.75, down: 0.3, upAfter: 3, downAfter: 4}
	now := time.Unix(1000, 0)
	procs := []supervisor.Status{
		granianProc("busy", 101, 1, 1, ScalingAuto, supervisor.Running),
		granianProc("pinned", 102, 2, 1, ScalingPinned, supervisor.Running),
		granianProc("also", 103, 3, 1, ScalingAuto, supervisor.Running),
	}
	step := func(cpu map[int]float64) []scaleChange {
		for pid, d := range cpu {
			usage[pid] += d
		}
		now = now.Add(time.Second)
		return a.plan(procs, now)
	}
	busy := map[int]float64{101: 0.9, 102: 1, 103: 0.9}
	if c := step(busy); c != nil {
		t.Fatalf("first sample (a baseline) planned %+v", c)
	}
	for i := 0; i < 2; i++ {
		if c := step(busy); c != nil {
			t.Fatalf("sample %d planned %+v", i+2, c)
		}
	}
	// Third load sample: both auto apps are busy, the budget (3, with 3
	// workers running) has no room.
	if c := step(busy); c != nil {
		t.Fatalf("budget full, planned %+v", c)
	}
	// The pinned app goes; room for one worker, which one auto app gets.
	procs = procs[:1:1]
	procs = append(procs, granianProc("also", 103, 3, 1, ScalingAuto, supervisor.Running))
	c := step(busy)
	if len(c) != 1 || c[0].workers != 2 || c[0].from != 1 || c[0].reason != "load" {
		t.Fatalf("planned %+v, want one app to 2 workers for load", c)
	}
	first := c[0].key
	// In flight: no second change for it, and its reserved worker fills
	// the budget for the other.
	if c := step(busy); c != nil {
		t.Fatalf("planned %+v while a switch is in flight", c)
	}
	// The switch is done: the app runs a new generation with 2 workers.
	a.done(first)
	usage[200] = 5
	for i, p := range procs {
		if p.Labels["app"] == first.app {
			procs[i] = granianProc(first.app, 200, 9, 2, ScalingAuto, supervisor.Running)
		}
	}
	idle := map[int]float64{}
	for i := 0; i < 4; i++ {
		if c := step(idle); len(c) != 0 && c[0].key == first {
			t.Fatalf("idle sample %d of the new generation planned %+v", i, c)
		}
	}
	var down []scaleChange
	for _, ch := range step(idle) {
		if ch.key == first {
			down = append(down, ch)
		}
	}
	if len(down) != 1 || down[0].workers != 1 || down[0].reason != "idle" {
		t.Fatalf("after 4 idle samples planned %+v, want one fewer worker", down)
	}
}

// TestAutoscalerIgnoresOthers: pinned, draining, starting and non-Granian
// processes are neither sampled nor scaled, however busy.
func TestAutoscalerIgnoresOthers(t *testing.T) {
	t.Parallel()
	usage := fakeUsage{101: 0, 102: 0, 104: 0, 105: 0}
	read := 0
	a := newAutoscaler(10, 4, func(pgids []int) map[int]supervisor.Usage { read++; return usage.read(pgids) })
	a.policy = scalePolicy{up: 0.5, down: 0.1, upAfter: 1, downAfter: 1}
	web := supervisor.Status{Labels: map[string]string{"app": "x", "kind": "web", "gen": "1"}, PID: 104, State: supervisor.Running}
	procs := []supervisor.Status{
		granianProc("a", 101, 1, 1, ScalingAuto, supervisor.Draining),
		granianProc("b", 102, 1, 1, ScalingAuto, supervisor.Starting),
		granianProc("c", 105, 1, 1, ScalingPinned, supervisor.Running),
		web,
	}
	now := time.Unix(0, 0)
	for i := 0; i < 3; i++ {
		for pid := range usage {
			usage[pid]++
		}
		now = now.Add(time.Second)
		if c := a.plan(procs, now); c != nil {
			t.Fatalf("planned %+v", c)
		}
	}
	if read != 0 {
		t.Errorf("read /proc %d times with no running auto process", read)
	}
}
