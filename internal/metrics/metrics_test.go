package metrics

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"hop3/internal/router"
	"hop3/runtime/supervisor"
)

// fakeSupervisor serves a fixed list of statuses.
type fakeSupervisor struct {
	mu   sync.Mutex
	list []supervisor.Status
}

func (f *fakeSupervisor) List() []supervisor.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]supervisor.Status(nil), f.list...)
}

func (f *fakeSupervisor) Status(name string) (supervisor.Status, bool) {
	for _, s := range f.List() {
		if s.Name == name {
			return s, true
		}
	}
	return supervisor.Status{}, false
}

func proc(name, app, kind string, state supervisor.State, pid int) supervisor.Status {
	return supervisor.Status{Name: name, Labels: map[string]string{"app": app, "kind": kind}, State: state, PID: pid}
}

// scrape parses the text format into "name{labels}" -> value, failing on
// any line that is not a comment or a well-formed sample.
func scrape(t *testing.T, m *Metrics) map[string]float64 {
	t.Helper()
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return parseText(t, b.String())
}

func parseText(t *testing.T, text string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	typed := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "# TYPE ") {
			f := strings.Fields(line)
			if len(f) != 4 {
				t.Fatalf("bad TYPE line %q", line)
			}
			if typed[f[2]] {
				t.Fatalf("family %s declared twice", f[2])
			}
			typed[f[2]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad value in %q: %v", line, err)
		}
		if _, dup := out[line[:i]]; dup {
			t.Fatalf("sample %s written twice", line[:i])
		}
		out[line[:i]] = v
	}
	return out
}

func want(t *testing.T, got map[string]float64, key string, v float64) {
	t.Helper()
	g, ok := got[key]
	if !ok {
		t.Errorf("no sample %s", key)
		return
	}
	if g != v {
		t.Errorf("%s = %v, want %v", key, g, v)
	}
}

func TestProcessesByState(t *testing.T) {
	sup := &fakeSupervisor{list: []supervisor.Status{
		proc("a/web.1@v1.1", "a", "web", supervisor.Running, 0),
		proc("a/web.2@v1.1", "a", "web", supervisor.Running, 0),
		proc("a/worker.1@v1.1", "a", "worker", supervisor.Crashed, 0),
		{Name: "a/run@v1.9", State: supervisor.Running}, // a one-off run: no labels
	}}
	m, err := New(Config{Supervisor: sup})
	if err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	want(t, got, `hop3_processes{app="a",kind="web",state="running"}`, 2)
	want(t, got, `hop3_processes{app="a",kind="web",state="crashed"}`, 0)
	want(t, got, `hop3_processes{app="a",kind="worker",state="crashed"}`, 1)
	want(t, got, `hop3_processes{app="a",kind="worker",state="running"}`, 0)
	want(t, got, `hop3_up`, 1)
	for k := range got {
		if strings.Contains(k, `kind=""`) {
			t.Errorf("a process without labels is exported: %s", k)
		}
	}
}

