package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// benchApp is one app deployed to the main hop3 daemon, with its baselines.
type benchApp struct {
	name    string // hop3 app name
	label   string
	fixture string
	iface   string // wsgi or asgi
	expect  string // a substring of GET /

	repo       *repo
	granianPID int
	tmpl       granianTemplate

	uwsgi     *proc
	uwsgiSock string
	nginxPort int

	tcp     *proc
	tcpPort int
}

// mainSetup is the main hop3 daemon with the benchmark apps deployed, and
// the baselines serving the same apps.
type mainSetup struct {
	d          *hop3d
	apps       []*benchApp
	nginx      *proc
	caddyCfg   []byte
	deployTime map[string]time.Duration
}

type rss struct {
	mb, pss float64 // MiB
	procs   int
}

func (m *mainSetup) app(name string) *benchApp {
	for _, a := range m.apps {
		if a.name == name {
			return a
		}
	}
	return nil
}

func setupMain(ctx context.Context, env *benchEnv) (*mainSetup, error) {
	d, err := startHop3(ctx, env, "main")
	if err != nil {
		return nil, err
	}
	m := &mainSetup{d: d, deployTime: map[string]time.Duration{}}
	m.apps = []*benchApp{
		{name: "hello", label: "minimal WSGI", fixture: "hello", iface: "wsgi", expect: "Hello, World!"},
		{name: "flask", label: "Flask, 50-item Jinja template", fixture: "flask", iface: "wsgi", expect: "50 items"},
		{name: "asgi", label: "minimal ASGI", fixture: "asgi", iface: "asgi", expect: "Hello, World!"},
	}
	for _, a := range m.apps {
		r, err := newRepo(env, env.fixture(a.fixture), a.name)
		if err != nil {
			return nil, err
		}
		a.repo = r
		t0 := time.Now()
		if _, err := d.push(ctx, r.dir, a.name); err != nil {
			return nil, err
		}
		m.deployTime[a.name] = time.Since(t0)
		if err := waitHTTP(ctx, d.url("/"), d.host(a.name), a.expect, 30*time.Second); err != nil {
			return nil, err
		}
		// The baselines run 2 workers; pinning hop3's to 2 as well keeps the
		// comparison like for like (left alone, an app starts with 1 and the
		// worker budget adds the second under load). The 10-app scenario
		// leaves its apps to the budget.
		if out, code := d.ssh(ctx, "ps:scale", a.name, a.iface+"=2"); code != 0 {
			return nil, fmt.Errorf("ps:scale %s %s=2: %s", a.name, a.iface, out)
		}
		a.granianPID = d.granianPID(a.name)
		if a.granianPID == 0 {
			return nil, fmt.Errorf("no Granian process found for %s", a.name)
		}
		if a.tmpl, err = readGranian(a.granianPID); err != nil {
			return nil, err
		}
		logf("deployed %s in %s: %s", a.name, m.deployTime[a.name].Round(time.Millisecond), strings.Join(a.tmpl.argv, " "))
	}
	if m.caddyCfg, err = d.adminGet(ctx, "/config/", 10*time.Second); err != nil {
		return nil, err
	}
	// Baselines: uWSGI behind nginx for the WSGI apps, Granian alone on TCP.
	var servers []nginxServer
	for _, a := range m.apps {
		if a.iface != "wsgi" {
			continue
		}
		dir := filepath.Join(env.work, "apps", a.name)
		if err := copyTree(env.fixture(a.fixture), dir); err != nil {
			return nil, err
		}
		a.uwsgiSock = filepath.Join(env.work, "uwsgi-"+a.name+".sock")
		if a.uwsgi, err = startUWSGI(ctx, env, a.name, dir, a.uwsgiSock); err != nil {
			return nil, err
		}
		if a.nginxPort, err = freePort(); err != nil {
			return nil, err
		}
		servers = append(servers, nginxServer{port: a.nginxPort, sock: a.uwsgiSock})
	}
	if m.nginx, err = startNginx(ctx, env, "main", servers); err != nil {
		return nil, err
	}
	for _, a := range m.apps {
		if a.tcpPort, err = freePort(); err != nil {
			return nil, err
		}
		if a.tcp, err = startGranian(ctx, env, a.name+"-tcp", a.tmpl, onTCP(a.tmpl.argv, a.tcpPort)); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// target is one way of serving an app under load.
type target struct {
	key    string // hop3, uwsgi, granian
	label  string
	url    string
	host   string
	groups map[string][]int // CPU accounting: role -> process groups
}

// runStats is the median of several wrk runs of one target.
type runStats struct {
	runs     []wrkResult
	cpu      map[string][]float64 // role -> µs of CPU per request, per run
	sysc     map[string][]float64 // role -> read+write system calls per request, per run
	rps      float64
	p50, p99 time.Duration
	errors   int
	requests int
}

func (s *runStats) finish() {
	var rps []float64
	var p50, p99 []time.Duration
	for _, r := range s.runs {
		rps = append(rps, r.RPS)
		p50 = append(p50, r.P50)
		p99 = append(p99, r.P99)
		s.errors += r.Errors
		s.requests += r.Requests
	}
	s.rps = median(rps)
	s.p50 = medianDur(p50)
	s.p99 = medianDur(p99)
}

func (s *runStats) cpuPerReq(role string) float64 { return median(s.cpu[role]) }

func (s *runStats) syscallsPerReq(role string) float64 { return median(s.sysc[role]) }

// measure runs every target reps times, alternating, after one short warm-up each.
func measure(ctx context.Context, env *benchEnv, targets []target, d time.Duration) (map[string]*runStats, string, error) {
	stats := map[string]*runStats{}
	var cmd string
	for _, t := range targets {
		stats[t.key] = &runStats{cpu: map[string][]float64{}, sysc: map[string][]float64{}}
		if _, _, err := runWrk(ctx, t.url, t.host, env.conns, time.Second); err != nil {
			return nil, "", err
		}
	}
	for rep := 0; rep < env.reps; rep++ {
		for _, t := range targets {
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			meter := newCPUMeter(t.groups)
			r, c, err := runWrk(ctx, t.url, t.host, env.conns, d)
			if err != nil {
				return nil, "", err
			}
			cmd = c
			used := meter.since()
			s := stats[t.key]
			s.runs = append(s.runs, r)
			for role, u := range used {
				if r.Requests > 0 {
					s.cpu[role] = append(s.cpu[role], float64(u.cpu.Microseconds())/float64(r.Requests))
					s.sysc[role] = append(s.sysc[role], float64(u.reads+u.writes)/float64(r.Requests))
				}
			}
			logf("  %-8s %-34s %8.0f req/s  p50 %-8s p99 %-8s errors %d", t.key, t.label, r.RPS, fmtDur(r.P50), fmtDur(r.P99), r.Errors)
		}
	}
	for _, s := range stats {
		s.finish()
	}
	return stats, cmd, nil
}

func scenarioThroughput(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	caddy := m.d.caddyPID()
	fmt.Fprintf(&b, "Each app is served three ways, with the same 2 workers: **hop3** (a real `hop3 serve`; the app deployed with `git push`; "+
		"load sent to its Caddy with the app's Host header; Caddy → Granian on the app's unix socket, exactly as hop3 runs them), "+
		"**nginx → uWSGI** (`uwsgi_pass` to a unix socket; `uwsgi --master --processes 2 --threads 1`), and **Granian alone** on TCP "+
		"(hop3's Granian command line with `--uds` replaced by `--host/--port`). %d runs of each, alternated; medians; "+
		"`errors` sums socket errors and non-2xx answers over all runs. CPU per request is the CPU time of each process group "+
		"(/proc/<pid>/stat, main process and workers) during a run divided by the requests served: it shows where the time goes.\n\n", env.reps)
	fmt.Fprintf(&b, "The ratio columns are hop3 / nginx → uWSGI: above 1 is better for req/s, below 1 is better for latency.\n\n")
	var cmd string
	for _, a := range m.apps {
		var targets []target
		targets = append(targets, target{key: "hop3", label: "hop3: Caddy → Granian (unix socket)", url: m.d.url("/"), host: m.d.host(a.name),
			groups: map[string][]int{"proxy": {caddy}, "app": {a.granianPID}}})
		if a.uwsgi != nil {
			targets = append(targets, target{key: "uwsgi", label: "nginx → uWSGI (unix socket)", url: "http://127.0.0.1:" + strconv.Itoa(a.nginxPort) + "/",
				groups: map[string][]int{"proxy": {m.nginx.pid()}, "app": {a.uwsgi.pid()}}})
		}
		targets = append(targets, target{key: "granian", label: "Granian alone (TCP)", url: "http://127.0.0.1:" + strconv.Itoa(a.tcpPort) + "/",
			groups: map[string][]int{"app": {a.tcp.pid()}}})
		logf("throughput: %s", a.label)
		stats, c, err := measure(ctx, env, targets, env.dur)
		if err != nil {
			return b.String(), err
		}
		cmd = c
		fmt.Fprintf(&b, "### %s (`%s`)\n\n", a.label, a.iface)
		base := stats["uwsgi"]
		if base == nil {
			fmt.Fprintf(&b, "uWSGI has no ASGI interface, so there is no nginx → uWSGI row; the ratios are against Granian alone.\n\n")
			base = stats["granian"]
		}
		b.WriteString(throughputTable(targets, stats, base))
		b.WriteString("\n")
		b.WriteString(verdict(a.label, stats["hop3"], base, stats["uwsgi"] != nil))
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "wrk command of one run: `%s` (a Host header for hop3).\n", cmd)
	return b.String(), nil
}

func throughputTable(targets []target, stats map[string]*runStats, base *runStats) string {
	var b strings.Builder
	b.WriteString("| stack | req/s (median) | × | p50 | × | p99 | × | errors / requests | CPU µs/req proxy | CPU µs/req app | syscalls/req proxy | req/s of each run |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	for _, t := range targets {
		s := stats[t.key]
		var runs []string
		for _, r := range s.runs {
			runs = append(runs, fmtRPS(r.RPS))
		}
		proxy, sysc := "—", "—"
		if _, ok := t.groups["proxy"]; ok {
			proxy = fmt.Sprintf("%.0f", s.cpuPerReq("proxy"))
			sysc = fmt.Sprintf("%.1f", s.syscallsPerReq("proxy"))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d / %d | %s | %.0f | %s | %s |\n",
			t.label, fmtRPS(s.rps), ratio(s.rps, base.rps), fmtDur(s.p50), ratio(float64(s.p50), float64(base.p50)),
			fmtDur(s.p99), ratio(float64(s.p99), float64(base.p99)), s.errors, s.requests, proxy, s.cpuPerReq("app"), sysc, strings.Join(runs, ", "))
	}
	return b.String()
}

// verdict says plainly whether hop3 wins or loses against the baseline.
func verdict(label string, hop3, base *runStats, vsUWSGI bool) string {
	name := "nginx → uWSGI"
	if !vsUWSGI {
		name = "Granian alone"
	}
	var loses []string
	if hop3.rps < base.rps*0.97 {
		loses = append(loses, fmt.Sprintf("%s the requests/s", ratio(hop3.rps, base.rps)))
	}
	if float64(hop3.p50) > float64(base.p50)*1.03 {
		loses = append(loses, fmt.Sprintf("%s the median latency", ratio(float64(hop3.p50), float64(base.p50))))
	}
	if float64(hop3.p99) > float64(base.p99)*1.03 {
		loses = append(loses, fmt.Sprintf("%s the p99 latency", ratio(float64(hop3.p99), float64(base.p99))))
	}
	if hop3.errors > base.errors {
		loses = append(loses, fmt.Sprintf("%d errors against %d", hop3.errors, base.errors))
	}
	if len(loses) == 0 {
		return fmt.Sprintf("**hop3 matches or beats %s** on the %s app (%s the requests/s).\n", name, label, ratio(hop3.rps, base.rps))
	}
	return fmt.Sprintf("**hop3 loses to %s** on the %s app: %s.\n", name, label, strings.Join(loses, ", "))
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDur(xs []time.Duration) time.Duration {
	f := make([]float64, len(xs))
	for i, x := range xs {
		f[i] = float64(x)
	}
	return time.Duration(median(f))
}

// percentile of sorted copies, nearest rank.
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(p/100*float64(len(s))+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ratio(a, b float64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func fmtRPS(r float64) string {
	if r >= 10000 {
		return fmt.Sprintf("%.1fk", r/1000)
	}
	return fmt.Sprintf("%.0f", r)
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

var _ = os.Getpid
