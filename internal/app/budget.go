package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// The worker budget: how many Granian workers the machine runs, shared by
// every app, and how apps without a pinned count gain and give back
// workers within it.
//
// An app's wsgi/asgi entry is pinned when ps:scale set a count for it or
// its config sets GRANIAN_WORKERS or WEB_CONCURRENCY; hop3 never changes a
// pinned count. Every other entry is "auto": it starts with one worker, and
// the autoscaler adds one while the app is busy and takes it back once idle.
// ps:scale KIND=auto removes a ps:scale pin (unpinnedWorkers).
//
// Auto entries start with one worker, whatever the number of apps. Each
// worker more costs memory while idle (measured: a minimal WSGI app's
// Granian holds 53 MiB with one worker, 78 MiB with two; a Flask worker
// more), ten apps at two workers each put twenty workers on two cores
// (their queues grew without bound in the 10-app benchmark), and a second
// worker of an app that is not busy only holds memory.
// Starting at two when the apps fit the cores would only defer the same
// decision: an idle app gives its second worker back anyway. The
// autoscaler gives a busy app its second worker within seconds
// (AutoscaleUpAfter samples).

// Scaling labels of a Granian process, shown by ps.
const (
	ScalingAuto   = "auto"
	ScalingPinned = "pinned"
)

// Labels the Granian processes carry for ps and the autoscaler.
const (
	workersLabel = "workers"
	scalingLabel = "scaling"
)

// perWorkerMemory is the memory the auto budget sets aside for one Granian
// worker: a minimal app's worker holds 25 MiB resident, a Flask one about
// 40, rounded up for the app's own data.
const perWorkerMemory = 64 << 20

// maxWorkerBudget bounds a budget given as a number: a typo, not a plan,
// beyond it.
const maxWorkerBudget = 1024

// WorkerBudget is the auto budget of a machine with cores CPUs and
// available bytes of memory (MemAvailable when hop3 starts, before it
// starts its apps): two workers per core, fewer when memory holds fewer at
// perWorkerMemory each, and at least one. available 0 means unknown.
func WorkerBudget(cores int, available int64) int {
	n := 2 * max(cores, 1)
	if available > 0 {
		n = min(n, int(available/perWorkerMemory))
	}
	return max(n, 1)
}

// ParseWorkerBudget reads --worker-budget: "auto" (0, derive it with
// WorkerBudget) or a number of workers.
func ParseWorkerBudget(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxWorkerBudget {
		return 0, fmt.Errorf("worker budget %q: use auto or a number of workers from 1 to %d", s, maxWorkerBudget)
	}
	return n, nil
}

// MemAvailable reads MemAvailable from a /proc/meminfo, in bytes; 0 when
// it is not there.
func MemAvailable(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "MemAvailable:" {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || kb < 0 {
			return 0
		}
		return kb << 10
	}
	return 0
}

// envWorkers is the worker count an app's config pins, if any, and the
// variable that pins it.
func envWorkers(env map[string]string) (n int, key string, ok bool) {
	for _, k := range []string{"GRANIAN_WORKERS", "WEB_CONCURRENCY"} {
		if n, err := strconv.Atoi(env[k]); err == nil && n > 0 {
			return n, k, true
		}
	}
	return 0, "", false
}

// granianWorkers is the worker count of a release's wsgi/asgi entry kind,
// and whether it is pinned.
func (m *Manager) granianWorkers(r release, kind string) (int, bool) {
	if n, ok := r.scale[kind]; ok {
		return n, true
	}
	if n, _, ok := envWorkers(r.env); ok {
		return n, true
	}
	return m.workers.count(workerKey{r.app, kind}), false
}

// maxAppWorkers is the most workers the autoscaler gives one entry: one
// per core.
func maxAppWorkers() int {
	return min(max(runtime.NumCPU(), 1), MaxScale)
}

// unpinnedWorkers is the count an entry pinned at pinned workers starts
// from when ps:scale hands it back to the autoscaler: the count it runs
// now, within what the autoscaler itself would give it. Starting from one
// would take workers from an app that may be busy at that moment, and only
// load gives them back, seconds later; an idle app gives the extra workers
// back one at a time (AutoscaleDownAfter samples each), as it does those
// the autoscaler gave it.
func unpinnedWorkers(pinned int) int {
	return min(max(pinned, 1), maxAppWorkers())
}

