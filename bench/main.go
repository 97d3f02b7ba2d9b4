// Command bench measures hop3's serving stack (Caddy → Granian on a unix
// socket, driven by a real hop3 daemon) side by side with the stack it
// replaces (nginx → uWSGI), and writes BENCHMARKS.md. Run it with
// `make bench`, which installs what it needs first (bench/setup.sh).
//
// Every server listens on loopback only, every load is bounded in time and
// count, and every process the benchmark starts is in its own process group,
// stopped at the end (and killed if the benchmark dies).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"hop3/internal/hop3test"
)

// benchEnv is what every scenario shares.
type benchEnv struct {
	repo       string // module root
	work       string // .cache/bench/run: logs, repositories, configs of this run
	venv       string // .cache/bench/venv: uWSGI, Flask, Granian
	buildCache string // hop3's --cache-dir, kept between runs
	hop3Bin    string
	caddyBin   string
	uvBin      string
	nginxBin   string

	reps    int
	dur     time.Duration
	conns   int
	explore bool

	rateDur     time.Duration   // one fixed-rate run of the matrix
	rateWarm    time.Duration   // warm-up of each stack before a scenario's runs
	rateTimeout time.Duration   // a request unanswered by then counts as no answer
	wsConns     int             // WebSockets held open in the matrix
	tenPin      int             // workers the 10-app scenario's apps are pinned to; 0 leaves them to the worker budget
	tenCaddy    [][]string      // Go environments of Caddy replicas added to the 10-app scenario as diagnostic stacks
	mx          map[string]bool // the matrix scenarios to run (-mx)

	mu       sync.Mutex
	cleanups []func()
}

func (e *benchEnv) cleanup(f func()) {
	e.mu.Lock()
	e.cleanups = append(e.cleanups, f)
	e.mu.Unlock()
}

