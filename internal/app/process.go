package app

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"hop3/buildpacks"
	"hop3/internal/isolation"
	"hop3/procfile"
	"hop3/runtime/sandbox"
	"hop3/runtime/supervisor"
)

// releaseMeta is what a successful build leaves for starting the release
// again later (daemon restart, restart, rollback) without building it.
type releaseMeta struct {
	Packs []string          `json:"packs,omitempty"`
	Venv  string            `json:"venv,omitempty"`
	Env   map[string]string `json:"env,omitempty"` // runtime additions from the buildpacks
	Envs  []string          `json:"envs,omitempty"`
	// Source is the hash of the pushed tree before the build (see provenBy).
	Source string `json:"source,omitempty"`
}

// release is everything needed to run one release of an app.
type release struct {
	app      string
	number   int
	gen      int // which start of this app's processes; unique per daemon run
	dir      string
	procfile *procfile.Procfile
	meta     releaseMeta
	env      map[string]string // the app's environment, without per-process values
	scale    map[string]int
	user     *supervisor.Credential // who the app's processes run as; nil: hop3's user
	wake     bool                   // started by a request to the sleeping app: ready is enough
	proven   bool                   // runs exactly what the live generation has run for longer than its settle time
}

// processName identifies a process to the supervisor.
func processName(app, kind string, index, rel, gen int) string {
	return fmt.Sprintf("%s/%s.%d@v%d.%d", app, kind, index, rel, gen)
}

// releaseSocket is the socket a generation's routed process listens on.
func (m *Manager) releaseSocket(app, kind string, rel, gen int) string {
	return filepath.Join(m.paths.Run(app), fmt.Sprintf("%s.v%d.%d.sock", kind, rel, gen))
}

// durationEnv reads a duration config var given in seconds ("60") or as a
// Go duration ("90s").
func durationEnv(env map[string]string, key string, def time.Duration) time.Duration {
	v := strings.TrimSpace(env[key])
	if v == "" {
		return def
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return d
	}
	return def
}

// Defaults of the config vars that time a switch of generations.
const (
	// DefaultDrainTimeout bounds how long a replaced generation may take to
	// finish its requests (DRAIN_TIMEOUT), as Heroku and Kamal do.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultWSDrainTimeout is how long WebSockets on a replaced asgi
	// generation stay open (WS_DRAIN_TIMEOUT): long enough for a chat or a
	// live view to finish what it is doing, short enough that a few deploys
	// in a row do not leave several generations' memory on a small server.
	DefaultWSDrainTimeout = 2 * time.Minute
	// DefaultSettleTime is how long every new process must stay up before a
	// generation is live (SETTLE_TIME).
	DefaultSettleTime = 3 * time.Second
)

// loopbackHost is what web processes are told to bind to.
const loopbackHost = "127.0.0.1"

