package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadGen sends GETs through Caddy from a few clients with keep-alive,
// counting every answer that is not a 200 and every transport error.
type loadGen struct {
	sent, failed atomic.Int64
	mu           sync.Mutex
	kinds        map[string]int
	stop         chan struct{}
	wg           sync.WaitGroup
}

const (
	loadWorkers  = 8
	loadPause    = 5 * time.Millisecond
	loadMaxTotal = 2_000_000
)

func startLoad(ctx context.Context, url, host string) *loadGen {
	g := &loadGen{kinds: map[string]int{}, stop: make(chan struct{})}
	for w := 0; w < loadWorkers; w++ {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			defer c.CloseIdleConnections()
			for g.sent.Load() < loadMaxTotal {
				select {
				case <-g.stop:
					return
				case <-ctx.Done():
					return
				default:
				}
				code, _, err := httpGet(ctx, c, url, host)
				g.sent.Add(1)
				if err != nil || code != 200 {
					g.failed.Add(1)
					k := fmt.Sprintf("status %d", code)
					if err != nil {
						k = err.Error()
						if i := strings.LastIndex(k, ": "); i >= 0 {
							k = k[i+2:]
						}
					}
					g.mu.Lock()
					g.kinds[k]++
					g.mu.Unlock()
				}
				time.Sleep(loadPause)
			}
		}()
	}
	return g
}

func (g *loadGen) snapshot() (int64, int64) { return g.sent.Load(), g.failed.Load() }

func (g *loadGen) finish() {
	close(g.stop)
	g.wg.Wait()
}

func (g *loadGen) failureKinds() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.kinds) == 0 {
		return ""
	}
	var out []string
	for _, k := range sortedKeys(g.kinds) {
		out = append(out, fmt.Sprintf("%s ×%d", k, g.kinds[k]))
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

// operation is one kind of change made under load.
type operation struct {
	label string
	count int
	run   func(ctx context.Context, i int) (string, error) // returns a note
}

func unavailable(out string) bool {
	return strings.Contains(strings.ToLower(out), "unknown command")
}

func scenarioZeroDowntime(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	d := m.d
	a := m.app("hello")
	sshOp := func(args func(i int) []string) func(ctx context.Context, i int) (string, error) {
		return func(ctx context.Context, i int) (string, error) {
			argv := args(i)
			out, code := d.ssh(ctx, argv...)
			if unavailable(out) {
				return "unavailable", nil
			}
			if code != 0 {
				return "", fmt.Errorf("ssh %s: exit %d: %s", strings.Join(argv, " "), code, clip(out, 300))
			}
			return "", nil
		}
	}
	ops := []operation{
		{"deploy (`git push` of a new commit)", 10, func(ctx context.Context, i int) (string, error) {
			v := "zd-" + strconv.Itoa(i)
			if err := a.repo.commit("version "+v, map[string]string{"VERSION": v + "\n"}); err != nil {
				return "", err
			}
			if _, err := d.push(ctx, a.repo.dir, a.name); err != nil {
				return "", err
			}
			// hop3 answers the push once the new release serves.
			if _, body, err := httpGet(ctx, freshClient(10*time.Second), d.url("/version"), d.host(a.name)); err != nil || body != v {
				return "stale", nil
			}
			return "", nil
		}},
		{"`config:set hello BENCH_N=<i>`", 10, sshOp(func(i int) []string {
			return []string{"config:set", a.name, "BENCH_N=" + strconv.Itoa(i)}
		})},
		{"`ps:scale hello wsgi=1|2`", 5, sshOp(func(i int) []string {
			return []string{"ps:scale", a.name, "wsgi=" + strconv.Itoa(1+i%2)}
		})},
		{"`restart hello`", 5, sshOp(func(i int) []string { return []string{"restart", a.name} })},
	}
	g := startLoad(ctx, d.url("/version"), d.host(a.name))
	defer g.finish()
	time.Sleep(time.Second)
	var b strings.Builder
	fmt.Fprintf(&b, "A load generator (Go, %d clients with keep-alive, each pausing %s between requests) sends `GET /version` to the minimal app through hop3's Caddy ", loadWorkers, loadPause)
	b.WriteString("while the operations below run one after the other. A request fails if it gets a transport error or any status but 200 (timeout 15 s). ")
	b.WriteString("After each deploy the next request must already see the new version: hop3 answers the push once the new release serves.\n\n")
	b.WriteString("| operation | runs | wall time | requests sent | failed | note |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	var totalSent, totalFailed int64
	var notRun []string
	for _, op := range ops {
		s0, f0 := g.snapshot()
		t0 := time.Now()
		runs, stale := 0, 0
		note := ""
		for i := 0; i < op.count; i++ {
			n, err := op.run(ctx, i)
			if err != nil {
				return b.String(), err
			}
			if n == "unavailable" {
				note = "not run: command not available"
				break
			}
			if n == "stale" {
				stale++
			}
			runs++
		}
		s1, f1 := g.snapshot()
		totalSent += s1 - s0
		totalFailed += f1 - f0
		if note == "" && strings.HasPrefix(op.label, "deploy") {
			note = fmt.Sprintf("new version served right after the push: %d/%d", runs-stale, runs)
		}
		if runs == 0 {
			notRun = append(notRun, op.label)
			fmt.Fprintf(&b, "| %s | 0 of %d | — | — | — | **%s** |\n", op.label, op.count, note)
			continue
		}
		logf("zero downtime: %s ×%d: %d requests, %d failed", op.label, runs, s1-s0, f1-f0)
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %d | %s |\n", op.label, runs, time.Since(t0).Round(100*time.Millisecond), s1-s0, f1-f0, note)
	}
	fmt.Fprintf(&b, "| **all** | | | **%d** | **%d** | |\n\n", totalSent, totalFailed)
	if k := g.failureKinds(); k != "" {
		fmt.Fprintf(&b, "Failures: %s.\n\n", k)
	}
	if totalFailed == 0 {
		b.WriteString("**hop3 kept every request answered** through all the operations that ran.\n")
	} else {
		fmt.Fprintf(&b, "**hop3 loses requests**: %d of %d failed.\n", totalFailed, totalSent)
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "\n**Not run: command not available:** %s.\n", strings.Join(notRun, ", "))
	}
	// Leave the app as the other scenarios expect it.
	if out, code := d.ssh(ctx, "ps:scale", a.name, "wsgi=2"); code != 0 && !unavailable(out) {
		logf("ps:scale back to 2: %s", out)
	}
	return b.String(), nil
}
