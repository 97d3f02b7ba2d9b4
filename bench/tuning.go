package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// tuneVariant is one configuration of the hop3 path, run on replicas: a
// Caddy started with hop3's own config (read back from its admin API) and
// Granians started with hop3's own command line, each changed in one place.
type tuneVariant struct {
	key, label string
	caddyEnv   func(base []string) []string // nil: hop3's
	proxyMod   func(h map[string]any)       // on every reverse_proxy handler
	bare       bool                         // replace hop3's routes by one bare route per app
	granian    string                       // which Granian (a key of granianVariants)
	explore    bool                         // only with -explore
}

// granianVariants are the Granian command lines the variants use.
var granianVariants = map[string]func(argv []string) []string{
	"hop3": func(a []string) []string { return a },
	"bt4":  func(a []string) []string { return withFlag(a, "--blocking-threads", "4") },
	"st":   func(a []string) []string { return withFlag(a, "--runtime-mode", "st") },
}

func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	out := []string{}
	for _, e := range env {
		if !strings.HasPrefix(e, k+"=") {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

func tuneVariants() []tuneVariant {
	noFlush := func(h map[string]any) { delete(h, "flush_interval") }
	flushEach := func(h map[string]any) { h["flush_interval"] = -1 }
	return []tuneVariant{
		{key: "replica", label: "replica of hop3 as it runs (check: should match the hop3 row above)", granian: "hop3"},
		{key: "bare", label: "diagnostic: Caddy's floor, one bare route per app (host matcher → reverse_proxy, nothing else)", granian: "hop3", bare: true},
		{key: "gomaxprocs2", label: "Caddy GOMAXPROCS=2 (Go's default here) instead of 1", granian: "hop3",
			caddyEnv: func(b []string) []string { return setEnv(b, "GOMAXPROCS=2") }},
		{key: "gogc100", label: "Caddy GOGC=100 (Go's default) instead of 400", granian: "hop3",
			caddyEnv: func(b []string) []string { return setEnv(b, "GOGC=100") }},
		{key: "noflush", label: "route without `flush_interval` (Caddy's default: it still streams event streams and responses of unknown length at once)", granian: "hop3", proxyMod: noFlush, explore: true},
		{key: "flusheach", label: "`flush_interval: -1` (flush every write) instead of 25ms", granian: "hop3", proxyMod: flushEach},
		{key: "kaoff", label: "upstream keep-alive off", granian: "hop3", explore: true,
			proxyMod: func(h map[string]any) {
				h["transport"] = map[string]any{"protocol": "http", "keep_alive": map[string]any{"enabled": false}}
			}},
		{key: "pool128", label: "upstream keep-alive pool of 128 idle connections (default 32)", granian: "hop3", explore: true,
			proxyMod: func(h map[string]any) {
				h["transport"] = map[string]any{"protocol": "http", "keep_alive": map[string]any{"max_idle_conns_per_host": 128}}
			}},
		{key: "gogc200", label: "Caddy GOGC=200", granian: "hop3",
			caddyEnv: func(b []string) []string { return setEnv(b, "GOGC=200") }},
		{key: "bt4", label: "Granian `--blocking-threads 4` instead of 1", granian: "bt4"},
		{key: "st", label: "Granian `--runtime-mode st`", granian: "st"},
	}
}

func scenarioTuning(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	caddyPID := m.d.caddyPID()
	var baseEnv []string
	for _, e := range environ(caddyPID) {
		if strings.HasPrefix(e, "GOMAXPROCS=") || strings.HasPrefix(e, "GOGC=") || strings.HasPrefix(e, "GOMEMLIMIT=") {
			baseEnv = append(baseEnv, e)
		}
	}
	b.WriteString("### Where the time goes\n\n")
	fmt.Fprintf(&b, "hop3's Caddy runs with `%s` (read from /proc/<pid>/environ). ", strings.Join(baseEnv, " "))
	b.WriteString("On 2 cores the load generator, the proxy and the app's workers share the CPU, so whatever the proxy spends per request is taken from the app. ")
	b.WriteString("The CPU and system-call columns (from /proc/<pid>/stat and /proc/<pid>/io) and the diagnostic row below, nginx in front of the very Granian hop3 runs, locate the cost.\n\n")
	if prof, err := caddyProfile(ctx, env, m); err != nil {
		fmt.Fprintf(&b, "(CPU profile of Caddy not taken: %v)\n\n", err)
	} else {
		b.WriteString(prof)
	}

	// Diagnostic: the same Granian behind nginx, to separate the proxy from the app server.
	dir, err := shortDir("hb-tune-")
	if err != nil {
		return b.String(), err
	}
	env.cleanup(func() { os.RemoveAll(dir) })
	var variants []tuneVariant
	usedGranian := map[string]bool{}
	for _, v := range tuneVariants() {
		if !v.explore || env.explore {
			variants = append(variants, v)
			usedGranian[v.granian] = true
		}
	}
	grans := map[string]map[string]string{} // app -> granian key -> socket
	for _, name := range []string{"hello", "flask"} {
		a := m.app(name)
		grans[name] = map[string]string{}
		for key, mod := range granianVariants {
			if !usedGranian[key] {
				continue
			}
			argv := mod(a.tmpl.argv)
			sock := filepath.Join(dir, name+"-"+key+".sock")
			if _, err := startGranian(ctx, env, name+"-"+key, a.tmpl, withFlag(argv, "--uds", sock)); err != nil {
				return b.String(), err
			}
			grans[name][key] = sock
		}
	}
	ngxPort := map[string]int{}
	var servers []nginxProxyServer
	for _, name := range []string{"hello", "flask"} {
		p, err := freePort()
		if err != nil {
			return b.String(), err
		}
		ngxPort[name] = p
		servers = append(servers, nginxProxyServer{p, grans[name]["hop3"]})
	}
	ngx, err := startNginxProxy(ctx, env, "tune", servers)
	if err != nil {
		return b.String(), err
	}

	replicas := map[string]*caddyReplica{}
	for _, v := range variants {
		v := v
		cenv := baseEnv
		if v.caddyEnv != nil {
			cenv = v.caddyEnv(append([]string(nil), baseEnv...))
		}
		r, err := startCaddyReplica(ctx, env, v.key, m.caddyCfg, cenv, func(cfg map[string]any) {
			if v.bare {
				socks := map[string]string{}
				for app, s := range grans {
					socks[m.d.host(app)] = s[v.granian]
				}
				bareRoutes(cfg, socks)
				return
			}
			walkProxies(cfg, func(h map[string]any) {
				ups, _ := h["upstreams"].([]any)
				for _, u := range ups {
					um, _ := u.(map[string]any)
					dial, _ := um["dial"].(string)
					for app, socks := range grans {
						if strings.Contains(dial, "/run/"+app+"/") {
							um["dial"] = "unix/" + socks[v.granian]
						}
					}
				}
				if v.proxyMod != nil {
					v.proxyMod(h)
				}
			})
		})
		if err != nil {
			return b.String(), err
		}
		replicas[v.key] = r
	}

	b.WriteString("### Tuning, before and after\n\n")
	b.WriteString("Each row changes one thing of the hop3 path and runs on replicas: a Caddy started with the config hop3 loaded into its own Caddy ")
	b.WriteString("(read back with `GET /config/`), and Granians started with hop3's command line, on their own sockets. ")
	fmt.Fprintf(&b, "nginx → uWSGI runs in the same rotation, so every ratio compares runs made under the same machine load. %d runs of %s each, alternated; medians.\n\n", env.reps, env.dur-time.Second)
	d := env.dur - time.Second
	if d < 2*time.Second {
		d = 2 * time.Second
	}
	for _, name := range []string{"hello", "flask"} {
		a := m.app(name)
		var targets []target
		targets = append(targets, target{key: "uwsgi", label: "nginx → uWSGI (baseline)", url: "http://127.0.0.1:" + strconv.Itoa(a.nginxPort) + "/",
			groups: map[string][]int{"proxy": {m.nginx.pid()}, "app": {a.uwsgi.pid()}}})
		targets = append(targets, target{key: "nginx-granian", label: "diagnostic: nginx → Granian as hop3 runs it (keep-alive 32)", url: "http://127.0.0.1:" + strconv.Itoa(ngxPort[name]) + "/",
			groups: map[string][]int{"proxy": {ngx.pid()}, "app": {granianGroup(grans[name]["hop3"])}}})
		for _, v := range variants {
			targets = append(targets, target{key: v.key, label: v.label, url: "http://127.0.0.1:" + strconv.Itoa(replicas[v.key].port) + "/", host: m.d.host(name),
				groups: map[string][]int{"proxy": {replicas[v.key].proc.pid()}, "app": {granianGroup(grans[name][v.granian])}}})
		}
		logf("tuning: %s", a.label)
		stats, _, err := measure(ctx, env, targets, d)
		if err != nil {
			return b.String(), err
		}
		fmt.Fprintf(&b, "#### %s\n\n", a.label)
		b.WriteString("| variant | req/s | × uWSGI | × replica | p50 | p99 | × uWSGI p99 | errors | CPU µs/req proxy | CPU µs/req app | syscalls/req proxy | syscalls/req app | proxy RSS MiB after |\n")
		b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		base, rep := stats["uwsgi"], stats["replica"]
		for _, t := range targets {
			s := stats[t.key]
			proxyRSS := "—"
			if g := t.groups["proxy"]; len(g) > 0 {
				proxyRSS = fmt.Sprintf("%.0f", treeRSS(g[0]).mb)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %d | %.0f | %.0f | %.1f | %.1f | %s |\n", t.label, fmtRPS(s.rps), ratio(s.rps, base.rps), ratio(s.rps, rep.rps),
				fmtDur(s.p50), fmtDur(s.p99), ratio(float64(s.p99), float64(base.p99)), s.errors, s.cpuPerReq("proxy"), s.cpuPerReq("app"), s.syscallsPerReq("proxy"), s.syscallsPerReq("app"), proxyRSS)
		}
		b.WriteString("\n")
		b.WriteString(reading(a.label, variants, stats))
	}
	return b.String(), nil
}

// reading states what the rows of one app show, from the numbers.
func reading(label string, variants []tuneVariant, stats map[string]*runStats) string {
	var b strings.Builder
	rep, ngx, uw := stats["replica"], stats["nginx-granian"], stats["uwsgi"]
	fmt.Fprintf(&b, "Reading (%s): Caddy spends %.0f µs of CPU and %.1f read/write system calls per request where nginx, in front of the same Granian, spends %.0f µs and %.1f; ",
		label, rep.cpuPerReq("proxy"), rep.syscallsPerReq("proxy"), ngx.cpuPerReq("proxy"), ngx.syscallsPerReq("proxy"))
	fmt.Fprintf(&b, "nginx → Granian reaches %s of nginx → uWSGI's requests/s, the replica of hop3 %s. ", ratio(ngx.rps, uw.rps), ratio(rep.rps, uw.rps))
	if bare := stats["bare"]; bare != nil {
		fmt.Fprintf(&b, "A bare Caddy route (no subroute, error pages or retries) costs %.0f µs of CPU per request against hop3's route's %.0f µs: the rest is Caddy's own floor for proxying one request. ", bare.cpuPerReq("proxy"), rep.cpuPerReq("proxy"))
	}
	// Throughput moves with the machine's other load; CPU and system calls
	// per request, and the tail, are steadier: judge by them.
	var cheaper, dearer, tail []string
	for _, v := range variants {
		s := stats[v.key]
		if v.key == "replica" || v.key == "bare" || s == nil {
			continue
		}
		cp, cr := s.cpuPerReq("proxy"), rep.cpuPerReq("proxy")
		switch {
		case cp <= cr*0.93:
			cheaper = append(cheaper, fmt.Sprintf("%s (%.0f µs, %.1f syscalls)", v.label, cp, s.syscallsPerReq("proxy")))
		case cp >= cr*1.07:
			dearer = append(dearer, fmt.Sprintf("%s (%.0f µs)", v.label, cp))
		}
		if float64(s.p99) <= float64(rep.p99)*0.5 {
			tail = append(tail, fmt.Sprintf("%s (%s against %s)", v.label, fmtDur(s.p99), fmtDur(rep.p99)))
		}
	}
	if len(cheaper) > 0 {
		fmt.Fprintf(&b, "Lowered Caddy's CPU per request by 7 %% or more: %s. ", strings.Join(cheaper, "; "))
	}
	if len(dearer) > 0 {
		fmt.Fprintf(&b, "Raised it by 7 %% or more: %s. ", strings.Join(dearer, "; "))
	}
	if len(tail) > 0 {
		fmt.Fprintf(&b, "Halved the p99 latency or better: %s. ", strings.Join(tail, "; "))
	}
	b.WriteString("On a shared 2-core machine the requests/s of single changes are within the run-to-run noise unless they differ by more than about 15 %, and a 4-s p99 can double from one run to the next; CPU and system calls per request are the steadier measures.")
	b.WriteString("\n\n")
	return b.String()
}

// bareRoutes replaces the routes of hop3's config by one bare route per
// host (host matcher → reverse_proxy to a unix socket, nothing else) and a
// 404 for any other host: Caddy's floor for proxying a request.
func bareRoutes(cfg map[string]any, socks map[string]string) {
	var routes []any
	for _, host := range sortedKeys(socks) {
		routes = append(routes, map[string]any{
			"match":  []any{map[string]any{"host": []any{host}}},
			"handle": []any{map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]any{"dial": "unix/" + socks[host]}}}},
		})
	}
	routes = append(routes, map[string]any{"handle": []any{map[string]any{"handler": "static_response", "status_code": 404}}})
	srv := cfg["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["hop3"].(map[string]any)
	srv["routes"] = routes
	delete(srv, "errors")
}

