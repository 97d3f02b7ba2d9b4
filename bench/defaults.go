package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// scenarioDefaults measures the settings hop3 chooses for Granian and
// Caddy at a fixed rate, what a starving GRANIAN_BACKPRESSURE does, and a
// Caddy built with only the modules hop3 uses against the PyPI binary.
func scenarioDefaults(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "The same fixed-rate load as the matrix (runs: %d of %s each, alternated; medians) on the Flask app, through hop3.\n\n", env.reps, env.rateDur)
	threads, err := defaultsThreads(ctx, env, m)
	b.WriteString(threads)
	if err != nil {
		return b.String(), err
	}
	caddyEnv, err := defaultsCaddyEnv(ctx, env, m)
	b.WriteString(caddyEnv)
	if err != nil {
		return b.String(), err
	}
	bp, err := defaultsBackpressure(ctx, env, m)
	b.WriteString(bp)
	if err != nil {
		return b.String(), err
	}
	fp, err := caddyFootprint(ctx, env, m)
	b.WriteString(fp)
	return b.String(), err
}

// defaultsThreads compares Granian's --blocking-threads 1 and 4 for the
// Flask app, set with GRANIAN_THREADS, at 100 and 1000 req/s.
func defaultsThreads(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	d := m.d
	values := []string{"4", "1"}
	rates := []int{100, 1000}
	stats := map[string]*mxStats{}
	set := func(v string) error {
		if out, code := d.ssh(ctx, "config:set", "flask", "GRANIAN_THREADS="+v); code != 0 {
			return fmt.Errorf("config:set GRANIAN_THREADS=%s: %s", v, out)
		}
		return waitHTTP(ctx, d.url("/"), d.host("flask"), "50 items", 60*time.Second)
	}
	defer d.ssh(context.Background(), "config:unset", "flask", "GRANIAN_THREADS")
	for rep := 0; rep < env.reps; rep++ {
		order := values
		if rep%2 == 1 {
			order = []string{values[1], values[0]}
		}
		for _, v := range order {
			if err := set(v); err != nil {
				return "", err
			}
			st := mxStack{key: v, targets: []vegeta.Target{getTarget(d.url("/"), d.host("flask"))},
				groups: map[string][]int{"proxy": {d.caddyPID()}, "app": {d.granianPID("flask")}}}
			for _, rate := range rates {
				runRate(ctx, rateLoad{rate: rate, dur: time.Second, timeout: env.rateTimeout, targets: st.targets})
				r := runStack(ctx, env, rate, st, env.rateDur)
				key := v + "@" + strconv.Itoa(rate)
				if stats[key] == nil {
					stats[key] = &mxStats{}
				}
				stats[key].runs = append(stats[key].runs, r)
				logf("  threads %s at %4d req/s: p50 %-8s p99 %-8s CPU %5.1f%%  no answer %d", v, rate, fmtDur(r.res.p50), fmtDur(r.res.p99), r.cpuPct, r.res.noAnswer)
			}
		}
	}
	var b strings.Builder
	b.WriteString("**Granian's blocking threads** (`GRANIAN_THREADS`, passed as `--blocking-threads` to each of the app's workers):\n\n")
	b.WriteString("| rate | blocking threads | requests | p50 | p95 | p99 | CPU proxy+app | PSS proxy+app | non-2xx | no answer |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, rate := range rates {
		for _, v := range values {
			s := stats[v+"@"+strconv.Itoa(rate)]
			s.finish()
			fmt.Fprintf(&b, "| %d req/s | %s | %d | %s | %s | %s | %.0f %% | %.1f MiB | %d | %d |\n", rate, v, s.sent, fmtDur(s.p50), fmtDur(s.p95), fmtDur(s.p99), s.cpuPct, s.pss, s.non2xx, s.noAnswer)
		}
	}
	b.WriteString("\n")
	return b.String(), nil
}

// defaultsCaddyEnv runs copies of hop3's Caddy (its config, read back from
// the admin API) under different Go runtime settings, with the Flask app
// at 1000 req/s behind each.
func defaultsCaddyEnv(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	cfg, err := m.d.adminGet(ctx, "/config/", 10*time.Second)
	if err != nil {
		return "", err
	}
	base := caddyGoEnv(m.d)
	variants := [][]string{base, setEnv(base, "GOGC=100"), setEnv(base, "GOMEMLIMIT=64MiB")}
	var b strings.Builder
	b.WriteString("**Caddy's Go runtime**, Flask at 1000 req/s through a Caddy with hop3's config (each variant its own Caddy; PSS / RSS of Caddy alone, idle and after the load):\n\n")
	b.WriteString("| Caddy environment | requests | p50 | p95 | p99 | Caddy CPU µs/req | Caddy PSS / RSS idle | after the load | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, v := range variants {
		row, err := caddyRun(ctx, env, env.caddyBin, "env"+strconv.Itoa(i), cfg, v, "flask", 1000)
		if err != nil {
			return b.String(), err
		}
		label := "`" + strings.Join(v, " ") + "`"
		if i == 0 {
			label = "hop3's: " + label
		}
		fmt.Fprintf(&b, "| %s | %s\n", label, row)
	}
	b.WriteString("\n")
	return b.String(), nil
}

