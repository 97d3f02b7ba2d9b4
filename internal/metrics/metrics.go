// Package metrics serves hop3's metrics in the Prometheus text format,
// written by hand: per app and process kind, the processes by state, their
// restarts, crashes, CPU time and resident memory; deploys by outcome and
// their duration; build cache hits; hop3's own health. It also passes
// Caddy's own metrics (request rates and latencies per host) through from
// Caddy's admin socket, so one local address serves both.
//
// Counters kept here (deploys, restarts, crashes, cache hits) start at zero
// with each start of hop3, as Prometheus counters may.
package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"hop3/internal/router"
	"hop3/runtime/supervisor"
)

// Supervisor is what the metrics read from the process manager;
// *supervisor.Supervisor satisfies it.
type Supervisor interface {
	List() []supervisor.Status
	Status(name string) (supervisor.Status, bool)
}

// Config configures a Metrics.
type Config struct {
	Supervisor Supervisor
	// Hosts, when set, lists each app's host names: exported as
	// hop3_app_host_info so Caddy's per-host metrics join to apps.
	Hosts func() map[string][]string
	// DiskUsage, when set, gives each app's disk use in bytes by part
	// (repo, releases, envs, data): exported as hop3_app_disk_bytes. It
	// must answer at once (hop3 measures in the background).
	DiskUsage func() map[string]map[string]int64
	// CaddyAdminSocket is the unix socket of Caddy's admin endpoint, whose
	// /metrics is served again at /caddy/metrics; empty disables that.
	CaddyAdminSocket string
	// CaddyRestarts, when set, counts how often hop3 restarted Caddy.
	CaddyRestarts func() int
	// Addons, when set, lists the add-ons with their state and size.
	Addons func() []AddonStat
	// ProcRoot is where process usage is read; default /proc.
	ProcRoot string
	Version  string
	Logger   *slog.Logger

	// Certificates, set when TLS is on, gives the certificate status of
	// each host hop3 routes: exported as hop3_cert_expiry_seconds and
	// hop3_cert_failing.
	Certificates func() []router.CertStatus
}

// DeployBuckets are the upper bounds, in seconds, of the deploy duration
// histogram: a static site deploys in a second, a first Python build with
// a large requirements.txt in minutes.
var DeployBuckets = []float64{1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800}

// Metrics collects and serves hop3's metrics. It is safe for concurrent use.
type Metrics struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	caddy *http.Client

	mu        sync.Mutex
	deploys   map[string]*series    // app, outcome
	durations map[string]*histogram // app
	builds    map[string]*series    // app
	cacheHits map[string]*series    // app, cache
	restarts  map[string]*series    // app, kind
	crashes   map[string]*series    // app, kind
}

type histogram struct {
	labels Labels
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// New returns a Metrics.
func New(cfg Config) (*Metrics, error) {
	if cfg.Supervisor == nil {
		return nil, errors.New("metrics: a supervisor is required")
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Metrics{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "metrics"),
		start:     time.Now(),
		deploys:   map[string]*series{},
		durations: map[string]*histogram{},
		builds:    map[string]*series{},
		cacheHits: map[string]*series{},
		restarts:  map[string]*series{},
		crashes:   map[string]*series{},
	}
	if sock := cfg.CaddyAdminSocket; sock != "" {
		m.caddy = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				DisableKeepAlives: true,
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", sock)
				},
			},
		}
	}
	return m, nil
}

func add(m map[string]*series, l Labels, v float64) {
	k := l.key()
	s, ok := m[k]
	if !ok {
		s = &series{labels: l}
		m[k] = s
	}
	s.value += v
}

// DeployFinished counts a deploy by outcome ("succeeded", "failed") and
// records its duration.
func (m *Metrics) DeployFinished(app string, ok bool, took time.Duration) {
	outcome := "failed"
	if ok {
		outcome = "succeeded"
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	add(m.deploys, L("app", app, "outcome", outcome), 1)
	h, found := m.durations[app]
	if !found {
		h = &histogram{labels: L("app", app), counts: make([]uint64, len(DeployBuckets))}
		m.durations[app] = h
	}
	sec := took.Seconds()
	for i, b := range DeployBuckets {
		if sec <= b {
			h.counts[i]++
			break
		}
	}
	h.sum += sec
	h.count++
}

// BuildFinished counts a successful build and each environment it reused.
func (m *Metrics) BuildFinished(app string, cacheHits []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	add(m.builds, L("app", app), 1)
	for _, c := range cacheHits {
		add(m.cacheHits, L("app", app, "cache", c), 1)
	}
}

// Watch counts restarts and crashes from the supervisor's events until the
// channel closes or ctx ends. Processes that belong to no app (one-off
// runs) are not counted.
func (m *Metrics) Watch(ctx context.Context, events <-chan supervisor.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			var target map[string]*series
			switch {
			case ev.From == supervisor.Backoff && ev.To == supervisor.Starting:
				target = m.restarts
			case ev.To == supervisor.Crashed:
				target = m.crashes
			default:
				continue
			}
			st, found := m.cfg.Supervisor.Status(ev.Name)
			if !found || st.Labels["app"] == "" || st.Labels["kind"] == "" {
				continue
			}
			m.mu.Lock()
			add(target, L("app", st.Labels["app"], "kind", st.Labels["kind"]), 1)
			m.mu.Unlock()
		}
	}
}

