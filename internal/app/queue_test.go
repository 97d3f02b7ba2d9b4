package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"hop3/internal/router"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// TestScaleDecisionQueue: a wsgi entry whose requests wait for a thread
// gains a worker with its CPU idle, and gives it back only when its
// requests in flight would leave one worker fewer room to spare as well.
func TestScaleDecisionQueue(t *testing.T) {
	t.Parallel()
	p := scalePolicy{up: 0.75, down: 0.3, upAfter: 3, downAfter: 5}
	unknown := math.NaN()
	idle3, idle5 := repeat(0.01, 3), repeat(0.01, 5)
	tests := []struct {
		name string
		v    scaleView
		want int
	}{
		{"requests wait on one thread: one more", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: repeat(6, 3)}, 1},
		// One client after another keeps the thread busy with none
		// waiting: a second worker would serve it no faster.
		{"exactly the capacity: nothing", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: repeat(1, 3)}, 0},
		{"the mean decides", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: []float64{1, 2, 1}}, 1},
		{"a lone small burst is not a queue", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: []float64{0, 0, 2}}, 0},
		{"older waiting does not count", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.01, 4), threads: 1, inFlight: []float64{6, 0, 1, 0}}, 0},
		{"only lately: wait", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.01, 2), threads: 1, inFlight: repeat(6, 2)}, 0},
		{"threads are capacity", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 4, inFlight: repeat(4, 3)}, 0},
		{"threads all busy and more", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 4, inFlight: repeat(5, 3)}, 1},
		{"workers are capacity", scaleView{workers: 2, max: 3, room: 3, samples: idle3, threads: 1, inFlight: repeat(2, 3)}, 0},
		{"every worker's thread busy and more", scaleView{workers: 2, max: 3, room: 3, samples: idle3, threads: 1, inFlight: repeat(3, 3)}, 1},
		{"budget full", scaleView{workers: 1, max: 2, room: 0, samples: idle3, threads: 1, inFlight: repeat(6, 3)}, 0},
		{"at the app's maximum", scaleView{workers: 2, max: 2, room: 3, samples: idle3, threads: 1, inFlight: repeat(6, 3)}, 0},
		{"pinned", scaleView{pinned: true, workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: repeat(6, 3)}, 0},
		// An asgi worker serves many requests at once: in flight is not
		// waiting, and its CPU alone decides.
		{"asgi: requests in flight do not count", scaleView{workers: 1, max: 2, room: 3, samples: idle3, inFlight: repeat(6, 3)}, 0},
		{"asgi: CPU still does", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.9, 3), inFlight: repeat(0, 3)}, 1},
		{"caddy silent in the window: CPU decides", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: []float64{6, unknown, 6}}, 0},
		{"caddy silent, CPU busy", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.9, 3), threads: 1, inFlight: repeat(unknown, 3)}, 1},
		{"CPU busy, nothing waiting", scaleView{workers: 1, max: 2, room: 3, samples: repeat(0.9, 3), threads: 1, inFlight: repeat(0, 3)}, 1},
		{"counts not beside the samples: CPU decides", scaleView{workers: 1, max: 2, room: 3, samples: idle3, threads: 1, inFlight: repeat(6, 4)}, 0},

		{"idle and nothing in flight: one fewer", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: repeat(0, 5)}, -1},
		{"a request now and then: one fewer", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: []float64{0, 0, 1, 0, 0}}, -1},
		// On one worker fewer, a request in flight at every other sample
		// would keep its one thread busy half the time or more.
		{"half of one worker fewer keeps the worker", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: []float64{0, 1, 0, 1, 1}}, 0},
		{"requests in flight keep a worker the CPU would give back", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: repeat(1, 5)}, 0},
		{"below half of one worker fewer: one fewer", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 4, inFlight: repeat(1, 5)}, -1},
		{"half of one worker fewer keeps it", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 4, inFlight: repeat(2, 5)}, 0},
		{"three workers, light traffic: one fewer", scaleView{workers: 3, max: 4, room: 0, samples: idle5, threads: 1, inFlight: repeat(0, 5)}, -1},
		{"caddy silent: the CPU alone gives back", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: repeat(unknown, 5)}, -1},
		{"what caddy said counts", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: []float64{1, unknown, 1, unknown, unknown}}, 0},
		{"what caddy said was quiet", scaleView{workers: 2, max: 2, room: 0, samples: idle5, threads: 1, inFlight: []float64{0, unknown, 0, unknown, 1}}, -1},
		{"quiet queue, busy CPU keeps it", scaleView{workers: 2, max: 2, room: 0, samples: repeat(0.2, 5), threads: 1, inFlight: repeat(0, 5)}, 0},
		{"quiet, not long enough", scaleView{workers: 2, max: 2, room: 0, samples: repeat(0.01, 4), threads: 1, inFlight: repeat(0, 4)}, 0},
	}
	for _, tt := range tests {
		if got := p.decide(tt.v); got != tt.want {
			t.Errorf("%s: decide(%+v) = %d, want %d", tt.name, tt.v, got, tt.want)
		}
	}
}