// specs lists the processes of a release; kinds, when non-nil, limits them
// to those Procfile entries.
func (m *Manager) specs(r release, kinds map[string]bool) ([]supervisor.Spec, error) {
	var specs []supervisor.Spec
	startTimeout := durationEnv(r.env, "APP_START_TIMEOUT", 60*time.Second)
	stopTimeout := durationEnv(r.env, "STOP_TIMEOUT", 10*time.Second)
	settle := durationEnv(r.env, "SETTLE_TIME", DefaultSettleTime)
	if r.wake || r.proven {
		// A request waits: nothing else serves it, so nothing is kept
		// safe by waiting longer. Or the live generation has already
		// shown that this very release stays up (provenBy).
		settle = 0
	}
	healthHost := r.app + "." + m.cfg.Domain
	base := func(e procfile.Entry, index int, env map[string]string) supervisor.Spec {
		env["PROC_TYPE"] = e.Name
		return supervisor.Spec{
			Name:         processName(r.app, e.Name, index, r.number, r.gen),
			Labels:       labels(r.app, e.Name, index, r.number, r.gen),
			Command:      []string{"/bin/sh", "-c", e.Command},
			Dir:          r.dir,
			LogPath:      m.paths.ProcessLog(r.app, e.Name, index),
			StartTimeout: startTimeout,
			StopTimeout:  stopTimeout,
			SettleTime:   settle,
			Restart:      true,
			User:         r.user,
			Sandbox:      m.sandboxFor(r),
		}
	}
	if kinds == nil || kinds[staticKind] {
		spec, ok, err := m.staticSpec(r)
		if err != nil {
			return nil, err
		}
		if ok {
			specs = append(specs, spec)
		}
	}
	for _, e := range r.procfile.Entries {
		if kinds != nil && !kinds[e.Name] {
			continue
		}
		switch e.Kind {
		case procfile.KindWSGI, procfile.KindASGI:
			// For Granian the scale is its worker count, not a process count.
			workers, pinned := m.granianWorkers(r, e.Name)
			if workers == 0 {
				continue
			}
			spec, err := m.granianSpec(r, e, workers)
			if err != nil {
				return nil, err
			}
			spec.Labels[workersLabel] = strconv.Itoa(workers)
			spec.Labels[scalingLabel] = ScalingAuto
			if pinned {
				spec.Labels[scalingLabel] = ScalingPinned
			}
			spec.StartTimeout, spec.StopTimeout, spec.SettleTime = startTimeout, stopTimeout, settle
			spec.HealthHost = healthHost
			specs = append(specs, spec)
		case procfile.KindPHP:
			if n, ok := r.scale[e.Name]; ok && n == 0 {
				continue
			}
			spec, err := m.phpSpec(r, e)
			if err != nil {
				return nil, err
			}
			spec.StartTimeout, spec.StopTimeout, spec.SettleTime = startTimeout, stopTimeout, settle
			specs = append(specs, spec)
		case procfile.KindCron:
			env := copyEnv(r.env)
			spec := base(e, 1, env)
			spec.Restart = false
			spec.Schedule = e.Cron
			spec.Env = envList(env)
			specs = append(specs, spec)
		case procfile.KindWeb, procfile.KindWorker:
			count := 1
			if n, ok := r.scale[e.Name]; ok {
				count = n
			}
			for i := 1; i <= count; i++ {
				env := copyEnv(r.env)
				spec := base(e, i, env)
				if e.Kind == procfile.KindWeb {
					port, err := freePort()
					if err != nil {
						return nil, err
					}
					env["PORT"] = strconv.Itoa(port)
					// Caddy is the only way in: servers that read these
					// (SvelteKit's adapter-node, Nuxt, Astro: HOST; Next.js
					// standalone: HOSTNAME) listen on loopback only. An
					// app's own config var wins.
					for _, k := range []string{"HOST", "HOSTNAME"} {
						if _, set := r.env[k]; !set {
							env[k] = loopbackHost
						}
					}
					spec.Port = port
					spec.Labels["port"] = strconv.Itoa(port)
					spec.HealthPath = r.env["HEALTHCHECK_PATH"]
					spec.HealthHost = healthHost
				}
				spec.Env = envList(env)
				specs = append(specs, spec)
			}
		}
	}
	for i := range specs {
		specs[i].Labels["uid"] = uidLabel(r.user)
	}
	return specs, nil
}