// autoScaleRefusal says why ps:scale KIND=auto can not hand entry e of
// release r back to the autoscaler (config holds the app's config vars),
// or "" when it can.
func autoScaleRefusal(r release, e procfile.Entry, config map[string]string) string {
	if e.Kind != procfile.KindWSGI && e.Kind != procfile.KindASGI {
		return fmt.Sprintf("scale %s=auto: only wsgi/asgi entries are scaled automatically; %s is a %s process, give it a count (%s=N)", e.Name, e.Name, e.Kind, e.Name)
	}
	n, key, ok := envWorkers(r.env)
	if !ok {
		return ""
	}
	if _, set := config[key]; set {
		return fmt.Sprintf("scale %s=auto: %s=%d in %s's config pins its workers; `config:unset %s %s` hands them to the autoscaler", e.Name, key, n, r.app, r.app, key)
	}
	return fmt.Sprintf("scale %s=auto: %s=%d in %s's ENV or .env pins its workers; remove it there and push to hand them to the autoscaler", e.Name, key, n, r.app)
}

// workerKey names one wsgi/asgi entry of one app.
type workerKey struct{ app, kind string }

// workerCounts holds the worker counts the autoscaler gave auto entries;
// an entry not in it has one worker. Counts last while the entry runs:
// a deploy or restart keeps it, a stop or a restart of hop3 forgets it.
type workerCounts struct {
	mu     sync.Mutex
	counts map[workerKey]int
}

func newWorkerCounts() *workerCounts {
	return &workerCounts{counts: map[workerKey]int{}}
}

func (w *workerCounts) count(k workerKey) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.counts[k]; ok {
		return n
	}
	return 1
}

func (w *workerCounts) set(k workerKey, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n <= 1 {
		delete(w.counts, k)
		return
	}
	w.counts[k] = n
}

// keep forgets the counts of entries not in live.
func (w *workerCounts) keep(live func(workerKey) bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k := range w.counts {
		if !live(k) {
			delete(w.counts, k)
		}
	}
}

// Defaults of the autoscaler.
const (
	// DefaultAutoscaleInterval is the time between two samples of the
	// apps' CPU use.
	DefaultAutoscaleInterval = 2 * time.Second
	// AutoscaleUpAfter is how many samples an entry's load must average
	// busy over before it gets one more worker: 10 s at the default
	// interval.
	AutoscaleUpAfter = 5
	// AutoscaleDownAfter is how many samples in a row must each show it
	// idle before it gives one back: 60 s at the default interval.
	AutoscaleDownAfter = 30
)

// scalePolicy decides from an entry's recent load whether it gains or
// gives back a worker.
//
// The load is the CPU time of the entry's Granian process group (its
// workers and their threads) per second per worker, read from /proc by
// hop3 each interval: it costs requests nothing. Measured with six clients
// through Caddy on one worker, each second: a CPU-bound view (20 ms of
// CPU) read 1.00 with one blocking thread, and 0.74 to 1.00 in 11 of 12
// seconds (0.47 in one) with four on a busy machine, its GIL holding it to
// one core, so a second worker doubles what it can serve. A view that
// waits 20 ms on I/O read 0.00 to 0.02 while serving 50 requests/s, all
// its one blocking thread allows (188 of 200 with four threads, 0.00 to
// 0.04): it gains no worker, and GRANIAN_THREADS, not another process, is
// what serves it more. Connections queued at the app's socket would see
// that case, but Linux does not show a unix socket's accept queue in /proc
// and Granian's workers accept at once into their own queues.
type scalePolicy struct {
	up, down           float64 // load per worker that counts as busy; as idle
	upAfter, downAfter int     // samples looked at
}

var defaultPolicy = scalePolicy{up: 0.75, down: 0.3, upAfter: AutoscaleUpAfter, downAfter: AutoscaleDownAfter}

// scaleView is what the policy knows of one entry.
type scaleView struct {
	pinned  bool
	workers int       // running now
	max     int       // the most this entry may have
	room    int       // workers the machine's budget has left
	samples []float64 // load per worker, oldest first, since the entry's last start
}

