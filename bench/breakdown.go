package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The breakdown crosses the two proxies with the two app servers, each
// pair its own processes, all speaking HTTP/1.1 to the app server's unix
// socket (keep-alive where the app server keeps it), so that one
// comparison changes one component:
//
//	nginx → uWSGI    nginx → Granian
//	Caddy → uWSGI    Caddy → Granian
//
// The cells' keys are proxy/server.
const (
	cellNU = "nginx/uwsgi"
	cellNG = "nginx/granian"
	cellCU = "caddy/uwsgi"
	cellCG = "caddy/granian"
)

// startBreakdown starts the four pairs of the breakdown for the Flask app:
// uWSGI as the baseline runs it but on an HTTP socket, Granian with
// hop3's command line and 2 workers (the app is pinned to 2, like the
// baseline), nginx with upstream keep-alive, and Caddy with hop3's server
// settings and runtime environment but one bare route.
func startBreakdown(ctx context.Context, env *benchEnv, m *mainSetup) ([]mxStack, error) {
	a := m.app("flask")
	dir, err := shortDir("hb-split-")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { os.RemoveAll(dir) })
	appDir := filepath.Join(env.work, "apps", a.name)
	caddyEnv := caddyGoEnv(m.d)
	host := m.d.host(a.name)
	var out []mxStack
	for _, c := range []struct{ key, label string }{
		{cellNU, "nginx → uWSGI"},
		{cellNG, "nginx → Granian"},
		{cellCU, "Caddy → uWSGI"},
		{cellCG, "Caddy → Granian"},
	} {
		proxy, server, _ := strings.Cut(c.key, "/")
		name := "split-" + proxy + "-" + server
		sock := filepath.Join(dir, proxy+"-"+server+".sock")
		var app *proc
		if server == "uwsgi" {
			app, err = startUWSGIOn(ctx, env, name, appDir, uwsgiHTTP, sock)
		} else {
			argv := withFlag(withFlag(a.tmpl.argv, "--workers", "2"), "--uds", sock)
			app, err = startGranian(ctx, env, name, a.tmpl, argv)
		}
		if err != nil {
			return nil, err
		}
		st := mxStack{key: c.key, label: c.label, cell: true}
		var proxyPID int
		if proxy == "nginx" {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			p, err := startNginxProxy(ctx, env, name, []nginxProxyServer{{port, sock}})
			if err != nil {
				return nil, err
			}
			proxyPID = p.pid()
			st.targets = []vegeta.Target{getTarget("http://127.0.0.1:"+strconv.Itoa(port)+"/", "")}
		} else {
			r, err := startCaddyReplica(ctx, env, name, m.caddyCfg, caddyEnv, func(cfg map[string]any) {
				bareRoutes(cfg, map[string]string{host: sock})
			})
			if err != nil {
				return nil, err
			}
			proxyPID = r.proc.pid()
			st.targets = []vegeta.Target{getTarget("http://127.0.0.1:"+strconv.Itoa(r.port)+"/", host)}
		}
		st.groups = map[string][]int{"proxy": {proxyPID}, "app": {app.pid()}}
		out = append(out, st)
	}
	return out, nil
}