func (m *Manager) granianSpec(r release, e procfile.Entry, workers int) (supervisor.Spec, error) {
	if r.meta.Venv == "" {
		return supervisor.Spec{}, errors.New("a wsgi or asgi entry needs a Python app (requirements.txt or pyproject.toml)")
	}
	iface := "wsgi"
	if e.Kind == procfile.KindASGI {
		iface = "asgi"
	}
	sock := m.releaseSocket(r.app, e.Name, r.number, r.gen)
	launcher := []string{filepath.Join(r.meta.Venv, "bin", "granian")}
	if oneProcess(iface, workers, r.env) {
		path, err := m.writeRunFile(r.app, "hop3_granian.py", granianLauncher)
		if err != nil {
			return supervisor.Spec{}, err
		}
		launcher = []string{filepath.Join(r.meta.Venv, "bin", "python"), path}
	}
	argv := append(launcher,
		"--interface", iface,
		"--uds", sock,
		"--workers", strconv.Itoa(workers),
		// Caddy speaks HTTP/1.1 to unix upstreams; auto-detection costs throughput.
		"--http", "1",
		// One crashing worker must not take the whole app down.
		"--respawn-failed-workers",
		// Granian's own SIGKILL of workers must not cut a drain short.
		"--workers-kill-timeout", strconv.Itoa(granianKillTimeout(r.env)),
		"--log-level", "info",
	)
	if truthy(r.env["ACCESS_LOG"]) {
		argv = append(argv, "--access-log") // into the process's log, which `logs` shows
	}
	if iface == "wsgi" {
		argv = append(argv, "--no-ws")
		// Granian's default (backpressure/2, 256 threads per worker) lets
		// every connection into Python at once to fight over the GIL; 4
		// threads cut Flask's p99 under wrk from 208 to 56 ms, and 1 does
		// as well there and better at a fixed rate: at 1000 req/s of Flask
		// on 2 cores its median was 2.6 ms against 8.1 ms with 4, and at
		// 100 req/s no worse (BENCHMARKS.md §9). Apps whose views wait on
		// I/O raise it with GRANIAN_THREADS.
		argv = append(argv, "--blocking-threads", strconv.Itoa(blockingThreads(r.env)))
	}
	env := copyEnv(r.env)
	env["PROC_TYPE"] = e.Name
	if iface == "asgi" {
		// Granian runs hop3's wrapper, which runs the app and lets a
		// replaced generation close its WebSockets properly.
		shim, err := m.writeRunFile(r.app, "hop3_asgi.py", asgiShim)
		if err != nil {
			return supervisor.Spec{}, err
		}
		env["HOP3_ASGI_APP"] = e.Command
		env["HOP3_DRAIN_FILE"] = drainFile(sock)
		env["PYTHONPATH"] = strings.TrimSuffix(filepath.Dir(shim)+":"+r.env["PYTHONPATH"], ":")
		argv = append(argv, asgiShimTarget)
	} else {
		argv = append(argv, e.Command)
	}
	// Granian reads GRANIAN_* variables as flags; the ones hop3 sets on the
	// command line win, the others (for example GRANIAN_BACKPRESSURE) pass.
	delete(env, "GRANIAN_WORKERS")
	delete(env, "GRANIAN_THREADS")
	delete(env, oneProcessVar)
	if len(launcher) > 1 {
		// The launcher serves in one process only under the Granian whose
		// internals it was written against; any other runs Granian's CLI.
		env["HOP3_GRANIAN_VERSION"] = buildpacks.DefaultGranianVersion
	}
	// Caddy connects as another user, through its group: the socket must
	// be group-writable. Older Granians ignore the variable.
	env["GRANIAN_UDS_PERMISSIONS"] = fmt.Sprintf("%04o", isolation.SocketMode)
	lbl := labels(r.app, e.Name, 1, r.number, r.gen)
	lbl["socket"], lbl["iface"] = sock, iface
	if iface == "wsgi" {
		lbl[threadsLabel] = strconv.Itoa(blockingThreads(r.env)) // the autoscaler's capacity
	}
	return supervisor.Spec{
		Name:       processName(r.app, e.Name, 1, r.number, r.gen),
		Labels:     lbl,
		Command:    argv,
		Dir:        r.dir,
		Env:        envList(env),
		LogPath:    m.paths.ProcessLog(r.app, e.Name, 1),
		Socket:     sock,
		HealthPath: r.env["HEALTHCHECK_PATH"],
		Restart:    true,
		User:       r.user,
		Sandbox:    m.sandboxFor(r),
	}, nil
}