// granianGroup finds the process group of the Granian listening on sock.
func granianGroup(sock string) int {
	for _, p := range allProcs() {
		if p.pgrp != p.pid {
			continue
		}
		if strings.Contains(strings.Join(cmdline(p.pid), " "), sock) {
			return p.pid
		}
	}
	return 0
}

// caddyProfile takes a CPU profile of hop3's Caddy through its admin API
// while wrk loads the minimal app, and summarises it with go tool pprof.
func caddyProfile(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	secs := 4
	type res struct {
		body []byte
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost/debug/pprof/profile?seconds="+strconv.Itoa(secs), nil)
		resp, err := m.d.adminClient(time.Duration(secs+20) * time.Second).Do(req)
		if err != nil {
			ch <- res{nil, err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			err = fmt.Errorf("profile: %s: %s", resp.Status, clip(string(b), 200))
		}
		ch <- res{b, err}
	}()
	time.Sleep(200 * time.Millisecond)
	if _, _, err := runWrk(ctx, m.d.url("/"), m.d.host("hello"), env.conns, time.Duration(secs+1)*time.Second); err != nil {
		return "", err
	}
	r := <-ch
	if r.err != nil {
		return "", r.err
	}
	path := filepath.Join(env.work, "caddy-cpu.pprof")
	if err := os.WriteFile(path, r.body, 0o644); err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=18", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %v: %s", err, clip(string(out), 300))
	}
	top := string(out)
	cats, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=400", path).CombinedOutput()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "CPU profile of hop3's Caddy (admin `/debug/pprof/profile?seconds=%d`) while wrk loads the minimal app; ", secs)
	b.WriteString("cumulative share of the sampled time in a few places:\n\n")
	b.WriteString("| where | cum % |\n| --- | ---: |\n")
	for _, c := range []struct{ label, fn string }{
		{"reading and writing sockets (syscalls)", "syscall.Syscall"},
		{"net/http server: one connection's requests", "net/http.(*conn).serve"},
		{"reverse_proxy handler", "reverseproxy.(*Handler).ServeHTTP"},
		{"upstream round trip (transport)", "net/http.(*Transport).roundTrip"},
		{"flushing each response early (`flush_interval: -1`)", "maxLatencyWriter).delayedFlush"},
		{"allocation (mallocgc)", "runtime.mallocgc"},
		{"garbage collection", "runtime.gcBgMarkWorker"},
		{"scheduler (findRunnable)", "runtime.findRunnable"},
		{"netpoll", "runtime.netpoll"},
	} {
		fmt.Fprintf(&b, "| %s (`%s`) | %s |\n", c.label, c.fn, cumShare(string(cats), c.fn))
	}
	b.WriteString("\n<details><summary>go tool pprof -top</summary>\n\n```\n")
	lines := strings.Split(strings.TrimSpace(top), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") {
			continue
		}
		b.WriteString(l + "\n")
	}
	b.WriteString("```\n</details>\n\n")
	return b.String(), nil
}