// caddyGoEnv is the Go runtime settings hop3 gave its Caddy, read from
// the running process.
func caddyGoEnv(d *hop3d) []string {
	var out []string
	for _, kv := range environ(d.caddyPID()) {
		if k, _, _ := strings.Cut(kv, "="); k == "GOMAXPROCS" || k == "GOGC" || k == "GOMEMLIMIT" || k == "GODEBUG" {
			out = append(out, kv)
		}
	}
	return out
}

// caddyRun starts a Caddy replica, loads app through it env.reps times and
// returns a table row's cells after the first.
func caddyRun(ctx context.Context, env *benchEnv, bin, name string, cfg []byte, cenv []string, app string, rate int) (string, error) {
	c, err := startCaddyBin(ctx, env, bin, name, cfg, cenv, nil)
	if err != nil {
		return "", err
	}
	defer c.proc.stop(10 * time.Second)
	url := "http://127.0.0.1:" + strconv.Itoa(c.port) + "/"
	st := mxStack{targets: []vegeta.Target{getTarget(url, app+".localhost")}, groups: map[string][]int{"proxy": {c.proc.pid()}}}
	time.Sleep(time.Second)
	idle, idleRSS := groupsPSS(st.groups), float64(rssKB(c.proc.pid()))/1024
	runRate(ctx, rateLoad{rate: rate, dur: time.Second, timeout: env.rateTimeout, targets: st.targets})
	s := &mxStats{}
	var perReq []float64
	for range env.reps {
		r := runStack(ctx, env, rate, st, env.rateDur)
		s.runs = append(s.runs, r)
		if r.res.sent > 0 {
			perReq = append(perReq, r.cpuPct/100*r.res.wall.Seconds()*1e6/float64(r.res.sent))
		}
		logf("  caddy %-6s %s: p99 %-8s CPU %5.1f%%  PSS %.1f MiB  no answer %d", name, strings.Join(cenv, " "), fmtDur(r.res.p99), r.cpuPct, r.pss, r.res.noAnswer)
	}
	s.finish()
	rss := float64(rssKB(c.proc.pid())) / 1024
	return fmt.Sprintf("%d | %s | %s | %s | %.0f | %.1f / %.1f MiB | %.1f / %.1f MiB | %d |", s.sent, fmtDur(s.p50), fmtDur(s.p95), fmtDur(s.p99), median(perReq), idle, idleRSS, s.pss, rss, s.noAnswer+s.non2xx), nil
}

// defaultsBackpressure holds more keep-alive connections than Granian's
// backpressure lets in, as Caddy's connection pool does, and counts the
// connections that never get an answer.
func defaultsBackpressure(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	a := m.app("flask")
	const conns = 40
	workers, _ := strconv.Atoi(flagValue(a.tmpl.argv, "--workers"))
	var b strings.Builder
	fmt.Fprintf(&b, "**`GRANIAN_BACKPRESSURE`.** %d keep-alive connections, each sending requests one after the other for %s, straight to the Flask app's Granian (%d workers, on TCP); a connection counts as starved when none of its requests got an answer:\n\n", conns, env.rateDur, workers)
	b.WriteString("| GRANIAN_BACKPRESSURE | workers × backpressure | connections answered | starved |\n| ---: | ---: | ---: | ---: |\n")
	for _, bp := range []int{4, 16, 32} {
		port, err := freePort()
		if err != nil {
			return b.String(), err
		}
		p, err := startGranian(ctx, env, "bp"+strconv.Itoa(bp), a.tmpl, onTCP(a.tmpl.argv, port), "GRANIAN_BACKPRESSURE="+strconv.Itoa(bp))
		if err != nil {
			return b.String(), err
		}
		ok, starved := starvedConns(ctx, "http://127.0.0.1:"+strconv.Itoa(port)+"/", conns, env.rateDur)
		p.stop(10 * time.Second)
		logf("  backpressure %d: %d connections answered, %d starved", bp, ok, starved)
		fmt.Fprintf(&b, "| %d | %d | %d | %d |\n", bp, workers*bp, ok, starved)
	}
	b.WriteString("\nThe connections are not spread over the workers: one worker may accept nearly all of them, so the limit binds per worker, " +
		"and the connections beyond it get no answer until others close. Caddy keeps up to 32 idle connections to each upstream " +
		"(its default `max_idle_conns_per_host`) and never closes them while they are in use, so below 32 the starvation lasts as long as the load; " +
		"hop3 refuses such values at `config:set` and at deploy. Above 32, connections Caddy opens in a burst beyond its pool may wait until the burst's other connections close.\n\n")
	return b.String(), nil
}