//go:embed hop3_asgi.py
var asgiShim []byte

//go:embed hop3_granian.py
var granianLauncher []byte

// oneProcessVar is the config var an app sets to 0 to keep Granian's
// manager process for a one-worker wsgi entry.
const oneProcessVar = "GRANIAN_ONE_PROCESS"

// oneProcess tells whether a Granian entry runs through hop3's launcher,
// which serves the one worker in the process hop3 supervises instead of
// under a manager that forks it: hop3 already restarts the process when it
// dies, so the manager only costs memory (about 9 MiB PSS for Flask).
// wsgi only: an asgi generation's drain reads its WebSocket counts from the
// workers, which it tells from the group's leader, Granian's manager
// (webSocketReports); with no manager the leader is the worker.
func oneProcess(iface string, workers int, env map[string]string) bool {
	v, set := env[oneProcessVar]
	return iface == "wsgi" && workers == 1 && (!set || truthy(v))
}

// asgiShimTarget is what Granian imports for an asgi entry; the wrapper
// imports the app named by HOP3_ASGI_APP.
const asgiShimTarget = "hop3_asgi:app"

// writeRunFile puts one of hop3's Python files (the ASGI wrapper, the
// Granian launcher) in the app's run directory, which the app's processes
// can read, and returns its path.
func (m *Manager) writeRunFile(app, name string, data []byte) (string, error) {
	dir := m.paths.Run(app)
	if err := writeAppFile(dir, name, data); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return filepath.Join(dir, name), nil
}