// states lists every state a process count is exported for, so that a
// series exists (at 0) before the first process reaches it.
var states = []supervisor.State{supervisor.Starting, supervisor.Running, supervisor.Backoff,
	supervisor.Stopping, supervisor.Exited, supervisor.Crashed, supervisor.Draining}

// WriteTo writes every metric of hop3 in the Prometheus text format.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	t := &textWriter{w: cw}
	m.writeProcesses(t)
	m.writeAddons(t)
	m.writeCounters(t)
	m.writeSelf(t)
	return cw.n, t.err
}

type group struct{ app, kind string }

func (m *Metrics) writeProcesses(t *textWriter) {
	list := m.cfg.Supervisor.List()
	byState := map[group]map[supervisor.State]int{}
	pgids := map[group][]int{}
	for _, st := range list {
		g := group{st.Labels["app"], st.Labels["kind"]}
		if g.app == "" || g.kind == "" {
			continue
		}
		if byState[g] == nil {
			byState[g] = map[supervisor.State]int{}
		}
		byState[g][st.State]++
		if st.PID > 0 {
			pgids[g] = append(pgids[g], st.PID)
		}
	}
	groups := make([]group, 0, len(byState))
	for g := range byState {
		groups = append(groups, g)
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].app != groups[j].app {
			return groups[i].app < groups[j].app
		}
		return groups[i].kind < groups[j].kind
	})
	var all []int
	for _, ids := range pgids {
		all = append(all, ids...)
	}
	usage := supervisor.GroupUsage(m.cfg.ProcRoot, all)

	t.family("hop3_processes", "gauge", "Supervised processes of each app and Procfile kind, by state.")
	for _, g := range groups {
		for _, s := range states {
			t.sample("hop3_processes", L("app", g.app, "kind", g.kind, "state", s.String()), float64(byState[g][s]))
		}
	}
	t.family("hop3_process_cpu_seconds_total", "counter", "User and system CPU time of the running processes (and their children) of each app and kind; it drops when processes are replaced.")
	for _, g := range groups {
		var cpu float64
		for _, id := range pgids[g] {
			cpu += usage[id].CPU
		}
		t.sample("hop3_process_cpu_seconds_total", L("app", g.app, "kind", g.kind), cpu)
	}
	t.family("hop3_process_resident_memory_bytes", "gauge", "Resident memory of the running processes (and their children) of each app and kind.")
	for _, g := range groups {
		var rss int64
		for _, id := range pgids[g] {
			rss += usage[id].RSS
		}
		t.sample("hop3_process_resident_memory_bytes", L("app", g.app, "kind", g.kind), float64(rss))
	}
}

func (m *Metrics) writeCounters(t *textWriter) {
	m.mu.Lock()
	deploys := values(m.deploys)
	builds := values(m.builds)
	hits := values(m.cacheHits)
	restarts := values(m.restarts)
	crashes := values(m.crashes)
	hists := make([]histogram, 0, len(m.durations))
	for _, h := range m.durations {
		c := *h
		c.counts = slices.Clone(h.counts)
		hists = append(hists, c)
	}
	m.mu.Unlock()
	sort.Slice(hists, func(i, j int) bool { return hists[i].labels.key() < hists[j].labels.key() })

	t.family("hop3_process_restarts_total", "counter", "Automatic restarts of processes that exited, by app and kind.")
	writeSeries(t, "hop3_process_restarts_total", restarts)
	t.family("hop3_process_crashes_total", "counter", "Processes given up after repeated quick failures (state crashed), by app and kind.")
	writeSeries(t, "hop3_process_crashes_total", crashes)
	t.family("hop3_deploys_total", "counter", "Deploys (pushes, deploy commands) by app and outcome.")
	writeSeries(t, "hop3_deploys_total", deploys)
	t.family("hop3_deploy_duration_seconds", "histogram", "How long deploys took, from the new release to its switch or failure.")
	for _, h := range hists {
		var cum uint64
		for i, b := range DeployBuckets {
			cum += h.counts[i]
			t.sample("hop3_deploy_duration_seconds_bucket", h.labels.with("le", formatValue(b)), float64(cum))
		}
		t.sample("hop3_deploy_duration_seconds_bucket", h.labels.with("le", "+Inf"), float64(h.count))
		t.sample("hop3_deploy_duration_seconds_sum", h.labels, h.sum)
		t.sample("hop3_deploy_duration_seconds_count", h.labels, float64(h.count))
	}
	t.family("hop3_builds_total", "counter", "Successful builds by app.")
	writeSeries(t, "hop3_builds_total", builds)
	t.family("hop3_build_cache_hits_total", "counter", "Dependency environments reused by a build instead of built again, by app and cache (python-venv, node-modules, build: a whole build).")
	writeSeries(t, "hop3_build_cache_hits_total", hits)
}