// wsgiProc is a Granian wsgi process with its blocking threads labelled,
// as granianSpec starts it.
func wsgiProc(app string, pid, gen, workers, threads int) supervisor.Status {
	st := granianProc(app, pid, gen, workers, ScalingAuto, supervisor.Running)
	st.Labels[threadsLabel] = strconv.Itoa(threads)
	return st
}

// asgiProc is a Granian asgi process: no threads label.
func asgiProc(app string, pid, gen int) supervisor.Status {
	st := granianProc(app, pid, gen, 1, ScalingAuto, supervisor.Running)
	st.Labels["iface"], st.Labels["kind"] = "asgi", "asgi"
	return st
}

// TestAutoscalerPlanQueue drives the sampler with no CPU use and requests
// in flight read from a fake: a wsgi app whose requests wait gains a
// worker, an asgi app with as many in flight does not, and once the wsgi
// app's new generation has nothing in flight it gives the worker back,
// but not while a request keeps it busy.
func TestAutoscalerPlanQueue(t *testing.T) {
	t.Parallel()
	usage := fakeUsage{101: 0, 102: 0, 200: 0}
	a := newAutoscaler(10, 2, usage.read)
	a.policy = scalePolicy{up: 0.75, down: 0.3, upAfter: 3, downAfter: 4}
	inFlight := map[string]int{}
	asked := 0
	a.queue = func() map[string]int { asked++; return maps.Clone(inFlight) }
	var observed []float64
	a.observe = func(k workerKey, _ int, _, q float64) {
		if k.app == "io" {
			observed = append(observed, q)
		}
	}
	procs := []supervisor.Status{wsgiProc("io", 101, 1, 1, 1), asgiProc("chat", 102, 1)}
	io, chat := procs[0].Labels["socket"], procs[1].Labels["socket"]
	now := time.Unix(1000, 0)
	step := func() []scaleChange {
		now = now.Add(time.Second)
		return a.plan(procs, now)
	}
	inFlight[io], inFlight[chat] = 6, 6
	for i := range 3 {
		if c := step(); c != nil {
			t.Fatalf("sample %d planned %+v", i, c)
		}
	}
	c := step()
	if len(c) != 1 || c[0].key != (workerKey{"io", "wsgi"}) || c[0].workers != 2 || c[0].reason != "load" {
		t.Fatalf("after 3 samples of 6 in flight planned %+v, want io to 2 workers for load", c)
	}
	if !slices.Equal(observed, []float64{6, 6, 6}) {
		t.Errorf("observed in flight %v, want three samples of 6", observed)
	}

	// The switch is done: a new generation with 2 workers, on its socket.
	a.done(c[0].key)
	procs[0] = wsgiProc("io", 200, 2, 2, 1)
	procs[0].Labels["socket"] = "/run/io.v1.2.sock"
	delete(inFlight, io)
	io = procs[0].Labels["socket"]
	// A request in flight at every sample keeps it: on one worker it
	// would keep the only thread busy.
	inFlight[io] = 1
	for i := range 8 {
		if c := step(); len(c) != 0 {
			t.Fatalf("sample %d with one in flight planned %+v", i, c)
		}
	}
	inFlight[io] = 0
	var down []scaleChange
	for range 4 {
		down = append(down, step()...)
	}
	if len(down) != 1 || down[0].workers != 1 || down[0].reason != "idle" {
		t.Fatalf("over 4 quiet samples planned %+v, want io back to 1 worker once", down)
	}

	// Caddy is asked only while a wsgi entry can use the answer.
	asked = 0
	procs = []supervisor.Status{asgiProc("chat", 102, 1)}
	step()
	if asked != 0 {
		t.Errorf("asked caddy %d times with no wsgi entry", asked)
	}
}

// TestAutoscalerPlanQueueUnknown: with Caddy silent, or a wsgi entry it
// does not route to (a second wsgi entry), the CPU alone decides.
func TestAutoscalerPlanQueueUnknown(t *testing.T) {
	t.Parallel()
	usage := fakeUsage{101: 0}
	a := newAutoscaler(10, 2, usage.read)
	a.policy = scalePolicy{up: 0.75, down: 0.3, upAfter: 3, downAfter: 4}
	silent := true
	a.queue = func() map[string]int {
		if silent {
			return nil
		}
		return map[string]int{"/run/other.sock": 6}
	}
	procs := []supervisor.Status{wsgiProc("io", 101, 1, 1, 1)}
	now := time.Unix(1000, 0)
	for i := range 10 {
		silent = i%2 == 0
		now = now.Add(time.Second)
		if c := a.plan(procs, now); c != nil {
			t.Fatalf("sample %d planned %+v", i, c)
		}
	}
	s := a.series[workerKey{"io", "wsgi"}]
	if len(s.inFlight) != len(s.samples) || !allOf(s.inFlight, math.IsNaN) {
		t.Errorf("in flight %v beside %d samples, want all unknown", s.inFlight, len(s.samples))
	}
	// CPU load still scales it.
	for range 3 {
		usage[101]++
		now = now.Add(time.Second)
		if c := a.plan(procs, now); len(c) == 1 && c[0].workers == 2 {
			return
		}
	}
	t.Error("a busy CPU did not scale an entry whose requests in flight are unknown")
}

