package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"hop3/internal/layout"
)

// mxStack is one side of a matrix scenario: where its requests go and
// which process groups serve them.
type mxStack struct {
	key     string // hop3 or uwsgi; a cell of the breakdown otherwise
	label   string
	targets []vegeta.Target
	groups  map[string][]int // role (proxy, app) -> process groups
	cell    bool             // a stack of the breakdown only, not a row of the matrix
}

// mxScenario is one fixed-rate scenario, run against every stack.
type mxScenario struct {
	key    string // its name for -mx
	name   string
	rate   int
	stacks []mxStack
}

// mxKeys names the matrix's scenarios for -mx, in the order they run.
var mxKeys = []string{"100", "1000", "ten", "body", "static", "ws"}

// parseMx reads -mx: a comma-separated subset of mxKeys; empty means all.
func parseMx(s string) (map[string]bool, error) {
	want := map[string]bool{}
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(mxKeys, k) {
			return nil, fmt.Errorf("unknown matrix scenario %q (known: %s)", k, strings.Join(mxKeys, ","))
		}
		want[k] = true
	}
	if len(want) == 0 {
		for _, k := range mxKeys {
			want[k] = true
		}
	}
	return want, nil
}

// mxRun is one run of one stack.
type mxRun struct {
	res    rateResult
	cpuPct float64            // CPU of proxy and app, % of one core, over the run
	cpu    map[string]float64 // role -> µs of CPU per request sent
	pss    float64            // MiB, proxy and app, right after the run
}

// mxStats is the median of a stack's runs.
type mxStats struct {
	runs          []mxRun
	p50, p95, p99 time.Duration
	cpuPct, pss   float64
	cpu           map[string]float64 // role -> µs of CPU per request
	sent, non2xx  int
	noAnswer      int
	errs          map[string]int
}

// p99s lists each run's p99, in the order the runs ran.
func (s *mxStats) p99s() string {
	var out []string
	for _, r := range s.runs {
		out = append(out, fmtDur(r.res.p99))
	}
	return strings.Join(out, ", ")
}

func (s *mxStats) finish() {
	var p50, p95, p99 []time.Duration
	var cpu, pss []float64
	roles := map[string][]float64{}
	s.errs = map[string]int{}
	for _, r := range s.runs {
		p50, p95, p99 = append(p50, r.res.p50), append(p95, r.res.p95), append(p99, r.res.p99)
		cpu, pss = append(cpu, r.cpuPct), append(pss, r.pss)
		for role, us := range r.cpu {
			roles[role] = append(roles[role], us)
		}
		s.sent += r.res.sent
		s.non2xx += r.res.non2xx
		s.noAnswer += r.res.noAnswer
		for k, n := range r.res.errs {
			s.errs[k] += n
		}
	}
	s.p50, s.p95, s.p99 = medianDur(p50), medianDur(p95), medianDur(p99)
	s.cpuPct, s.pss = median(cpu), median(pss)
	s.cpu = map[string]float64{}
	for role, us := range roles {
		s.cpu[role] = median(us)
	}
}

// groupsPSS sums the PSS of every process of the groups, in MiB.
func groupsPSS(groups map[string][]int) float64 {
	kb := 0
	for _, pgids := range groups {
		for _, g := range pgids {
			for _, pid := range groupPIDs(g) {
				kb += pssKB(pid)
			}
		}
	}
	return float64(kb) / 1024
}

// runStack loads one stack once and measures what serving it cost.
func runStack(ctx context.Context, env *benchEnv, rate int, st mxStack, d time.Duration) mxRun {
	meter := newCPUMeter(st.groups)
	res := runRate(ctx, rateLoad{rate: rate, dur: d, timeout: env.rateTimeout, targets: st.targets})
	var cpu time.Duration
	perReq := map[string]float64{}
	for role, u := range meter.since() {
		cpu += u.cpu
		if res.sent > 0 {
			perReq[role] = float64(u.cpu.Microseconds()) / float64(res.sent)
		}
	}
	return mxRun{res: res, cpuPct: 100 * cpu.Seconds() / res.wall.Seconds(), cpu: perReq, pss: groupsPSS(st.groups)}
}