// writeAppFile replaces dir/name with data, readable by all. dir may be the
// app's to write: a fresh temporary file (created exclusively) renamed over
// the name never follows a link the app planted there.
func writeAppFile(dir, name string, data []byte) error {
	f, err := os.CreateTemp(dir, ".hop3-*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o644)); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, name)); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// drainFile is where hop3 tells a replaced asgi generation to close its
// WebSockets; its workers report theirs in drainFile.<pid>.
func drainFile(sock string) string { return sock + ".drain" }

// granianKillTimeout is Granian's --workers-kill-timeout in seconds: past
// the drain timeout, so hop3 decides when the drain ends.
func granianKillTimeout(env map[string]string) int {
	d := durationEnv(env, "DRAIN_TIMEOUT", DefaultDrainTimeout)
	return min(1800, max(1, int((d+time.Second-1)/time.Second)+1))
}

func labels(app, kind string, index, rel, gen int) map[string]string {
	return map[string]string{"app": app, "kind": kind, "index": strconv.Itoa(index),
		"release": strconv.Itoa(rel), "gen": strconv.Itoa(gen)}
}

// startRelease starts the processes of a release (only kinds, when
// non-nil) and waits until each is ready and has stayed up for its settle
// time. They start side by side, so the settle times overlap. On failure it
// stops what it started and returns why, with the failing process's last
// log lines.
func (m *Manager) startRelease(ctx context.Context, r release, kinds map[string]bool) ([]supervisor.Spec, error) {
	if _, err := m.prepareApp(ctx, r.app); err != nil {
		return nil, err
	}
	// A release built before isolation was on is hop3's and open to all.
	if r.user != nil && !isolation.OwnedBy(r.dir, r.user.UID) {
		if err := m.giveRelease(r.dir, r.user); err != nil {
			return nil, err
		}
	}
	specs, err := m.specs(r, kinds)
	if err != nil {
		return nil, err
	}
	// The first failure ends the others' waits: the deploy has failed.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(specs))
	first := -1
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, spec := range specs {
		wg.Go(func() {
			err := m.cfg.Supervisor.Start(sctx, spec)
			mu.Lock()
			defer mu.Unlock()
			errs[i] = err
			if err != nil && first < 0 {
				first = i
				cancel()
			}
		})
	}
	wg.Wait()
	var started []supervisor.Spec
	for i, spec := range specs {
		if errs[i] == nil {
			started = append(started, spec)
		}
	}
	var failure error
	if first >= 0 {
		spec, err := specs[first], errs[first]
		kind := spec.Labels["kind"] + "." + spec.Labels["index"]
		var se *supervisor.StartError
		switch {
		case errors.As(err, &se) && len(se.LogTail) > 0:
			failure = fmt.Errorf("%s did not start: %v; last lines of %s:\n%s", kind, se.Err, se.LogPath, strings.Join(se.LogTail, "\n"))
		case errors.As(err, &se):
			failure = fmt.Errorf("%s did not start: %v", kind, se.Err)
		default:
			failure = fmt.Errorf("%s did not start: %w", kind, err)
		}
	}
	if failure != nil {
		m.stopSpecs(context.WithoutCancel(ctx), started)
		return nil, failure
	}
	return started, nil
}

// exposed lists, per started process, the addresses it listens on that
// other machines can reach: the app was meant to be reached through Caddy
// only.
func (m *Manager) exposed(specs []supervisor.Spec) map[string][]string {
	out := map[string][]string{}
	for _, spec := range specs {
		st, ok := m.cfg.Supervisor.Status(spec.Name)
		if !ok || st.PID == 0 {
			continue
		}
		socks, err := supervisor.GroupSockets(st.PID)
		if err != nil {
			continue
		}
		if addrs := socks.Public(); len(addrs) > 0 {
			out[spec.Labels["kind"]+"."+spec.Labels["index"]] = addrs
		}
	}
	return out
}

func (m *Manager) stopSpecs(ctx context.Context, specs []supervisor.Spec) {
	for _, s := range specs {
		if err := m.cfg.Supervisor.Stop(ctx, s.Name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			m.log.Warn("stop process", "process", s.Name, "err", err)
		}
	}
}

// stopOld stops app's processes of other generations than gen (gen 0 stops
// all of them); kinds, when non-nil, limits it to those kinds.
func (m *Manager) stopOld(ctx context.Context, app string, gen int, kinds map[string]bool) {
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] != app || st.Labels["gen"] == strconv.Itoa(gen) {
			continue
		}
		if kinds != nil && !kinds[st.Labels["kind"]] {
			continue
		}
		if err := m.cfg.Supervisor.Stop(ctx, st.Name); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			m.log.Warn("stop process", "process", st.Name, "err", err)
		}
	}
}

// drainOld hands app's processes of generations other than gen (only
// kinds, when non-nil) to the supervisor to drain in the background: the
// routed ones finish their requests (DRAIN_TIMEOUT) and close their
// WebSockets (WS_DRAIN_TIMEOUT) before they stop; workers get SIGTERM at
// once and STOP_TIMEOUT. It does not wait.
func (m *Manager) drainOld(r release, kinds map[string]bool) {
	drain := durationEnv(r.env, "DRAIN_TIMEOUT", DefaultDrainTimeout)
	wsGrace := durationEnv(r.env, "WS_DRAIN_TIMEOUT", DefaultWSDrainTimeout)
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] != r.app || st.Labels["gen"] == strconv.Itoa(r.gen) || st.State == supervisor.Draining {
			continue
		}
		if kinds != nil && !kinds[st.Labels["kind"]] {
			continue
		}
		// Served processes get SIGTERM before this returns: Granian then
		// closes its idle keep-alive connections, so Caddy's next requests
		// open new ones, to the new generation.
		var d supervisor.Drain
		if st.Labels["socket"] != "" || st.Labels["port"] != "" {
			d.Timeout = drain
		}
		if st.Labels["iface"] == phpIface {
			d.Busy = func(int) bool { return true }
			d.Hold, d.HoldTimeout = stopFPMGracefully, drain
		}
		if file := drainFile(st.Labels["socket"]); st.Labels["iface"] == "asgi" {
			deadline := time.Now().Add(wsGrace)
			d.Busy = func(pgid int) bool {
				if n, _ := webSocketReports(file, pgid); n > 0 {
					return startWebSocketDrain(file, pgid, deadline)
				}
				removeDrainFiles(file)
				return false
			}
			d.Hold, d.HoldTimeout = holdWebSockets(file), wsGrace+2*time.Second
		}
		if err := m.cfg.Supervisor.Drain(st.Name, d); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			m.log.Warn("drain process", "process", st.Name, "err", err)
		}
	}
}