// TestBySocket: a route's stable socket counts for the generation's socket
// it links to, relative or absolute, and upstreams that are not unix
// sockets are left out.
func TestBySocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gen := filepath.Join(dir, "web.v3.1.sock")
	if err := os.Symlink("web.v3.1.sock", filepath.Join(dir, "web.sock")); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other.v1.1.sock")
	if err := os.Symlink(other, filepath.Join(dir, "other.sock")); err != nil {
		t.Fatal(err)
	}
	got := bySocket(map[string]int{
		"unix/" + filepath.Join(dir, "web.sock"):   3,
		"unix/" + filepath.Join(dir, "other.sock"): 1,
		"unix/" + filepath.Join(dir, "gone.sock"):  2,
		"127.0.0.1:5000": 4,
	})
	want := map[string]int{
		filepath.Join(dir, "web.sock"):   3,
		gen:                              3,
		filepath.Join(dir, "other.sock"): 1,
		other:                            1,
		filepath.Join(dir, "gone.sock"):  2,
	}
	if !maps.Equal(got, want) {
		t.Errorf("bySocket = %v, want %v", got, want)
	}
}

// inFlightRouter is a Router whose Caddy answers in-flight counts, or an
// error.
type inFlightRouter struct {
	fakeRouter
	ups map[string]int
	err error
}

func (r *inFlightRouter) InFlight(context.Context) (map[string]int, error) {
	return maps.Clone(r.ups), r.err
}

// TestQueueReader: Caddy not answering leaves the CPU alone to decide, is
// logged once at warn, and its return once; a router that cannot tell
// gives no reader.
func TestQueueReader(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	rt := &inFlightRouter{ups: map[string]int{"unix//run/a.sock": 2}}
	m := &Manager{cfg: Config{Router: rt}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	read := m.queueReader(context.Background())
	if read == nil {
		t.Fatal("no reader for a router that reads in-flight counts")
	}
	if got := read(); !maps.Equal(got, map[string]int{"/run/a.sock": 2}) {
		t.Errorf("read = %v", got)
	}
	rt.err = &router.Error{Method: "GET", Path: "/reverse_proxy/upstreams", Err: errors.New("connection refused")}
	for range 3 {
		if got := read(); got != nil {
			t.Errorf("read with caddy down = %v, want nil", got)
		}
	}
	rt.err = nil
	read()
	rt.err = errors.New("down again")
	read()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		"level=WARN msg=\"autoscale: requests in flight unknown, scaling on CPU alone until caddy answers\" err=\"caddy admin: GET /reverse_proxy/upstreams: connection refused\"",
		"level=INFO msg=\"autoscale: requests in flight known again\"",
		"level=WARN msg=\"autoscale: requests in flight unknown, scaling on CPU alone until caddy answers\" err=\"down again\"",
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, l := range lines {
		if _, rest, _ := strings.Cut(l, " "); rest != want[i] {
			t.Errorf("log line %d = %q, want %q", i, rest, want[i])
		}
	}

	m = &Manager{cfg: Config{Router: &fakeRouter{}}, log: slog.New(slog.DiscardHandler)}
	if m.queueReader(context.Background()) != nil {
		t.Error("a reader for a router that cannot read in-flight counts")
	}
}

// TestGranianThreadsLabel: a wsgi process carries the blocking threads it
// runs with, which the autoscaler takes as its capacity per worker; an asgi
// one carries none.
func TestGranianThreadsLabel(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	if err := os.MkdirAll(u.m.paths.Run("a"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		kind    procfile.Kind
		env     map[string]string
		label   string
		threads string
	}{
		{procfile.KindWSGI, map[string]string{}, "1", "1"},
		{procfile.KindWSGI, map[string]string{"GRANIAN_THREADS": "4"}, "4", "4"},
		{procfile.KindWSGI, map[string]string{"GRANIAN_THREADS": "none"}, "1", "1"},
		{procfile.KindASGI, map[string]string{"GRANIAN_THREADS": "4"}, "", ""},
	}
	for _, tt := range tests {
		r := release{app: "a", number: 1, gen: 1, dir: t.TempDir(), meta: releaseMeta{Venv: "/venv"}, env: tt.env}
		spec, err := u.m.granianSpec(r, procfile.Entry{Name: tt.kind.String(), Kind: tt.kind, Command: "app:app"}, 1)
		if err != nil {
			t.Fatal(err)
		}
		label, ok := spec.Labels[threadsLabel]
		if label != tt.label || ok != (tt.label != "") {
			t.Errorf("%s %v: threads label %q, want %q", tt.kind, tt.env, label, tt.label)
		}
		i := slices.Index(spec.Command, "--blocking-threads")
		got := ""
		if i >= 0 {
			got = spec.Command[i+1]
		}
		if got != tt.threads {
			t.Errorf("%s %v: --blocking-threads %q, want %q", tt.kind, tt.env, got, tt.threads)
		}
	}
}