func (e *benchEnv) runCleanups() {
	e.mu.Lock()
	fs := e.cleanups
	e.cleanups = nil
	e.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func (e *benchEnv) fixture(name string) string {
	return filepath.Join(e.repo, "bench", "fixtures", name)
}

// logf prints progress to stderr.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func main() {
	out := flag.String("out", "BENCHMARKS.md", "report file")
	reps := flag.Int("reps", 3, "runs of each measured pair, alternated; medians are reported")
	dur := flag.Duration("d", 5*time.Second, "wrk duration of one throughput run")
	conns := flag.Int("c", 32, "wrk connections")
	explore := flag.Bool("explore", false, "also run the exploratory tuning variants")
	rateDur := flag.Duration("rate-dur", 20*time.Second, "duration of one fixed-rate run of the matrix")
	rateWarm := flag.Duration("rate-warm", 15*time.Second, "matrix: warm-up of each stack at the scenario's rate, long enough for the worker budget to react")
	rateTimeout := flag.Duration("rate-timeout", 10*time.Second, "matrix: a request unanswered by then counts as no answer")
	wsConns := flag.Int("ws", 1000, "matrix: WebSockets held open at once")
	tenCaddy := flag.String("ten-caddy", "", "matrix: semicolon-separated Go environments (e.g. 'GOGC=400;GOMAXPROCS=2 GOGC=400'), each a replica of hop3's Caddy (its live config) run in the 10-app scenario's rotation")
	tenPin := flag.Int("ten-pin", 0, "matrix: pin the 10-app scenario's apps to this many workers with ps:scale (0: leave them to the worker budget)")
	mx := flag.String("mx", "", "comma-separated matrix scenarios to run ("+strings.Join(mxKeys, ",")+"); default all. 100 and 1000 include the breakdown by proxy and app server, ten the memory breakdown")
	only := flag.String("only", "", "comma-separated scenarios to run (throughput,tuning,matrix,defaults,start,footprint,zerodowntime,push,routing,isolation,langs); default all")
	langs := flag.String("langs", "", "comma-separated languages of the langs scenario (python,node,go,rust,java,ruby,php); default all")
	flag.Parse()
	mxWant, err := parseMx(*mx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -mx: %v\n", err)
		os.Exit(2)
	}

	repo, err := os.Getwd()
	if err == nil {
		for ; ; repo = filepath.Dir(repo) {
			if _, err := os.Stat(filepath.Join(repo, "go.mod")); err == nil {
				break
			}
			if repo == filepath.Dir(repo) {
				fmt.Fprintln(os.Stderr, "bench: run inside the hop3 module")
				os.Exit(2)
			}
		}
	}
	env := &benchEnv{
		repo:       repo,
		work:       filepath.Join(repo, ".cache", "bench", "run"),
		venv:       filepath.Join(repo, ".cache", "bench", "venv"),
		buildCache: filepath.Join(repo, ".cache", "bench", "build-cache"),
		hop3Bin:    filepath.Join(repo, ".cache", "bench", "bin", "hop3"),
		caddyBin:   filepath.Join(repo, ".tools", "bin", "caddy"),
		uvBin:      filepath.Join(repo, ".tools", "bin", "uv"),
		nginxBin:   "/usr/sbin/nginx",
		reps:       *reps,
		dur:        *dur,
		conns:      *conns,
		explore:    *explore,

		rateDur:     *rateDur,
		rateWarm:    *rateWarm,
		rateTimeout: *rateTimeout,
		wsConns:     *wsConns,
		tenPin:      *tenPin,
		tenCaddy:    splitEnvs(*tenCaddy),
		mx:          mxWant,
	}
	if p, err := exec.LookPath("nginx"); err == nil {
		env.nginxBin = p
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := run(ctx, env, *out, *only, *langs)
	env.runCleanups()
	os.Exit(code)
}

// section is one part of the report.
type section struct {
	title string
	body  string
}

func run(ctx context.Context, env *benchEnv, outPath, only, langs string) int {
	want := func(name string) bool {
		if only == "" {
			return true
		}
		for _, s := range strings.Split(only, ",") {
			if strings.TrimSpace(s) == name {
				return true
			}
		}
		return false
	}
	started := time.Now()
	load := loadAvg() + " (1, 5, 15 min)"
	sampler := sampleLoad(ctx)
	os.RemoveAll(env.work)
	for _, d := range []string{env.work, env.buildCache, filepath.Dir(env.hop3Bin)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for _, f := range []string{env.caddyBin, env.uvBin, filepath.Join(env.venv, "bin", "uwsgi"), env.nginxBin} {
		if _, err := os.Stat(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s missing: run `make bench` (it runs make setup and bench/setup.sh)\n", f)
			return 1
		}
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		fmt.Fprintln(os.Stderr, "bench: wrk missing: run `make bench`")
		return 1
	}
	logf("building hop3")
	if _, err := hop3test.Build(filepath.Dir(env.hop3Bin), "-X main.version="+gitRev(env.repo)); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 1
	}

	var sections []section
	add := func(title string, body string, err error) {
		if err != nil {
			body += "\n**Not completed:** " + err.Error() + "\n"
			logf("%s: %v", title, err)
		}
		sections = append(sections, section{title, body})
	}

	// The main daemon serves the throughput apps; later scenarios reuse it.
	var main *mainSetup
	needMain := want("throughput") || want("tuning") || want("matrix") || want("defaults") || want("start") || want("footprint") || want("zerodowntime") || want("push")
	if needMain {
		var err error
		logf("starting hop3 and deploying the benchmark apps")
		main, err = setupMain(ctx, env)
		if err != nil {
			add("Setup", "", err)
			needMain = false
		}
	}
	if needMain && want("throughput") {
		body, err := scenarioThroughput(ctx, env, main)
		add("1. Throughput and latency", body, err)
	}
	if needMain && want("tuning") {
		body, err := scenarioTuning(ctx, env, main)
		add("Why hop3 loses, and tuning", body, err)
	}
	if needMain && want("matrix") {
		body, err := scenarioMatrix(ctx, env, main)
		add("8. Appendix D at a fixed rate", body, err)
	}
	if needMain && want("defaults") {
		body, err := scenarioDefaults(ctx, env, main)
		add("9. Defaults under load, and Caddy's footprint", body, err)
	}
	if needMain && want("start") {
		body, err := scenarioStartReload(ctx, env, main)
		add("6. Start and reload", body, err)
	}
	if needMain && want("footprint") {
		body, err := scenarioFootprint(ctx, env, main)
		add("5. Footprint", body, err)
	}
	if needMain && want("zerodowntime") {
		body, err := scenarioZeroDowntime(ctx, env, main)
		add("2. Zero downtime", body, err)
	}
	if needMain && want("push") {
		body, err := scenarioPush(ctx, env, main)
		add("4. Push to live", body, err)
	}
	if want("routing") {
		body, err := scenarioRouting(ctx, env)
		add("3. Hot routing", body, err)
	}
	if want("isolation") {
		logf("measuring what isolation costs")
		body, err := scenarioIsolation(ctx, env)
		add("7. What isolation costs", body, err)
	}
	if want("langs") {
		logf("pushing each language's test app twice")
		body, err := scenarioLangs(ctx, env, langs)
		add("Push per language", body, err)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 1
	}
	sort.SliceStable(sections, func(i, j int) bool { return sectionOrder(sections[i].title) < sectionOrder(sections[j].title) })
	load += "; during the run " + sampler.summary() + "; at the end " + loadAvg()
	report := renderReport(env, main, sections, load, started, only)
	if !filepath.IsAbs(outPath) {
		outPath = filepath.Join(env.repo, outPath)
	}
	if err := os.WriteFile(outPath, []byte(report), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logf("wrote %s in %s", outPath, time.Since(started).Round(time.Second))
	return 0
}

func sectionOrder(title string) string {
	if title == "Why hop3 loses, and tuning" {
		return "1z"
	}
	return title
}

// loadSampler records the 1-minute load average every 10 s, to show how
// much else ran on the machine during the benchmark.
type loadSampler struct {
	mu      sync.Mutex
	samples []float64
}

func sampleLoad(ctx context.Context) *loadSampler {
	s := &loadSampler{}
	go func() {
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for i := 0; i < 360; i++ { // an hour at most
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			var v float64
			if _, err := fmt.Sscanf(loadAvg(), "%f", &v); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, v)
				s.mu.Unlock()
			}
		}
	}()
	return s
}