// cumShare finds the cum% of the first function containing fn in
// `pprof -top -cum` output.
func cumShare(out, fn string) string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 6 && strings.Contains(f[len(f)-1], fn) {
			return f[4]
		}
	}
	return "—"
}

// nginxProxyServer is an nginx server proxying HTTP to a Granian socket.
type nginxProxyServer struct {
	port int
	sock string
}

// startNginxProxy runs nginx with proxy_pass to unix-socket upstreams and
// upstream keep-alive, as a diagnostic of the proxy's cost.
func startNginxProxy(ctx context.Context, env *benchEnv, name string, servers []nginxProxyServer) (*proc, error) {
	dir := filepath.Join(env.work, "nginx-proxy-"+name)
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	if os.Geteuid() == 0 {
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, "worker_processes auto;\ndaemon off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log warn;\nevents { worker_connections 1024; }\nhttp {\n    access_log off;\n    client_body_temp_path %[1]s/tmp/body;\n    proxy_temp_path %[1]s/tmp/proxy;\n    fastcgi_temp_path %[1]s/tmp/fastcgi;\n    uwsgi_temp_path %[1]s/tmp/uwsgi;\n    scgi_temp_path %[1]s/tmp/scgi;\n", dir)
	for i, s := range servers {
		fmt.Fprintf(&b, "    upstream app%d { server unix:%s; keepalive 32; }\n", i, s.sock)
		fmt.Fprintf(&b, "    server {\n        listen 127.0.0.1:%d;\n        location / {\n            proxy_pass http://app%d;\n            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            proxy_set_header Host $host;\n        }\n    }\n", s.port, i)
	}
	b.WriteString("}\n")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("nginx proxy "+name, dir, nil, filepath.Join(dir, "stderr.log"), env.nginxBin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	for _, s := range servers {
		if err := waitHTTP(ctx, "http://127.0.0.1:"+strconv.Itoa(s.port)+"/", "", "", 15*time.Second); err != nil {
			return nil, fmt.Errorf("nginx proxy: %v; %s", err, logTail(filepath.Join(dir, "error.log"), 5))
		}
	}
	return p, nil
}