// decide returns +1 (one more worker), -1 (one fewer) or 0. Hysteresis:
// a worker is added when the load per worker averaged up or more over the
// last upAfter samples (the mean, because on a machine busy with other
// work a busy worker gets less than a core now and then), and taken back only when every one of the last downAfter samples,
// spread over one worker fewer, stays below down, so the change it makes
// does not undo itself. Samples start again after each change, which
// spaces changes by upAfter samples at least.
func (p scalePolicy) decide(v scaleView) int {
	if v.pinned {
		return 0
	}
	n := len(v.samples)
	if n >= p.upAfter && mean(v.samples[n-p.upAfter:]) >= p.up {
		if v.workers < v.max && v.room > 0 {
			return 1
		}
		return 0
	}
	if v.workers > 1 && n >= p.downAfter {
		spread := float64(v.workers) / float64(v.workers-1)
		if allOf(v.samples[n-p.downAfter:], func(u float64) bool { return u*spread < p.down }) {
			return -1
		}
	}
	return 0
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

func allOf(xs []float64, f func(float64) bool) bool {
	for _, x := range xs {
		if !f(x) {
			return false
		}
	}
	return true
}

// AutoscaleOptions configure Manager.Autoscale.
type AutoscaleOptions struct {
	Budget   int           // workers the machine may run; 0: WorkerBudget of this machine
	Interval time.Duration // between samples; 0: DefaultAutoscaleInterval
}

// usageReader reads the CPU use of process groups (supervisor.GroupUsage
// on /proc; a fake in tests).
type usageReader func(pgids []int) map[int]supervisor.Usage

// series is what the autoscaler remembers of one entry's running
// generation.
type series struct {
	pid     int
	cpu     float64 // CPU seconds at the last sample
	at      time.Time
	samples []float64
}

// scaleChange is one decision to carry out.
type scaleChange struct {
	key     workerKey
	from    int
	workers int
	reason  string // "load" or "idle"
}

// autoscaler samples auto entries and decides their worker counts. Its
// state is the loop's own; only the set of switches in flight is shared
// with the goroutines that carry them out.
type autoscaler struct {
	budget  int
	maxApp  int
	policy  scalePolicy
	usage   usageReader
	observe func(k workerKey, workers int, load float64) // each sample, for debug logs
	series  map[workerKey]*series
	mu      sync.Mutex
	pending map[workerKey]int // switches in flight: the count they go to
}

func newAutoscaler(budget, maxApp int, usage usageReader) *autoscaler {
	return &autoscaler{budget: budget, maxApp: maxApp, policy: defaultPolicy, usage: usage,
		series: map[workerKey]*series{}, pending: map[workerKey]int{}}
}

// granianEntry is the newest generation of one wsgi/asgi entry among the
// supervisor's processes.
type granianEntry struct {
	st      supervisor.Status
	gen     int
	workers int
}

// entries picks, per app and entry, the newest generation that is not
// draining.
func entries(procs []supervisor.Status) map[workerKey]granianEntry {
	out := map[workerKey]granianEntry{}
	for _, st := range procs {
		if st.Labels["iface"] == "" || st.Labels[workersLabel] == "" || st.State == supervisor.Draining {
			continue
		}
		k := workerKey{st.Labels["app"], st.Labels["kind"]}
		gen, _ := strconv.Atoi(st.Labels["gen"])
		workers, _ := strconv.Atoi(st.Labels[workersLabel])
		if cur, ok := out[k]; ok && cur.gen > gen {
			continue
		}
		out[k] = granianEntry{st: st, gen: gen, workers: workers}
	}
	return out
}

// plan takes one sample of every auto entry at now and returns the changes
// to make, which it counts as in flight until done is called for each.
func (a *autoscaler) plan(procs []supervisor.Status, now time.Time) []scaleChange {
	live := entries(procs)
	a.mu.Lock()
	defer a.mu.Unlock()
	used := 0
	var pgids []int
	for k, e := range live {
		n := e.workers
		if p, ok := a.pending[k]; ok {
			n = max(n, p)
		}
		used += n
		if e.st.Labels[scalingLabel] == ScalingAuto && e.st.State == supervisor.Running && e.st.PID > 0 {
			pgids = append(pgids, e.st.PID)
		}
	}
	for k := range a.series {
		if e, ok := live[k]; !ok || e.st.Labels[scalingLabel] != ScalingAuto {
			delete(a.series, k)
		}
	}
	if len(pgids) == 0 {
		return nil
	}
	usage := a.usage(pgids)
	var changes []scaleChange
	for k, e := range live {
		if e.st.Labels[scalingLabel] != ScalingAuto || e.st.State != supervisor.Running || e.st.PID <= 0 {
			continue
		}
		u, ok := usage[e.st.PID]
		if !ok {
			continue
		}
		s := a.series[k]
		if s == nil || s.pid != e.st.PID {
			// A new generation: its start-up is not load.
			a.series[k] = &series{pid: e.st.PID, cpu: u.CPU, at: now}
			continue
		}
		if dt := now.Sub(s.at).Seconds(); dt > 0 && e.workers > 0 {
			load := max(u.CPU-s.cpu, 0) / dt / float64(e.workers)
			s.samples = append(s.samples, load)
			if a.observe != nil {
				a.observe(k, e.workers, load)
			}
			if keep := max(a.policy.upAfter, a.policy.downAfter); len(s.samples) > keep {
				s.samples = s.samples[len(s.samples)-keep:]
			}
		}
		s.cpu, s.at = u.CPU, now
		if _, busy := a.pending[k]; busy {
			continue // one switch at a time per entry
		}
		d := a.policy.decide(scaleView{workers: e.workers, max: a.maxApp, room: a.budget - used, samples: s.samples})
		if d == 0 {
			continue
		}
		c := scaleChange{key: k, from: e.workers, workers: e.workers + d, reason: "load"}
		if d < 0 {
			c.reason = "idle"
		}
		a.pending[k] = c.workers
		used += max(d, 0)
		changes = append(changes, c)
	}
	return changes
}

// done ends a change's time in flight.
func (a *autoscaler) done(k workerKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.pending, k)
	delete(a.series, k)
}