// runScenario runs every stack of sc reps times, rotating which goes
// first, after a warm-up of each at the scenario's rate (-rate-warm): long
// enough for hop3's worker budget to give a loaded app the workers it would
// have in service.
func runScenario(ctx context.Context, env *benchEnv, sc mxScenario) (map[string]*mxStats, error) {
	stats := map[string]*mxStats{}
	for _, st := range sc.stacks {
		stats[st.key] = &mxStats{}
		runRate(ctx, rateLoad{rate: sc.rate, dur: env.rateWarm, timeout: env.rateTimeout, targets: st.targets})
	}
	for rep := 0; rep < env.reps; rep++ {
		for _, st := range rotated(sc.stacks, rep) {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r := runStack(ctx, env, sc.rate, st, env.rateDur)
			stats[st.key].runs = append(stats[st.key].runs, r)
			logf("  %-13s %-28s sent %6d  p50 %-8s p95 %-8s p99 %-8s CPU %5.1f%%  PSS %6.1f MiB  non-2xx %d  no answer %d",
				st.key, sc.name, r.res.sent, fmtDur(r.res.p50), fmtDur(r.res.p95), fmtDur(r.res.p99), r.cpuPct, r.pss, r.res.non2xx, r.res.noAnswer)
			logf("  %-13s seconds with p99 over 2× the run's p95: %s", st.key, r.res.worstSeconds(2*r.res.p95))
			time.Sleep(time.Second) // let the previous load's stragglers finish
		}
	}
	for _, s := range stats {
		s.finish()
	}
	return stats, nil
}

// rotated returns xs starting at its k-th element (modulo its length),
// so that each run of a scenario starts with another stack.
func rotated[T any](xs []T, k int) []T {
	if len(xs) == 0 {
		return nil
	}
	k %= len(xs)
	return append(append([]T{}, xs[k:]...), xs[:k]...)
}

const mxHeader = "| scenario | stack | requests | p50 | p95 | p99 | p99 of each run | p99 × | CPU proxy+app | × | PSS proxy+app | × | non-2xx | no answer |\n" +
	"| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"

// mxRows renders a scenario's two rows; ratios are hop3 / nginx → uWSGI.
func mxRows(sc mxScenario, stats map[string]*mxStats) string {
	var b strings.Builder
	base := stats["uwsgi"]
	for _, st := range sc.stacks {
		if st.cell {
			continue
		}
		s := stats[st.key]
		r99, rcpu, rpss := "", "", ""
		if st.key == "hop3" && base != nil {
			r99 = ratio(float64(s.p99), float64(base.p99))
			rcpu = ratio(s.cpuPct, base.cpuPct)
			rpss = ratio(s.pss, base.pss)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %.0f %% | %s | %.1f MiB | %s | %d | %d |\n",
			sc.name, st.label, s.sent, fmtDur(s.p50), fmtDur(s.p95), fmtDur(s.p99), s.p99s(), r99, s.cpuPct, rcpu, s.pss, rpss, s.non2xx, s.noAnswer)
	}
	return b.String()
}

// mxVerdict is a scenario's line for the report's summary.
func mxVerdict(sc mxScenario, stats map[string]*mxStats) string {
	h, u := stats["hop3"], stats["uwsgi"]
	if h == nil || u == nil {
		return ""
	}
	return fmt.Sprintf("**hop3 at %s:** p50 %s, p99 %s against %s (%s; each run: %s against %s), CPU %s, PSS %s; %d of %d requests failed against %d of %d.\n\n",
		sc.name, fmtDur(h.p50), fmtDur(h.p99), fmtDur(u.p99), ratio(float64(h.p99), float64(u.p99)), h.p99s(), u.p99s(), ratio(h.cpuPct, u.cpuPct), ratio(h.pss, u.pss),
		h.non2xx+h.noAnswer, h.sent, u.non2xx+u.noAnswer, u.sent)
}