// breakdownTable renders the breakdown of one Flask scenario: the four
// pairs and, for reference, hop3 and the matrix's baseline, from the same
// rotation; then what the numbers say.
func breakdownTable(sc mxScenario, stats map[string]*mxStats) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Where the difference comes from, %s.** The four pairs of {nginx, Caddy} × {uWSGI, Granian} run in the same rotation as the rows above, "+
		"each pair its own processes started by the benchmark, all over HTTP/1.1 to the app server's unix socket: uWSGI as the baseline runs it "+
		"(master, 2 processes, 1 thread) on an `--http-socket`, Granian with hop3's command line and 2 workers, nginx with `proxy_pass` and an "+
		"upstream keep-alive pool of 32, Caddy with hop3's server settings and Go runtime environment but one bare route (host matcher → "+
		"`reverse_proxy` to the socket). Both proxies keep their connections to the app server alive; Granian keeps them, uWSGI's `--http-socket` "+
		"closes each after its answer. uWSGI's keep-alive socket (`--http11-socket`) does not fit 2 single-threaded workers: each worker stays on one "+
		"proxy connection waiting for its next request, the proxy's other connections wait in the listen queue until it overflows, and when tried "+
		"at 1000 req/s about a quarter of the requests failed. CPU is per request sent, in µs.\n\n", sc.name)
	b.WriteString("| proxy → app server | requests | p50 | p99 | p99 of each run | p99 × nginx → uWSGI (HTTP) | CPU µs/req proxy | CPU µs/req app | non-2xx | no answer |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	base := stats[cellNU]
	row := func(label string, s *mxStats) {
		r99 := ""
		if base != nil {
			r99 = ratio(float64(s.p99), float64(base.p99))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %.0f | %.0f | %d | %d |\n",
			label, s.sent, fmtDur(s.p50), fmtDur(s.p99), s.p99s(), r99, s.cpu["proxy"], s.cpu["app"], s.non2xx, s.noAnswer)
	}
	for _, st := range sc.stacks {
		if st.cell {
			row(st.label, stats[st.key])
		}
	}
	if s := stats["hop3"]; s != nil {
		row("reference: hop3 as it runs (its Caddy, its routes → its Granian)", s)
	}
	if s := stats["uwsgi"]; s != nil {
		row("reference: nginx → uWSGI as the matrix runs it (`uwsgi_pass`)", s)
	}
	b.WriteString("\n")
	p99 := map[string]float64{}
	cpu := map[string]map[string]float64{}
	spread := 0.0 // unknown until a stack has two runs
	for k, s := range stats {
		p99[k] = float64(s.p99)
		cpu[k] = s.cpu
		lo, hi := math.Inf(1), 0.0
		for _, r := range s.runs {
			lo, hi = math.Min(lo, float64(r.res.p99)), math.Max(hi, float64(r.res.p99))
		}
		if lo > 0 && len(s.runs) > 1 {
			spread = math.Max(spread, hi/lo)
		}
	}
	b.WriteString(breakdownReading(sc.name, p99, cpu, spread))
	return b.String()
}

// factor is one component's share of the p99 gap, as a ratio.
type factor struct {
	what string
	x    float64
	how  string // the ratios it is made of, if more than one
}