func TestDeploysAndBuilds(t *testing.T) {
	m, err := New(Config{Supervisor: &fakeSupervisor{}, Version: "v9"})
	if err != nil {
		t.Fatal(err)
	}
	m.DeployFinished("a", true, 1500*time.Millisecond)
	m.DeployFinished("a", true, 45*time.Second)
	m.DeployFinished("a", false, 3*time.Second)
	m.DeployFinished("b", true, time.Hour)
	m.BuildFinished("a", nil)
	m.BuildFinished("a", []string{"python-venv"})
	m.BuildFinished("a", []string{"python-venv", "node-modules"})
	got := scrape(t, m)
	want(t, got, `hop3_deploys_total{app="a",outcome="succeeded"}`, 2)
	want(t, got, `hop3_deploys_total{app="a",outcome="failed"}`, 1)
	want(t, got, `hop3_deploys_total{app="b",outcome="succeeded"}`, 1)
	// Buckets are cumulative: 1.5s <= 2, 3s <= 5, 45s <= 60.
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="1"}`, 0)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="2"}`, 1)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="5"}`, 2)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="30"}`, 2)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="60"}`, 3)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="a",le="+Inf"}`, 3)
	want(t, got, `hop3_deploy_duration_seconds_count{app="a"}`, 3)
	want(t, got, `hop3_deploy_duration_seconds_sum{app="a"}`, 49.5)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="b",le="1800"}`, 0)
	want(t, got, `hop3_deploy_duration_seconds_bucket{app="b",le="+Inf"}`, 1)
	want(t, got, `hop3_builds_total{app="a"}`, 3)
	want(t, got, `hop3_build_cache_hits_total{app="a",cache="python-venv"}`, 2)
	want(t, got, `hop3_build_cache_hits_total{app="a",cache="node-modules"}`, 1)
	want(t, got, `hop3_build_info{version="v9"}`, 1)
}

func TestWatchCountsRestartsAndCrashes(t *testing.T) {
	sup := &fakeSupervisor{list: []supervisor.Status{
		proc("a/worker.1@v1.1", "a", "worker", supervisor.Crashed, 0),
		{Name: "a/run@v1.2"},
	}}
	m, err := New(Config{Supervisor: sup})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan supervisor.Event, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { m.Watch(ctx, events); close(done) }()
	w := "a/worker.1@v1.1"
	for _, e := range []supervisor.Event{
		{Name: w, From: supervisor.Exited, To: supervisor.Starting},
		{Name: w, From: supervisor.Starting, To: supervisor.Running},
		{Name: w, From: supervisor.Running, To: supervisor.Backoff},
		{Name: w, From: supervisor.Backoff, To: supervisor.Starting},
		{Name: w, From: supervisor.Starting, To: supervisor.Backoff},
		{Name: w, From: supervisor.Backoff, To: supervisor.Starting},
		{Name: w, From: supervisor.Running, To: supervisor.Crashed},
		{Name: "a/run@v1.2", From: supervisor.Running, To: supervisor.Crashed},
		{Name: "gone/web.1@v1.1", From: supervisor.Backoff, To: supervisor.Starting},
	} {
		events <- e
	}
	close(events)
	<-done
	got := scrape(t, m)
	want(t, got, `hop3_process_restarts_total{app="a",kind="worker"}`, 2)
	want(t, got, `hop3_process_crashes_total{app="a",kind="worker"}`, 1)
	if len(got) == 0 {
		t.Fatal("no samples")
	}
}

// TestFamilies pins the name, type and label names of every family hop3
// exports, on a Metrics with every source set: dashboards and alerts read
// them. hop3's process_* metrics (client_golang's process collector) may
// come beside them.
func TestFamilies(t *testing.T) {
	m := fullMetrics(t)
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	// Legacy names: what every Prometheus reads.
	p := expfmt.NewTextParser(model.LegacyValidation)
	families, err := p.TextToMetricFamilies(strings.NewReader(b.String()))
	if err != nil {
		t.Fatalf("parse the text format: %v\n%s", err, b.String())
	}
	wantFamilies := map[string]string{
		"hop3_processes":                     "GAUGE app,kind,state",
		"hop3_process_cpu_seconds_total":     "COUNTER app,kind",
		"hop3_process_resident_memory_bytes": "GAUGE app,kind",
		"hop3_process_restarts_total":        "COUNTER app,kind",
		"hop3_process_crashes_total":         "COUNTER app,kind",
		"hop3_addon_up":                      "GAUGE addon,app,kind",
		"hop3_addon_size_bytes":              "GAUGE addon,app,kind",
		"hop3_deploys_total":                 "COUNTER app,outcome",
		"hop3_deploy_duration_seconds":       "HISTOGRAM app",
		"hop3_builds_total":                  "COUNTER app",
		"hop3_build_cache_hits_total":        "COUNTER app,cache",
		"hop3_up":                            "GAUGE ",
		"hop3_build_info":                    "GAUGE version",
		"hop3_start_time_seconds":            "GAUGE ",
		"hop3_goroutines":                    "GAUGE ",
		"hop3_resident_memory_bytes":         "GAUGE ",
		"hop3_caddy_restarts_total":          "COUNTER ",
		"hop3_app_disk_bytes":                "GAUGE app,part",
		"hop3_app_host_info":                 "GAUGE app,host",
		"hop3_cert_expiry_seconds":           "GAUGE host",
		"hop3_cert_failing":                  "GAUGE host",
	}
	for name, f := range families {
		if strings.HasPrefix(name, "process_") {
			continue
		}
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			if l.GetName() != "le" {
				labels = append(labels, l.GetName())
			}
		}
		got := f.GetType().String() + " " + strings.Join(labels, ",")
		w, ok := wantFamilies[name]
		switch {
		case !ok:
			t.Errorf("unexpected family %s (%s)", name, got)
		case got != w:
			t.Errorf("%s: %s, want %s", name, got, w)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
	}
	for name := range wantFamilies {
		if families[name] == nil {
			t.Errorf("no family %s", name)
		}
	}
	if families["process_open_fds"] == nil {
		t.Error("no process metrics of hop3 itself")
	}
}

// fullMetrics is a Metrics with every source set and every counter moved.
func fullMetrics(t *testing.T) *Metrics {
	t.Helper()
	sup := &fakeSupervisor{list: []supervisor.Status{
		proc("a/web.1@v1.1", "a", "web", supervisor.Running, 0),
		proc("a/worker.1@v1.1", "a", "worker", supervisor.Crashed, 0),
	}}
	m, err := New(Config{
		Supervisor:    sup,
		Version:       "v9",
		CaddyRestarts: func() int { return 2 },
		Hosts:         func() map[string][]string { return map[string][]string{"a": {"a.example.com", "a.example.com"}} },
		DiskUsage:     func() map[string]map[string]int64 { return map[string]map[string]int64{"a": {"repo": 1}} },
		Addons:        func() []AddonStat { return []AddonStat{{App: "a", Name: "a-db", Kind: "postgres"}} },
		Certificates: func() []router.CertStatus {
			return []router.CertStatus{{Host: "a.example.com", State: router.CertValid, NotAfter: time.Now()}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.DeployFinished("a", true, time.Second)
	m.BuildFinished("a", []string{"python-venv"})
	events := make(chan supervisor.Event, 2)
	events <- supervisor.Event{Name: "a/worker.1@v1.1", From: supervisor.Backoff, To: supervisor.Starting}
	events <- supervisor.Event{Name: "a/worker.1@v1.1", From: supervisor.Running, To: supervisor.Crashed}
	close(events)
	m.Watch(context.Background(), events)
	return m
}

// TestUsageOfARealProcessGroup starts a shell that burns CPU in a child of
// its own process group, as a supervised process would, and reads it back.
func TestUsageOfARealProcessGroup(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	sup := &fakeSupervisor{list: []supervisor.Status{proc("a/worker.1@v1.1", "a", "worker", supervisor.Running, cmd.Process.Pid)}}
	m, err := New(Config{Supervisor: sup})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := scrape(t, m)
		cpu := got[`hop3_process_cpu_seconds_total{app="a",kind="worker"}`]
		rss := got[`hop3_process_resident_memory_bytes{app="a",kind="worker"}`]
		if cpu > 0 && rss > 0 {
			if self := got["hop3_resident_memory_bytes"]; self <= 0 {
				t.Errorf("hop3_resident_memory_bytes = %v", self)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cpu = %v, rss = %v after 20s", cpu, rss)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestHostsAndCaddyProxy(t *testing.T) {
	dir, err := os.MkdirTemp("", "h3m")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	caddy := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		io.WriteString(w, "caddy_http_requests_total{host=\"a.example.com\"} 7\n")
	}))
	caddy.Listener = ln
	caddy.Start()
	defer caddy.Close()

	m, err := New(Config{
		Supervisor:       &fakeSupervisor{},
		CaddyAdminSocket: sock,
		CaddyRestarts:    func() int { return 2 },
		Hosts:            func() map[string][]string { return map[string][]string{"a": {"www.a.io", "a.example.com"}} },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type = %q", ct)
	}
	got := parseText(t, string(body))
	want(t, got, `hop3_app_host_info{app="a",host="a.example.com"}`, 1)
	want(t, got, `hop3_app_host_info{app="a",host="www.a.io"}`, 1)
	want(t, got, `hop3_caddy_restarts_total`, 2)

	resp, err = http.Get(srv.URL + "/caddy/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `caddy_http_requests_total{host="a.example.com"} 7`) {
		t.Errorf("/caddy/metrics = %d %q", resp.StatusCode, body)
	}

	// Caddy down: a clear 502, not a hang or an empty 200.
	caddy.Close()
	os.Remove(sock)
	resp, err = http.Get(srv.URL + "/caddy/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("/caddy/metrics with Caddy down = %d, want 502", resp.StatusCode)
	}
}

func TestDiskUsage(t *testing.T) {
	t.Parallel()
	m, err := New(Config{
		Supervisor: &fakeSupervisor{},
		DiskUsage: func() map[string]map[string]int64 {
			return map[string]map[string]int64{"b": {"repo": 1, "data": 2}, "a": {"releases": 4096}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := "# TYPE hop3_app_disk_bytes gauge\n" +
		"hop3_app_disk_bytes{app=\"a\",part=\"releases\"} 4096\n" +
		"hop3_app_disk_bytes{app=\"b\",part=\"data\"} 2\n" +
		"hop3_app_disk_bytes{app=\"b\",part=\"repo\"} 1\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("metrics lack\n%s\ngot:\n%s", want, b.String())
	}
}

func TestAddonMetrics(t *testing.T) {
	m, err := New(Config{Supervisor: &fakeSupervisor{}, Addons: func() []AddonStat {
		return []AddonStat{{App: "shop", Name: "shop-db", Kind: "postgres", Running: true, SizeBytes: 7654321}, {App: "shop", Name: "shop-redis", Kind: "redis"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	want(t, got, `hop3_addon_up{addon="shop-db",app="shop",kind="postgres"}`, 1)
	want(t, got, `hop3_addon_up{addon="shop-redis",app="shop",kind="redis"}`, 0)
	want(t, got, `hop3_addon_size_bytes{addon="shop-db",app="shop",kind="postgres"}`, 7654321)
}

func TestCertificates(t *testing.T) {
	t.Parallel()
	end := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	m, err := New(Config{
		Supervisor: &fakeSupervisor{},
		Certificates: func() []router.CertStatus {
			return []router.CertStatus{
				{Host: "b.example.com", State: router.CertFailing, LastError: "boom"},
				{Host: "a.example.com", State: router.CertValid, NotAfter: end},
				{Host: "c.example.com", State: router.CertPending},
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := scrape(t, m)
	want(t, got, `hop3_cert_expiry_seconds{host="a.example.com"}`, float64(end.Unix()))
	want(t, got, `hop3_cert_failing{host="a.example.com"}`, 0)
	want(t, got, `hop3_cert_failing{host="b.example.com"}`, 1)
	want(t, got, `hop3_cert_failing{host="c.example.com"}`, 0)
	if _, ok := got[`hop3_cert_expiry_seconds{host="b.example.com"}`]; ok {
		t.Error("an expiry for a host without a certificate")
	}

	// Without TLS there are no certificate families at all.
	plain, err := New(Config{Supervisor: &fakeSupervisor{}})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if _, err := plain.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "hop3_cert_") {
		t.Errorf("certificate metrics with TLS off:\n%s", b.String())
	}
}

// TestBadSampleLeftOut: a sample the library refuses (a host name that is
// not UTF-8) is logged and left out of the scrape; the rest is still served.
func TestBadSampleLeftOut(t *testing.T) {
	t.Parallel()
	var log strings.Builder
	m, err := New(Config{
		Supervisor: &fakeSupervisor{},
		Hosts:      func() map[string][]string { return map[string][]string{"a": {"a.example.com", "b\xff.example.com"}} },
		Logger:     slog.New(slog.NewTextHandler(&log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics = %d %s", rec.Code, body)
	}
	got := parseText(t, body)
	want(t, got, `hop3_app_host_info{app="a",host="a.example.com"}`, 1)
	want(t, got, `hop3_up`, 1)
	if strings.Contains(body, "b\xff") {
		t.Errorf("the bad sample was served:\n%s", body)
	}
	if l := log.String(); !strings.Contains(l, "collect metrics") || !strings.Contains(l, "hop3_app_host_info") {
		t.Errorf("the bad sample was not logged: %q", l)
	}
}