// mxErrors lists the kinds of failed request of a scenario, if any.
func mxErrors(sc mxScenario, stats map[string]*mxStats) string {
	var b strings.Builder
	for _, st := range sc.stacks {
		s := stats[st.key]
		if s == nil || len(s.errs) == 0 {
			continue
		}
		fmt.Fprintf(&b, "- %s, %s: %s\n", sc.name, st.label, rateResult{errs: s.errs}.summaryErrs())
	}
	return b.String()
}

// mxSetup is what the matrix deploys besides the main apps.
type mxSetup struct {
	ten       []string // hop3 apps of the 10-app scenario
	tenUW     []*proc
	tenNginx  *proc
	tenHTTP   []int // process groups of the ten uWSGIs on HTTP sockets (the proxy pair)
	tenPorts  []int
	ws        string // hop3 app with a WebSocket echo
	files     string // hop3 static app
	filesNg   *proc
	filesPort int
}

const staticFile = "f10k.bin" // 10 KiB, served by both stacks

// setupMatrix deploys the extra apps of the selected scenarios to hop3
// and starts their nginx → uWSGI (or nginx) counterparts.
func setupMatrix(ctx context.Context, env *benchEnv, m *mainSetup, want map[string]bool) (*mxSetup, error) {
	x := &mxSetup{ws: "wsecho", files: "files"}
	if want["ten"] {
		if err := x.setupTen(ctx, env, m); err != nil {
			return nil, err
		}
	}
	if want["ws"] {
		if err := x.setupWS(ctx, env, m.d); err != nil {
			return nil, err
		}
	}
	if want["static"] {
		if err := x.setupFiles(ctx, env, m.d); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// setupTen deploys the 10 Flask apps to hop3 and starts 10 uWSGIs behind
// one nginx.
func (x *mxSetup) setupTen(ctx context.Context, env *benchEnv, m *mainSetup) error {
	d := m.d
	flask := m.app("flask")
	var servers []nginxServer
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("ten%02d", i)
		r, err := newRepo(env, env.fixture("flask"), name)
		if err != nil {
			return err
		}
		if _, err := d.push(ctx, r.dir, name); err != nil {
			return err
		}
		if err := waitHTTP(ctx, d.url("/"), d.host(name), flask.expect, 60*time.Second); err != nil {
			return err
		}
		if env.tenPin > 0 {
			if out, code := d.ssh(ctx, "ps:scale", name, "wsgi="+strconv.Itoa(env.tenPin)); code != 0 {
				return fmt.Errorf("pin %s to %d workers: %s", name, env.tenPin, out)
			}
		}
		x.ten = append(x.ten, name)
		dir := filepath.Join(env.work, "apps", name)
		if err := copyTree(env.fixture("flask"), dir); err != nil {
			return err
		}
		sock := filepath.Join(env.work, "uwsgi-"+name+".sock")
		p, err := startUWSGI(ctx, env, name, dir, sock)
		if err != nil {
			return err
		}
		x.tenUW = append(x.tenUW, p)
		port, err := freePort()
		if err != nil {
			return err
		}
		x.tenPorts = append(x.tenPorts, port)
		servers = append(servers, nginxServer{port: port, sock: sock})
		logf("matrix: deployed %s", name)
	}
	var err error
	x.tenNginx, err = startNginx(ctx, env, "ten", servers)
	return err
}

// setupWS deploys the WebSocket echo app.
func (x *mxSetup) setupWS(ctx context.Context, env *benchEnv, d *hop3d) error {
	src := filepath.Join(env.work, "fixture-"+x.ws)
	files := map[string]string{"app.py": longLivedApp, "requirements.txt": "# none\n", "Procfile": "asgi: app:app\n", "VERSION": "ws-0\n", ".env": "SLOW_SECONDS=1\n"}
	if err := writeFiles(src, files); err != nil {
		return err
	}
	r, err := newRepo(env, src, x.ws)
	if err != nil {
		return err
	}
	if _, err := d.push(ctx, r.dir, x.ws); err != nil {
		return err
	}
	return waitHTTP(ctx, d.url("/version"), d.host(x.ws), "ws-0", 30*time.Second)
}

// setupFiles deploys the static site to hop3 and serves the same files
// with nginx.
func (x *mxSetup) setupFiles(ctx context.Context, env *benchEnv, d *hop3d) error {
	src := filepath.Join(env.work, "fixture-"+x.files)
	body := strings.Repeat("0123456789abcdef", 640) // 10 KiB
	if err := writeFiles(src, map[string]string{"Procfile": "static: public\n", "public/index.html": "files\n", "public/" + staticFile: body}); err != nil {
		return err
	}
	r, err := newRepo(env, src, x.files)
	if err != nil {
		return err
	}
	if _, err := d.push(ctx, r.dir, x.files); err != nil {
		return err
	}
	if err := waitHTTP(ctx, d.url("/"+staticFile), d.host(x.files), "0123", 30*time.Second); err != nil {
		return err
	}
	if x.filesPort, err = freePort(); err != nil {
		return err
	}
	if x.filesNg, err = startNginx(ctx, env, "files", []nginxServer{{port: x.filesPort, root: filepath.Join(src, "public")}}); err != nil {
		return err
	}
	return waitHTTP(ctx, "http://127.0.0.1:"+strconv.Itoa(x.filesPort)+"/"+staticFile, "", "0123", 15*time.Second)
}

func writeFiles(dir string, files map[string]string) error {
	for f, c := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// staticPGID is the process group of an app's static file server.
func (d *hop3d) staticPGID(app string) int {
	for _, p := range descendants(d.PID()) {
		c := strings.Join(cmdline(p.pid), " ")
		if p.pgrp == p.pid && strings.Contains(c, " serve-static ") && strings.Contains(c, "/run/"+app+"/") {
			return p.pid
		}
	}
	return 0
}

func scenarioMatrix(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	loadBefore := loadAvg()
	want := env.mx
	fmt.Fprintf(&b, "Appendix D's scenarios at a fixed rate: an open-loop load (vegeta as a library, keep-alive on) sends requests on schedule "+
		"whatever the answers, so a server that falls behind shows it as latency and as requests with no answer, which wrk's closed loop hides. "+
		"Each scenario runs against hop3 (its Caddy with the app's Host header) and nginx → uWSGI (`uwsgi --master --processes 2 --threads 1`), "+
		"runs: %d of %s each, alternated, after a %s warm-up of each at the same rate (hop3's worker budget may add a worker meanwhile, as it would in service); medians. Latencies are of answered requests; `non-2xx` counts answers "+
		"outside 2xx and `no answer` the requests that got none within %s (connection errors and timeouts). CPU is the CPU time of the proxy's "+
		"and the app's process groups (/proc/<pid>/stat) over the run, in %% of one core; PSS is theirs right after the run "+
		"(hop3's Caddy serves every app, so its whole PSS is counted). The ratio columns are hop3 / nginx → uWSGI: below 1 is better. "+
		"`p99 of each run` lists every run's p99 in the order they ran, to show how stable it is.\n\n",
		env.reps, env.rateDur, env.rateWarm, env.rateTimeout)
	if len(want) < len(mxKeys) {
		var keys []string
		for _, k := range mxKeys {
			if want[k] {
				keys = append(keys, k)
			}
		}
		fmt.Fprintf(&b, "Only the scenarios `-mx %s` ran.\n\n", strings.Join(keys, ","))
	}
	logf("matrix: deploying the scenario apps")
	x, err := setupMatrix(ctx, env, m, want)
	if err != nil {
		return b.String(), err
	}
	var cells []mxStack
	if want["100"] || want["1000"] {
		logf("matrix: starting the breakdown's proxies and app servers")
		if cells, err = startBreakdown(ctx, env, m); err != nil {
			return b.String(), err
		}
	}
	d := m.d
	caddy := d.caddyPID()
	flask := m.app("flask")
	nginxURL := func(port int, path string) string { return "http://127.0.0.1:" + strconv.Itoa(port) + path }
	flaskStacks := func(t func(url, host string) vegeta.Target, path string) []mxStack {
		return []mxStack{
			{key: "hop3", label: "hop3", targets: []vegeta.Target{t(d.url(path), d.host("flask"))},
				groups: map[string][]int{"proxy": {caddy}, "app": {d.granianPID("flask")}}},
			{key: "uwsgi", label: "nginx → uWSGI", targets: []vegeta.Target{t(nginxURL(flask.nginxPort, path), "")},
				groups: map[string][]int{"proxy": {m.nginx.pid()}, "app": {flask.uwsgi.pid()}}},
		}
	}
	upload := bytes.Repeat([]byte("x"), 10<<20)
	post := func(url, host string) vegeta.Target {
		t := getTarget(url, host)
		t.Method, t.Body = http.MethodPost, upload
		t.Header.Set("Content-Type", "application/octet-stream")
		return t
	}
	// The single-app Flask scenarios run the breakdown's stacks in the same
	// rotation as hop3 and nginx → uWSGI, so that every ratio between them
	// is measured under the same machine load.
	withCells := func(st []mxStack) []mxStack { return append(st, cells...) }
	var scenarios []mxScenario
	scenarios = append(scenarios,
		mxScenario{key: "100", name: "Flask at 100 req/s", rate: 100, stacks: withCells(flaskStacks(getTarget, "/"))},
		mxScenario{key: "1000", name: "Flask at 1000 req/s", rate: 1000, stacks: withCells(flaskStacks(getTarget, "/"))})
	if want["ten"] {
		var tenH, tenU []vegeta.Target
		tenHG, tenUG := []int{}, []int{}
		for i, name := range x.ten {
			tenH = append(tenH, getTarget(d.url("/"), d.host(name)))
			tenHG = append(tenHG, d.granianPID(name))
			tenU = append(tenU, getTarget(nginxURL(x.tenPorts[i], "/"), ""))
			tenUG = append(tenUG, x.tenUW[i].pid())
		}
		// Diagnostic: nginx in front of hop3's own ten Granians, through the
		// same sockets Caddy dials, tells a stall of the proxy from one of
		// the apps.
		var ngServers []nginxProxyServer
		var tenNG []vegeta.Target
		for _, name := range x.ten {
			port, err := freePort()
			if err != nil {
				return b.String(), err
			}
			ngServers = append(ngServers, nginxProxyServer{port, filepath.Join(layout.New(d.root).Run(name), "web.sock")})
			tenNG = append(tenNG, getTarget(nginxURL(port, "/"), ""))
		}
		ngx, err := startNginxProxy(ctx, env, "ten-granian", ngServers)
		if err != nil {
			return b.String(), err
		}
		tenStacks := []mxStack{
			{key: "hop3", label: "hop3", targets: tenH, groups: map[string][]int{"proxy": {caddy}, "app": tenHG}},
			{key: "uwsgi", label: "nginx → uWSGI", targets: tenU, groups: map[string][]int{"proxy": {x.tenNginx.pid()}, "app": tenUG}},
			{key: "nginx-granian", label: "diagnostic: nginx → hop3's ten Granians", targets: tenNG, groups: map[string][]int{"proxy": {ngx.pid()}, "app": tenHG}},
		}
		// Diagnostic pair: nginx and a Caddy with bare routes, each in
		// front of the same ten uWSGIs on HTTP sockets, tell the proxy's
		// part of the tail with the app server held fixed.
		pair, err := tenProxyPair(ctx, env, m, x)
		if err != nil {
			return b.String(), err
		}
		tenStacks = append(tenStacks, pair...)
		// Diagnostic: replicas of hop3's Caddy under other Go runtime
		// settings, in the same rotation, to weigh each against hop3's own.
		if len(env.tenCaddy) > 0 {
			cfg, err := d.adminGet(ctx, "/config/", 10*time.Second)
			if err != nil {
				return b.String(), err
			}
			for i, ce := range env.tenCaddy {
				c, err := startCaddyReplica(ctx, env, "ten"+strconv.Itoa(i), cfg, ce, nil)
				if err != nil {
					return b.String(), err
				}
				var ts []vegeta.Target
				for _, name := range x.ten {
					ts = append(ts, getTarget("http://127.0.0.1:"+strconv.Itoa(c.port)+"/", d.host(name)))
				}
				tenStacks = append(tenStacks, mxStack{key: "caddy-" + strings.Join(ce, "-"), label: "diagnostic: hop3's Caddy config, `" + strings.Join(ce, " ") + "`",
					targets: ts, groups: map[string][]int{"proxy": {c.proc.pid()}, "app": tenHG}})
			}
		}
		scenarios = append(scenarios, mxScenario{key: "ten", name: "10 Flask apps × 100 req/s", rate: 1000, stacks: tenStacks})
	}
	scenarios = append(scenarios, mxScenario{key: "body", name: "10 MB POST at 4 req/s", rate: 4, stacks: flaskStacks(post, "/upload")})
	if want["static"] {
		scenarios = append(scenarios, mxScenario{key: "static", name: "10 KiB static file at 1000 req/s", rate: 1000, stacks: []mxStack{
			{key: "hop3", label: "hop3 (Caddy → static server)", targets: []vegeta.Target{getTarget(d.url("/"+staticFile), d.host(x.files))},
				groups: map[string][]int{"proxy": {caddy}, "app": {d.staticPGID(x.files)}}},
			{key: "uwsgi", label: "nginx", targets: []vegeta.Target{getTarget(nginxURL(x.filesPort, "/"+staticFile), "")},
				groups: map[string][]int{"proxy": {x.filesNg.pid()}}},
		}})
	}
	b.WriteString(mxHeader)
	var errLines, verdicts, after strings.Builder
	for _, sc := range scenarios {
		if !want[sc.key] {
			continue
		}
		logf("matrix: %s", sc.name)
		stats, err := runScenario(ctx, env, sc)
		if err != nil {
			return b.String(), err
		}
		b.WriteString(mxRows(sc, stats))
		errLines.WriteString(mxErrors(sc, stats))
		verdicts.WriteString(mxVerdict(sc, stats))
		switch {
		case len(cells) > 0 && (sc.key == "100" || sc.key == "1000"):
			after.WriteString(breakdownTable(sc, stats))
		case sc.key == "ten":
			// Right after the runs, while every process is as the load left it.
			after.WriteString(tenMemory(d, x))
			after.WriteString(tenReading(sc, stats))
		}
	}
	b.WriteString("\n")
	b.WriteString(verdicts.String())
	if errLines.Len() > 0 {
		b.WriteString("Failed requests, by kind:\n\n" + errLines.String() + "\n")
	}
	if want["body"] || want["static"] {
		b.WriteString("The 10 MB body goes to a Flask view that reads it whole (`request.get_data()`); nginx's `client_max_body_size` is raised to 64m for it, " +
			"hop3 has no body limit unless `MAX_BODY_SIZE` is set. The static file is served by hop3's static file server behind Caddy, and by nginx " +
			"itself (no app process: its CPU and PSS are nginx's alone).\n\n")
	}
	b.WriteString(after.String())

	if want["ws"] {
		ws, err := wsScenario(ctx, env, d, x.ws)
		if err != nil {
			return b.String(), err
		}
		b.WriteString(ws)
	}

	fmt.Fprintf(&b, "Machine load (1, 5, 15 min): %s before the matrix, %s after it.\n", loadBefore, loadAvg())
	return b.String(), nil
}

// wsScenario opens env.wsConns WebSockets to hop3, measures what each costs
// in memory and how fast one echo comes back on each.
func wsScenario(ctx context.Context, env *benchEnv, d *hop3d, app string) (string, error) {
	var b strings.Builder
	n := env.wsConns
	logf("matrix: %d WebSockets", n)
	groups := map[string][]int{"proxy": {d.caddyPID()}, "app": {d.granianPID(app)}}
	time.Sleep(time.Second)
	before := groupsPSS(groups)
	var conns []*wsConn
	defer func() {
		for _, c := range conns {
			c.conn.Close()
		}
	}()
	failed := 0
	var failKind string
	t0 := time.Now()
	for range n {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		c, br, err := wsDial(d.httpAddr, d.host(app))
		if err != nil {
			failed++
			failKind = err.Error()
			continue
		}
		conns = append(conns, &wsConn{conn: c, br: br})
	}
	opened := time.Since(t0)
	time.Sleep(time.Second)
	after := groupsPSS(groups)
	meter := newCPUMeter(groups)
	var lat []time.Duration
	echoFailed := 0
	for i, c := range conns {
		c.conn.SetDeadline(time.Now().Add(env.rateTimeout))
		msg := "m" + strconv.Itoa(i)
		s := time.Now()
		if err := wsWriteText(c.conn, msg); err != nil {
			echoFailed++
			continue
		}
		if _, p, err := wsReadFrame(c.br); err != nil || string(p) != msg {
			echoFailed++
			continue
		}
		lat = append(lat, time.Since(s))
	}
	var cpu time.Duration
	for _, u := range meter.since() {
		cpu += u.cpu
	}
	perConn := 0.0
	if len(conns) > 0 {
		perConn = (after - before) * 1024 / float64(len(conns))
	}
	b.WriteString("**WebSockets.** ")
	fmt.Fprintf(&b, "hop3 (Caddy → Granian, an ASGI echo app): %d WebSockets opened in %s (%d failed%s); PSS of Caddy and the app %.1f MiB before, %.1f MiB with them open: "+
		"%.1f KiB per connection. One echo on each, one after the other: p50 %s, p95 %s, p99 %s, %d failed; CPU %.0f µs per echo.\n\n",
		len(conns), opened.Round(time.Millisecond), failed, failSuffix(failKind), before, after, perConn,
		fmtDur(percentile(lat, 50)), fmtDur(percentile(lat, 95)), fmtDur(percentile(lat, 99)), echoFailed, float64(cpu.Microseconds())/float64(max(1, len(lat))))
	b.WriteString("nginx → uWSGI: not measured. The baseline passes requests with `uwsgi_pass` to 2 synchronous workers: uWSGI's WebSocket support " +
		"(`uwsgi.websocket_handshake`) needs its own HTTP router or nginx's `proxy_pass` to an `http-socket`, and an async loop (gevent) so that " +
		"one worker can hold more than one connection; with 2 synchronous workers, 2 WebSockets would take the whole app.\n\n")
	logf("matrix: WebSockets: %d open, %.1f KiB each, echo p99 %s", len(conns), perConn, fmtDur(percentile(lat, 99)))
	return b.String(), nil
}

type wsConn struct {
	conn net.Conn
	br   *bufio.Reader
}

func failSuffix(kind string) string {
	if kind == "" {
		return ""
	}
	return ", the last: " + kind
}

// tenProxyPair starts ten more uWSGIs, on HTTP sockets so that both
// proxies can reach them, and nginx (proxy_pass) and a Caddy (hop3's Go
// settings, one bare reverse_proxy route per app) in front of them.
func tenProxyPair(ctx context.Context, env *benchEnv, m *mainSetup, x *mxSetup) ([]mxStack, error) {
	dir, err := shortDir("hb-tenpair-")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { os.RemoveAll(dir) })
	var ngServers []nginxProxyServer
	var ngTargets, cTargets []vegeta.Target
	socks := map[string]string{}
	for _, name := range x.ten {
		sock := filepath.Join(dir, name+".sock")
		p, err := startUWSGIOn(ctx, env, "http-"+name, filepath.Join(env.work, "apps", name), uwsgiHTTP, sock)
		if err != nil {
			return nil, err
		}
		x.tenHTTP = append(x.tenHTTP, p.pid())
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		ngServers = append(ngServers, nginxProxyServer{port, sock})
		ngTargets = append(ngTargets, getTarget("http://127.0.0.1:"+strconv.Itoa(port)+"/", ""))
		socks[m.d.host(name)] = sock
	}
	ngx, err := startNginxProxy(ctx, env, "ten-uwsgi-http", ngServers)
	if err != nil {
		return nil, err
	}
	c, err := startCaddyReplica(ctx, env, "ten-uwsgi-http", m.caddyCfg, caddyGoEnv(m.d), func(cfg map[string]any) { bareRoutes(cfg, socks) })
	if err != nil {
		return nil, err
	}
	for _, name := range x.ten {
		cTargets = append(cTargets, getTarget("http://127.0.0.1:"+strconv.Itoa(c.port)+"/", m.d.host(name)))
	}
	return []mxStack{
		{key: "nginx-uwsgi-http", label: "diagnostic: nginx → ten uWSGIs on HTTP sockets", targets: ngTargets, groups: map[string][]int{"proxy": {ngx.pid()}, "app": x.tenHTTP}},
		{key: "caddy-uwsgi-http", label: "diagnostic: Caddy (bare routes) → the same ten uWSGIs", targets: cTargets, groups: map[string][]int{"proxy": {c.proc.pid()}, "app": x.tenHTTP}},
	}, nil
}

// worstBest is the highest and lowest p99 of a stack's runs.
func (s *mxStats) worstBest() (worst, best time.Duration) {
	for i, r := range s.runs {
		if i == 0 || r.res.p99 > worst {
			worst = r.res.p99
		}
		if i == 0 || r.res.p99 < best {
			best = r.res.p99
		}
	}
	return worst, best
}

// tenReading sets the 10-app scenario's stacks side by side by how steady
// their runs were, then weighs the proxy with the app servers held fixed
// (nginx and Caddy in front of the same uWSGIs) and the app servers with
// the proxy held fixed (nginx in front of uWSGI and of hop3's Granians).
func tenReading(sc mxScenario, stats map[string]*mxStats) string {
	var b strings.Builder
	b.WriteString("**How steady each stack's runs were** (10 apps; the same rotation):\n\n" +
		"| stack | median p99 | best run | worst run | worst / best |\n| --- | ---: | ---: | ---: | ---: |\n")
	for _, st := range sc.stacks {
		s := stats[st.key]
		if s == nil || len(s.runs) == 0 {
			continue
		}
		w, bst := s.worstBest()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", st.label, fmtDur(s.p99), fmtDur(bst), fmtDur(w), ratio(float64(w), float64(bst)))
	}
	b.WriteString("\n")
	pair := func(a, base string) (string, string) {
		x, y := stats[a], stats[base]
		if x == nil || y == nil {
			return "", ""
		}
		xw, _ := x.worstBest()
		yw, _ := y.worstBest()
		return ratio(float64(x.p99), float64(y.p99)), ratio(float64(xw), float64(yw))
	}
	if med, worst := pair("caddy-uwsgi-http", "nginx-uwsgi-http"); med != "" {
		fmt.Fprintf(&b, "Reading: with the app servers held fixed (the same ten uWSGIs on HTTP sockets), Caddy's median p99 is %s nginx's and its worst run %s nginx's worst.", med, worst)
		if med2, worst2 := pair("nginx-granian", "uwsgi"); med2 != "" {
			fmt.Fprintf(&b, " With the proxy held fixed (nginx), hop3's ten Granians are %s uWSGI's median p99, worst run %s.", med2, worst2)
		}
		if med3, worst3 := pair("hop3", "uwsgi"); med3 != "" {
			fmt.Fprintf(&b, " hop3 as it runs: %s, worst run %s.", med3, worst3)
		}
		b.WriteString("\n\n")
	}
	return b.String()
}