// breakdownReading decomposes hop3's p99 over the baseline's into a
// product of one factor per component, from the medians:
//
//	hop3/base = hop3/CG × CG/NU × NU/base,  CG/NU = proxy × app server,
//
// where proxy is the geometric mean of Caddy's ratio to nginx in front of
// either app server, and app server the same for Granian over uWSGI (their
// product is CG/NU exactly). The largest factor carries the gap.
func breakdownReading(name string, p99 map[string]float64, cpu map[string]map[string]float64, spread float64) string {
	nu, ng, cu, cg := p99[cellNU], p99[cellNG], p99[cellCU], p99[cellCG]
	if nu == 0 || ng == 0 || cu == 0 || cg == 0 {
		return "(No reading: a pair of the breakdown got no answer.)\n\n"
	}
	proxy := math.Sqrt(cu / nu * cg / ng)
	server := math.Sqrt(ng / nu * cg / cu)
	fs := []factor{
		{"the proxy (Caddy for nginx)", proxy, fmt.Sprintf("%s in front of uWSGI, %s in front of Granian", ratio(cu, nu), ratio(cg, ng))},
		{"the app server (Granian for uWSGI)", server, fmt.Sprintf("%s behind nginx, %s behind Caddy", ratio(ng, nu), ratio(cg, cu))},
	}
	total, totalName := cg/nu, "Caddy → Granian / nginx → uWSGI"
	h, base := p99["hop3"], p99["uwsgi"]
	if h > 0 && base > 0 {
		fs = append(fs,
			factor{"hop3's routes and config (hop3 as it runs over the bare Caddy → Granian pair)", h / cg, ""},
			factor{"HTTP instead of the uwsgi protocol between nginx and uWSGI", nu / base, ""})
		total, totalName = h/base, "hop3 / nginx → uWSGI"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "**hop3 at %s, by component:** p99 %s = %.2f×, the product of ", name, totalName, total)
	var parts []string
	for _, f := range fs {
		p := fmt.Sprintf("%s %.2f×", f.what, f.x)
		if f.how != "" {
			p += " (" + f.how + ")"
		}
		parts = append(parts, p)
	}
	b.WriteString(strings.Join(parts, "; ") + ". ")
	big := fs[0]
	for _, f := range fs[1:] {
		if f.x > big.x {
			big = f
		}
	}
	switch {
	case total <= 1:
		b.WriteString("There is no gap at p99 here. ")
	case big.x <= 1:
		b.WriteString("No single component is slower. ")
	default:
		fmt.Fprintf(&b, "The largest factor, carrying the gap, is %s: %.2f×; the others together make %.2f×. ", big.what, big.x, total/big.x)
		switch {
		case spread == 0:
			b.WriteString("With one run of each stack, how much p99 moves between runs is not known. ")
		case big.x < spread:
			fmt.Fprintf(&b, "It is smaller than the spread between the runs of one stack (up to %.2f× at p99), so more runs are needed to be sure. ", spread)
		default:
			fmt.Fprintf(&b, "It is larger than the spread between the runs of one stack (up to %.2f× at p99). ", spread)
		}
	}
	fmt.Fprintf(&b, "CPU per request: the proxy %s with Caddy against %s with nginx; the app server %s with Granian against %s with uWSGI (means over the other component).\n\n",
		fmtMicros(mean2(cpu[cellCU]["proxy"], cpu[cellCG]["proxy"])), fmtMicros(mean2(cpu[cellNU]["proxy"], cpu[cellNG]["proxy"])),
		fmtMicros(mean2(cpu[cellNG]["app"], cpu[cellCG]["app"])), fmtMicros(mean2(cpu[cellNU]["app"], cpu[cellCU]["app"])))
	return b.String()
}

func mean2(a, b float64) float64 { return (a + b) / 2 }

func fmtMicros(us float64) string { return fmt.Sprintf("%.0f µs", us) }

// memPart is one line of the 10-app memory breakdown.
type memPart struct {
	label string
	procs int
	pss   pssSplit
}

func (p *memPart) addPID(pid int) {
	if pid == 0 {
		return
	}
	p.pss = p.pss.add(readPSS(pid))
	p.procs++
}

// leaderAndRest splits a process group into its leader and the others.
func leaderAndRest(pgid int) (leader int, rest []int) {
	for _, pid := range groupPIDs(pgid) {
		if pid == pgid {
			leader = pid
		} else {
			rest = append(rest, pid)
		}
	}
	return leader, rest
}

// tenMemory breaks the memory of the 10-app scenario down by process kind,
// read right after its runs.
func tenMemory(d *hop3d, x *mxSetup) string {
	caddy := memPart{label: "hop3: Caddy (serves every app)"}
	gMain := memPart{label: "hop3: Granian manager processes"}
	gWork := memPart{label: "hop3: Granian workers (a one-worker app's one process)"}
	caddy.addPID(d.caddyPID())
	for _, name := range x.ten {
		leader, rest := leaderAndRest(d.granianPID(name))
		if len(rest) == 0 {
			// One worker served in the process hop3 runs: no manager.
			gWork.addPID(leader)
			continue
		}
		gMain.addPID(leader)
		for _, pid := range rest {
			gWork.addPID(pid)
		}
	}
	ngx := memPart{label: "nginx (master and workers)"}
	uMain := memPart{label: "uWSGI masters"}
	uWork := memPart{label: "uWSGI workers"}
	if x.tenNginx != nil {
		for _, pid := range groupPIDs(x.tenNginx.pid()) {
			ngx.addPID(pid)
		}
	}
	for _, p := range x.tenUW {
		leader, rest := leaderAndRest(p.pid())
		uMain.addPID(leader)
		for _, pid := range rest {
			uWork.addPID(pid)
		}
	}
	return memBreakdown([3]memPart{caddy, gMain, gWork}, [3]memPart{ngx, uMain, uWork})
}