// drainAckTimeout bounds the wait for an asgi generation's workers to
// say they saw the drain file (they look every tenth of a second).
const drainAckTimeout = time.Second

// startWebSocketDrain tells the workers of an asgi generation run through
// hop3's wrapper to close their WebSockets at deadline and to answer HTTP
// with "Connection: close" meanwhile, and waits (briefly) until each says
// it does: until then they would take new requests over the connections
// Caddy keeps. It reports whether the generation must be held.
func startWebSocketDrain(file string, pgid int, deadline time.Time) bool {
	stamp := strconv.FormatFloat(float64(deadline.UnixMilli())/1000, 'f', 3, 64)
	if err := writeAppFile(filepath.Dir(file), filepath.Base(file), []byte(stamp+"\n")); err != nil {
		return false // nothing can tell the workers: stop them now
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	give := time.After(drainAckTimeout)
	for {
		if _, all := webSocketReports(file, pgid); all {
			return true
		}
		select {
		case <-give:
			return true
		case <-t.C:
		}
	}
}

// holdWebSockets returns a Drain.Hold for an asgi generation told to drain
// by startWebSocketDrain: it returns once its workers report no WebSocket
// left.
func holdWebSockets(file string) func(ctx context.Context, pgid int) {
	return func(ctx context.Context, pgid int) {
		defer removeDrainFiles(file)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			if n, _ := webSocketReports(file, pgid); n == 0 {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}
}

// removeDrainFiles removes a generation's drain file and its workers'
// reports.
func removeDrainFiles(file string) {
	reports, _ := filepath.Glob(file + "*")
	for _, f := range reports {
		os.Remove(f)
	}
}

// webSocketReports sums the open WebSockets the workers of group pgid
// report in file.<pid> (a worker that never wrote one never had any), and
// tells whether every worker has said it is draining.
func webSocketReports(file string, pgid int) (open int, allDraining bool) {
	allDraining = true
	for _, pid := range supervisor.GroupPIDs(pgid) {
		if pid == pgid {
			continue // Granian's main process serves nothing
		}
		// The app writes these: no link is followed, no pipe waited on.
		f, err := isolation.OpenInTree(filepath.Dir(file), filepath.Base(file)+"."+strconv.Itoa(pid))
		if err != nil {
			allDraining = false
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(f, 64))
		f.Close()
		fields := strings.Fields(string(b))
		if len(fields) == 0 {
			allDraining = false
			continue
		}
		if v, err := strconv.Atoi(fields[0]); err == nil && v > 0 {
			open += v
		}
		if len(fields) < 2 || fields[1] != "draining" {
			allDraining = false
		}
	}
	return open, allDraining
}

// switchTo points the app's stable paths (web socket, current dir) at a
// release. Each is an atomic rename of a fresh symlink, so Caddy's route
// never changes and no request sees a missing path.
func (m *Manager) switchTo(r release, kinds map[string]bool) error {
	if e, ok := r.procfile.Routed(); ok && (e.Kind == procfile.KindWSGI || e.Kind == procfile.KindASGI || e.Kind == procfile.KindPHP) && (kinds == nil || kinds[e.Name]) {
		target := filepath.Base(m.releaseSocket(r.app, e.Name, r.number, r.gen))
		if err := swapSymlink(target, m.paths.WebSocket(r.app)); err != nil {
			return fmt.Errorf("switch socket: %w", err)
		}
	}
	if err := m.switchStatic(r, kinds); err != nil {
		return err
	}
	rel, err := filepath.Rel(m.paths.AppDir(r.app), r.dir)
	if err != nil {
		return err
	}
	if err := swapSymlink(rel, m.paths.Current(r.app)); err != nil {
		return fmt.Errorf("switch current release: %w", err)
	}
	return nil
}

// staticKind labels an app's static file server among its processes.
const staticKind = "static"

// staticSpec is the app's static file server, when the release serves
// static files (staticMounts): `hop3 serve-static`, run as a process of
// the app (its user) rather than as Caddy or hop3, so it reads the app's
// files with the app's rights alone, and confined beneath each served directory (see
// package staticserve). Caddy proxies the static paths to its socket, which
// switchStatic links from the stable staticSocket as deploys go. Its
// environment is its own, without the app's config: it needs none.
func (m *Manager) staticSpec(r release) (supervisor.Spec, bool, error) {
	mounts, err := m.staticMounts(r)
	if err != nil || len(mounts) == 0 {
		return supervisor.Spec{}, false, err
	}
	js, err := json.Marshal(mounts)
	if err != nil {
		return supervisor.Spec{}, false, err
	}
	sock := m.releaseSocket(r.app, staticKind, r.number, r.gen)
	lbl := labels(r.app, staticKind, 1, r.number, r.gen)
	// A served process: a replaced one finishes its downloads
	// (DRAIN_TIMEOUT).
	lbl["socket"] = sock
	return supervisor.Spec{
		Name:    processName(r.app, staticKind, 1, r.number, r.gen),
		Labels:  lbl,
		Command: []string{m.cfg.Executable, "serve-static", sock, string(js)},
		Dir:     r.dir,
		Env:     []string{"PATH=/usr/bin:/bin", "APP=" + r.app, "PROC_TYPE=" + staticKind, "GOMAXPROCS=1"},
		LogPath: m.paths.ProcessLog(r.app, staticKind, 1),
		Socket:  sock,
		Restart: true,
		User:    r.user,
		Sandbox: m.staticSandbox(r),
	}, true, nil
}

// staticSandbox confines the static file server more than the app's other
// processes: it reads the app's releases (the current link moves between
// them) and DATA_DIR, executes hop3's binary and the system's libraries,
// writes nothing, and keeps its socket in the socket directory.
func (m *Manager) staticSandbox(r release) *supervisor.Sandbox {
	sys := sandbox.System()
	return &supervisor.Sandbox{
		ReadOnly:  slices.Concat(sys.ReadOnly, []string{m.paths.Releases(r.app), m.paths.Data(r.app)}),
		ReadExec:  slices.Concat(sys.ReadExec, []string{m.cfg.Executable}),
		ReadWrite: sys.ReadWrite,
		Shared:    []string{m.paths.Run(r.app)},
	}
}

// switchStatic points the app's stable static socket at the release's
// static file server, or removes it when the release serves no files.
func (m *Manager) switchStatic(r release, kinds map[string]bool) error {
	if kinds != nil && !kinds[staticKind] {
		return nil
	}
	mounts, err := m.staticMounts(r)
	if err != nil {
		return err
	}
	if len(mounts) == 0 {
		if err := os.Remove(m.paths.StaticSocket(r.app)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("switch static socket: %w", err)
		}
		return nil
	}
	target := filepath.Base(m.releaseSocket(r.app, staticKind, r.number, r.gen))
	if err := swapSymlink(target, m.paths.StaticSocket(r.app)); err != nil {
		return fmt.Errorf("switch static socket: %w", err)
	}
	return nil
}

func swapSymlink(target, link string) error {
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

func copyEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env)+4)
	for k, v := range env {
		out[k] = v
	}
	return out
}

func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// expandPath puts a buildpack's PATH prefix in front of the system PATH.
func expandPath(prefix, system string) string {
	return strings.ReplaceAll(prefix, "$PATH", system)
}