func (s *loadSampler) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.samples) == 0 {
		return "not sampled"
	}
	sum, hi := 0.0, 0.0
	for _, v := range s.samples {
		sum += v
		hi = max(hi, v)
	}
	return fmt.Sprintf("%.1f on average and %.1f at most (1-min load, sampled every 10 s; the benchmark's own processes account for 2 to 4 of it while load runs)", sum/float64(len(s.samples)), hi)
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func gitRev(repo string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// machine describes the CPU and memory.
func machine() (cpus int, model, mem string) {
	cpus = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/1024/1024)
			}
		}
	}
	return cpus, model, mem
}

// versions of everything measured.
func versions(env *benchEnv) [][2]string {
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "unknown"
		}
		return strings.TrimSpace(strings.Split(string(out), "\n")[0])
	}
	caddy := strings.Fields(run(env.caddyBin, "version"))
	caddyV := "unknown"
	if len(caddy) > 0 {
		caddyV = caddy[0]
	}
	py := filepath.Join(env.venv, "bin", "python")
	return [][2]string{
		{"hop3", gitRev(env.repo)},
		{"Caddy", caddyV},
		{"Granian", strings.TrimPrefix(run(filepath.Join(env.venv, "bin", "granian"), "--version"), "granian ")},
		{"uWSGI", run(filepath.Join(env.venv, "bin", "uwsgi"), "--version")},
		{"nginx", strings.TrimPrefix(run(env.nginxBin, "-v"), "nginx version: nginx/")},
		{"Python", strings.TrimPrefix(run(py, "--version"), "Python ")},
		{"Flask", run(py, "-c", "import importlib.metadata as m; print(m.version('flask'))")},
		{"wrk", strings.Fields(run("wrk", "-v") + " ? ?")[1]},
		{"Go (hop3)", strings.TrimPrefix(run("go", "env", "GOVERSION"), "go")},
		{"Linux", run("uname", "-r")},
	}
}

// splitEnvs parses -ten-caddy: environments separated by ";", each a
// space-separated list of KEY=value.
func splitEnvs(s string) [][]string {
	var out [][]string
	for _, e := range strings.Split(s, ";") {
		if f := strings.Fields(e); len(f) > 0 {
			out = append(out, f)
		}
	}
	return out
}