// memBreakdown renders the two stacks' parts (proxy, app main processes,
// app workers, matched line by line) and what hop3 would need to save.
func memBreakdown(hop3, uw [3]memPart) string {
	mib := func(kb int) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }
	var b strings.Builder
	b.WriteString("**Memory of the 10-app scenario**, read from /proc/<pid>/smaps_rollup right after its runs. Pss_Anon is what the processes allocated themselves; " +
		"Pss_File is their share of mapped files (binaries, the Python interpreter and libraries), which PSS divides among every process mapping the same file, " +
		"the other stack's included. hop3's daemon is not counted, as in the table above.\n\n")
	b.WriteString("| part | processes | PSS | Pss_Anon | Pss_File |\n| --- | ---: | ---: | ---: | ---: |\n")
	total := func(label string, side [3]memPart) memPart {
		t := memPart{label: label}
		for _, p := range side {
			fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", p.label, p.procs, mib(p.pss.pss), mib(p.pss.anon), mib(p.pss.file))
			t.procs += p.procs
			t.pss = t.pss.add(p.pss)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", t.label, t.procs, mib(t.pss.pss), mib(t.pss.anon), mib(t.pss.file))
		return t
	}
	th := total("**hop3, total**", hop3)
	tu := total("**nginx → uWSGI, total**", uw)
	b.WriteString("\n")
	b.WriteString(memReading(hop3, uw, th, tu))
	return b.String()
}

// memReading says how far hop3's total is from uWSGI's and which parts
// make the difference.
func memReading(hop3, uw [3]memPart, th, tu memPart) string {
	mib := func(kb int) float64 { return float64(kb) / 1024 }
	gap := th.pss.pss - tu.pss.pss
	var b strings.Builder
	b.WriteString("**hop3 at 10 Flask apps, memory:** ")
	if gap <= 0 {
		fmt.Fprintf(&b, "hop3's processes take %.1f MiB (PSS), at or below nginx → uWSGI's %.1f MiB, by %.1f MiB. ", mib(th.pss.pss), mib(tu.pss.pss), mib(-gap))
	} else {
		fmt.Fprintf(&b, "hop3 would need to save %.1f MiB (PSS), %.0f %% of its %.1f MiB, to reach nginx → uWSGI's %.1f MiB. ",
			mib(gap), 100*float64(gap)/float64(th.pss.pss), mib(th.pss.pss), mib(tu.pss.pss))
	}
	names := []string{"Caddy against nginx", "Granian managers against uWSGI masters", "Granian workers against uWSGI workers"}
	var parts []string
	for i := range hop3 {
		parts = append(parts, fmt.Sprintf("%s %+.1f MiB", names[i], mib(hop3[i].pss.pss-uw[i].pss.pss)))
	}
	fmt.Fprintf(&b, "By part: %s; of the whole difference, anonymous memory %+.1f MiB and file pages %+.1f MiB.", strings.Join(parts, ", "),
		mib(th.pss.anon-tu.pss.anon), mib(th.pss.file-tu.pss.file))
	if w, u := hop3[2], uw[2]; w.procs > 0 && u.procs > 0 {
		fmt.Fprintf(&b, " Per worker: Granian %.1f MiB (%d workers), uWSGI %.1f MiB (%d).", mib(w.pss.pss)/float64(w.procs), w.procs, mib(u.pss.pss)/float64(u.procs), u.procs)
	}
	b.WriteString("\n\n")
	return b.String()
}