func (m *Metrics) writeSelf(t *textWriter) {
	t.family("hop3_up", "gauge", "1 while hop3 serves its metrics.")
	t.sample("hop3_up", nil, 1)
	t.family("hop3_build_info", "gauge", "hop3's version, as a label.")
	t.sample("hop3_build_info", L("version", m.cfg.Version), 1)
	t.family("hop3_start_time_seconds", "gauge", "When hop3 started, in seconds since the epoch.")
	t.sample("hop3_start_time_seconds", nil, float64(m.start.Unix()))
	t.family("hop3_goroutines", "gauge", "Goroutines of the hop3 daemon.")
	t.sample("hop3_goroutines", nil, float64(runtime.NumGoroutine()))
	t.family("hop3_resident_memory_bytes", "gauge", "Resident memory of the hop3 daemon itself.")
	t.sample("hop3_resident_memory_bytes", nil, float64(selfRSS(m.cfg.ProcRoot)))
	if m.cfg.CaddyRestarts != nil {
		t.family("hop3_caddy_restarts_total", "counter", "Times hop3 restarted Caddy after it died.")
		t.sample("hop3_caddy_restarts_total", nil, float64(m.cfg.CaddyRestarts()))
	}
	if m.cfg.DiskUsage != nil {
		t.family("hop3_app_disk_bytes", "gauge", "Disk each app takes, by part: its git repository, kept releases, dependency environments and DATA_DIR; measured in the background, after each deploy and every few minutes.")
		usage := m.cfg.DiskUsage()
		for _, a := range slices.Sorted(maps.Keys(usage)) {
			for _, part := range slices.Sorted(maps.Keys(usage[a])) {
				t.sample("hop3_app_disk_bytes", L("app", a, "part", part), float64(usage[a][part]))
			}
		}
	}
	if m.cfg.Hosts != nil {
		t.family("hop3_app_host_info", "gauge", "The host names each app answers to; join with Caddy's per-host metrics on host.")
		hosts := m.cfg.Hosts()
		apps := make([]string, 0, len(hosts))
		for a := range hosts {
			apps = append(apps, a)
		}
		sort.Strings(apps)
		for _, a := range apps {
			hs := slices.Clone(hosts[a])
			sort.Strings(hs)
			for _, h := range hs {
				t.sample("hop3_app_host_info", L("app", a, "host", h), 1)
			}
		}
	}
	if m.cfg.Certificates != nil {
		m.writeCerts(t, m.cfg.Certificates())
	}
}

// writeCerts exports each host's certificate expiry (hosts with a stored
// certificate only) and whether Caddy is failing to get one.
func (m *Metrics) writeCerts(t *textWriter, certs []router.CertStatus) {
	certs = slices.Clone(certs)
	slices.SortFunc(certs, func(a, b router.CertStatus) int { return strings.Compare(a.Host, b.Host) })
	t.family("hop3_cert_expiry_seconds", "gauge", "When each host's stored certificate expires, in seconds since the epoch.")
	for _, c := range certs {
		if !c.NotAfter.IsZero() {
			t.sample("hop3_cert_expiry_seconds", L("host", c.Host), float64(c.NotAfter.Unix()))
		}
	}
	t.family("hop3_cert_failing", "gauge", "1 when Caddy logged a failure to get the host's certificate since it last got one.")
	for _, c := range certs {
		v := 0.0
		if c.State == router.CertFailing {
			v = 1
		}
		t.sample("hop3_cert_failing", L("host", c.Host), v)
	}
}

func values(m map[string]*series) []series {
	out := make([]series, 0, len(m))
	for _, s := range m {
		out = append(out, *s)
	}
	sortSeries(out)
	return out
}

func writeSeries(t *textWriter, name string, ss []series) {
	for _, s := range ss {
		t.sample(name, s.labels, s.value)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ContentType is the media type of the text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves /metrics (hop3's) and /caddy/metrics (Caddy's, read from
// its admin socket at each scrape).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		if _, err := m.WriteTo(w); err != nil {
			m.log.Debug("write metrics", "err", err)
		}
	})
	mux.HandleFunc("GET /caddy/metrics", m.caddyMetrics)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "hop3 metrics: /metrics (hop3, per app), /caddy/metrics (Caddy, per host)\n")
	})
	return mux
}

func (m *Metrics) caddyMetrics(w http.ResponseWriter, r *http.Request) {
	if m.caddy == nil {
		http.Error(w, "Caddy's metrics are not available: no admin socket configured", http.StatusNotFound)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), "GET", "http://127.0.0.1/metrics", nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if v := r.Header.Get("Accept"); v != "" {
		req.Header.Set("Accept", v)
	}
	resp, err := m.caddy.Do(req)
	if err != nil {
		http.Error(w, "Caddy's admin endpoint does not answer: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		w.Header().Set("Content-Type", ct)
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" {
		w.Header().Set("Content-Encoding", ce)
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// Serve serves the handler on ln until ctx ends.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// selfRSS is hop3's own resident memory, from procRoot/self/statm.
func selfRSS(procRoot string) int64 {
	b, err := os.ReadFile(procRoot + "/self/statm")
	if err != nil {
		return 0
	}
	return supervisor.StatmRSS(b)
}
