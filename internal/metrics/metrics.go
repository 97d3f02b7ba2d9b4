// Package metrics serves hop3's metrics in the Prometheus exposition
// format, through client_golang: per app and process kind, the processes by
// state, their restarts, crashes, CPU time and resident memory; deploys by
// outcome and their duration; build cache hits; hop3's own health. It also passes
// Caddy's own metrics (request rates and latencies per host) through from
// Caddy's admin socket, so one local address serves both.
//
// Counters kept here (deploys, restarts, crashes, cache hits) start at zero
// with each start of hop3, as Prometheus counters may.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"

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
	reg   *prometheus.Registry

	deploys   *prometheus.CounterVec   // app, outcome
	durations *prometheus.HistogramVec // app
	builds    *prometheus.CounterVec   // app
	cacheHits *prometheus.CounterVec   // app, cache
	restarts  *prometheus.CounterVec   // app, kind
	crashes   *prometheus.CounterVec   // app, kind
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
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "metrics"),
		start:    time.Now(),
		reg:      prometheus.NewRegistry(),
		restarts: counter("hop3_process_restarts_total", "Automatic restarts of processes that exited, by app and kind.", "app", "kind"),
		crashes:  counter("hop3_process_crashes_total", "Processes given up after repeated quick failures (state crashed), by app and kind.", "app", "kind"),
		deploys:  counter("hop3_deploys_total", "Deploys (pushes, deploy commands) by app and outcome.", "app", "outcome"),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "hop3_deploy_duration_seconds",
			Help:    "How long deploys took, from the new release to its switch or failure.",
			Buckets: DeployBuckets,
		}, []string{"app"}),
		builds:    counter("hop3_builds_total", "Successful builds by app.", "app"),
		cacheHits: counter("hop3_build_cache_hits_total", "Dependency environments reused by a build instead of built again, by app and cache (python-venv, node-modules, build: a whole build).", "app", "cache"),
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
	// The process collector adds hop3's own process_* metrics (open file
	// descriptors, virtual memory...) beside the hop3_* ones, which keep
	// their names for the dashboards that read them.
	for _, c := range []prometheus.Collector{m.restarts, m.crashes, m.deploys, m.durations, m.builds, m.cacheHits,
		newCollector(m), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: register: %w", err)
		}
	}
	return m, nil
}

// DeployFinished counts a deploy by outcome ("succeeded", "failed") and
// records its duration.
func (m *Metrics) DeployFinished(app string, ok bool, took time.Duration) {
	outcome := "failed"
	if ok {
		outcome = "succeeded"
	}
	m.deploys.WithLabelValues(app, outcome).Inc()
	m.durations.WithLabelValues(app).Observe(took.Seconds())
}

// BuildFinished counts a successful build and each environment it reused.
func (m *Metrics) BuildFinished(app string, cacheHits []string) {
	m.builds.WithLabelValues(app).Inc()
	for _, c := range cacheHits {
		m.cacheHits.WithLabelValues(app, c).Inc()
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
			var target *prometheus.CounterVec
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
			target.WithLabelValues(st.Labels["app"], st.Labels["kind"]).Inc()
		}
	}
}

// WriteTo writes every metric of hop3 in the Prometheus text format. A
// metric that could not be collected is left out and named in the error.
func (m *Metrics) WriteTo(w io.Writer) (int64, error) {
	families, gatherErr := m.reg.Gather()
	var n int64
	for _, f := range families {
		k, err := expfmt.MetricFamilyToText(w, f)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, gatherErr
}

// errorLog passes the errors of a scrape to the operator's log.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) { e.log.Warn("collect metrics", "err", fmt.Sprint(v...)) }

// Handler serves /metrics (hop3's) and /caddy/metrics (Caddy's, read from
// its admin socket at each scrape).
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	// A metric that fails to collect is logged and left out; the others
	// are still served.
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      errorLog{m.log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
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