// inFlight reports whether a change to k is under way.
func (a *autoscaler) inFlight(k workerKey) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.pending[k]
	return ok
}

// Autoscale gives auto wsgi/asgi entries workers under sustained load and
// takes them back when idle, within the machine's worker budget, until ctx
// ends. Each change is a zero-downtime switch to a new generation, as
// ps:scale makes, recorded as an "autoscale" event.
func (m *Manager) Autoscale(ctx context.Context, opts AutoscaleOptions) {
	budget := opts.Budget
	if budget <= 0 {
		var avail int64
		if f, err := os.Open("/proc/meminfo"); err == nil {
			avail = MemAvailable(f)
			f.Close()
		}
		budget = WorkerBudget(runtime.NumCPU(), avail)
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultAutoscaleInterval
	}
	maxApp := maxAppWorkers()
	m.log.Info("worker budget", "workers", budget, "per_app", maxApp, "interval", interval)
	a := newAutoscaler(budget, maxApp, func(pgids []int) map[int]supervisor.Usage {
		return supervisor.GroupUsage("/proc", pgids)
	})
	a.observe = func(k workerKey, workers int, load float64) {
		m.log.Debug("worker load", "app", k.app, "kind", k.kind, "workers", workers, "load", strconv.FormatFloat(load, 'f', 2, 64))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		procs := m.cfg.Supervisor.List()
		live := entries(procs)
		m.workers.keep(func(k workerKey) bool {
			_, ok := live[k]
			return ok || a.inFlight(k)
		})
		for _, c := range a.plan(procs, time.Now()) {
			wg.Go(func() {
				defer a.done(c.key)
				if err := m.autoscaleTo(ctx, c); err != nil && ctx.Err() == nil {
					m.log.Warn("autoscale", "app", c.key.app, "kind", c.key.kind, "workers", c.workers, "err", err)
				}
			})
		}
	}
}

// autoscaleTo switches an auto entry to c.workers workers, unless it was
// pinned, stopped or changed meanwhile.
func (m *Manager) autoscaleTo(ctx context.Context, c scaleChange) error {
	unlock, err := m.lock(ctx, c.key.app, nil)
	if err != nil {
		return err
	}
	defer unlock()
	a, err := m.cfg.Store.App(ctx, c.key.app)
	if err != nil || a.Release == 0 || a.State == store.AppStopped {
		return err
	}
	if m.sleeping(a.Name) {
		return nil // it fell asleep since the sample: nothing runs to scale
	}
	r, err := m.loadRelease(ctx, a.Name, a.Release)
	if err != nil {
		return err
	}
	e, ok := r.procfile.Get(c.key.kind)
	if !ok || (e.Kind != procfile.KindWSGI && e.Kind != procfile.KindASGI) {
		return nil
	}
	if n, pinned := m.granianWorkers(r, c.key.kind); pinned || n != c.from {
		return nil
	}
	m.workers.set(c.key, c.workers)
	if err := m.activate(ctx, r, map[string]bool{c.key.kind: true}, ui.New(io.Discard, false)); err != nil {
		m.workers.set(c.key, c.from)
		return err
	}
	unit := "workers"
	if c.workers == 1 {
		unit = "worker"
	}
	msg := fmt.Sprintf("scaled %s to %d %s (%s)", c.key.kind, c.workers, unit, c.reason)
	m.log.Info(msg, "app", a.Name)
	m.event(ctx, a.Name, "autoscale", "", msg)
	return nil
}