// starvedConns opens n connections to url at once, each sending requests
// in turn for d, and counts the connections that got at least one answer
// and those that got none.
func starvedConns(ctx context.Context, url string, n int, d time.Duration) (answered, starved int) {
	var ok, none atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for range n {
		wg.Go(func() {
			tr := &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr, Timeout: d}
			got := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				code, _, err := httpGet(ctx, c, url, "")
				if err != nil {
					break
				}
				if code == 200 {
					got++
				}
			}
			if got > 0 {
				ok.Add(1)
			} else {
				none.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), int(none.Load())
}

// caddyMinModules are the packages hop3's Caddy config needs: the HTTP
// app and its handlers and matchers, reverse_proxy, request_body, TLS with
// the ACME and internal issuers, the local CA, the metrics, and the
// FastCGI transport of PHP apps.
var caddyMinModules = []string{
	"github.com/caddyserver/caddy/v2/modules/caddyhttp",
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/requestbody",
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy",
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy/fastcgi",
	"github.com/caddyserver/caddy/v2/modules/caddypki",
	"github.com/caddyserver/caddy/v2/modules/caddytls",
	"github.com/caddyserver/caddy/v2/modules/metrics",
}

// buildCaddyMin builds a Caddy of the given version with only
// caddyMinModules from the Go module proxy, cached under .cache/bench.
func buildCaddyMin(ctx context.Context, env *benchEnv, version string) (string, error) {
	sum := sha256.Sum256([]byte(strings.Join(caddyMinModules, "\n")))
	dir := filepath.Join(env.repo, ".cache", "bench", "caddy-min-"+version+"-"+hex.EncodeToString(sum[:4]))
	bin := filepath.Join(dir, "caddy")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var src strings.Builder
	src.WriteString("// Caddy with only the modules hop3's configuration uses.\npackage main\n\nimport (\n\tcaddycmd \"github.com/caddyserver/caddy/v2/cmd\"\n\n")
	for _, mod := range caddyMinModules {
		fmt.Fprintf(&src, "\t_ %q\n", mod)
	}
	src.WriteString(")\n\nfunc main() { caddycmd.Main() }\n")
	if err := writeFiles(dir, map[string]string{"main.go": src.String(), "go.mod": "module caddymin\n\ngo 1.26\n\nrequire github.com/caddyserver/caddy/v2 " + version + "\n"}); err != nil {
		return "", err
	}
	logf("building Caddy %s with hop3's modules only (a few minutes)", version)
	for _, args := range [][]string{{"mod", "tidy"}, {"build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "."}} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go %s: %v: %s", strings.Join(args, " "), err, clip(string(out), 2000))
		}
	}
	return bin, nil
}

// caddyFootprint compares the PyPI Caddy with one built with hop3's
// modules only: size, memory and CPU per request proxying the minimal app.
func caddyFootprint(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	out, err := exec.Command(env.caddyBin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("caddy version: %w", err)
	}
	version := strings.Fields(string(out))[0]
	minBin, err := buildCaddyMin(ctx, env, version)
	if err != nil {
		return "", err
	}
	cfg, err := m.d.adminGet(ctx, "/config/", 10*time.Second)
	if err != nil {
		return "", err
	}
	cenv := caddyGoEnv(m.d)
	fmt.Fprintf(&b, "**Caddy's footprint.** The PyPI binary against Caddy %s built from the Go module proxy with only the modules hop3's config uses (`%s`, `go build -trimpath -ldflags '-s -w'`), "+
		"both with `%s`, proxying the minimal WSGI app at 1000 req/s. PSS divides the pages of a binary among the processes that map it, and other Caddys on the machine map the PyPI one: RSS is the fairer measure between two binaries.\n\n", version, strings.Join(caddyMinModules, "`, `"), strings.Join(cenv, " "))
	b.WriteString("| Caddy | binary | requests | p50 | p95 | p99 | Caddy CPU µs/req | Caddy PSS / RSS idle | after the load | errors |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, bin := range []string{env.caddyBin, minBin} {
		label := []string{"PyPI", "hop3's modules only"}[i]
		row, err := caddyRun(ctx, env, bin, "fp"+strconv.Itoa(i), cfg, cenv, "hello", 1000)
		if err != nil {
			return b.String(), err
		}
		size := 0.0
		if fi, err := os.Stat(bin); err == nil {
			size = float64(fi.Size()) / (1 << 20)
		}
		fmt.Fprintf(&b, "| %s | %.1f MiB | %s\n", label, size, row)
	}
	b.WriteString("\n")
	return b.String(), nil
}
