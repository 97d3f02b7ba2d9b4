package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"hop3/internal/isolation"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// releaseMeta is what a successful build leaves for starting the release
// again later (daemon restart, restart, rollback) without building it.
type releaseMeta struct {
	Packs []string          `json:"packs,omitempty"`
	Venv  string            `json:"venv,omitempty"`
	Env   map[string]string `json:"env,omitempty"` // runtime additions from the buildpacks
	Envs  []string          `json:"envs,omitempty"`
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
}

// processName identifies a process to the supervisor.
func processName(app, kind string, index, rel, gen int) string {
	return fmt.Sprintf("%s/%s.%d@v%d.%d", app, kind, index, rel, gen)
}

// releaseSocket is the socket a generation's routed process listens on.
func (m *Manager) releaseSocket(app, kind string, rel, gen int) string {
	return filepath.Join(m.paths.run(app), fmt.Sprintf("%s.v%d.%d.sock", kind, rel, gen))
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

// specs lists the processes of a release; kinds, when non-nil, limits them
// to those Procfile entries.
func (m *Manager) specs(r release, kinds map[string]bool) ([]supervisor.Spec, error) {
	var specs []supervisor.Spec
	startTimeout := durationEnv(r.env, "APP_START_TIMEOUT", 60*time.Second)
	stopTimeout := durationEnv(r.env, "STOP_TIMEOUT", 10*time.Second)
	base := func(e procfile.Entry, index int, env map[string]string) supervisor.Spec {
		env["PROC_TYPE"] = e.Name
		return supervisor.Spec{
			Name:         processName(r.app, e.Name, index, r.number, r.gen),
			Labels:       labels(r.app, e.Name, index, r.number, r.gen),
			Command:      []string{"/bin/sh", "-c", e.Command},
			Dir:          r.dir,
			LogPath:      m.paths.processLog(r.app, e.Name, index),
			StartTimeout: startTimeout,
			StopTimeout:  stopTimeout,
			Restart:      true,
			User:         r.user,
		}
	}
	for _, e := range r.procfile.Entries {
		if kinds != nil && !kinds[e.Name] {
			continue
		}
		switch e.Kind {
		case procfile.KindWSGI, procfile.KindASGI:
			// For Granian the scale is its worker count, not a process count.
			workers, ok := r.scale[e.Name]
			if !ok {
				workers = defaultWorkers(r.env)
			}
			if workers == 0 {
				continue
			}
			spec, err := m.granianSpec(r, e, workers)
			if err != nil {
				return nil, err
			}
			spec.StartTimeout, spec.StopTimeout = startTimeout, stopTimeout
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
					spec.Port = port
					spec.Labels["port"] = strconv.Itoa(port)
					spec.HealthPath = r.env["HEALTHCHECK_PATH"]
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
	argv := []string{
		filepath.Join(r.meta.Venv, "bin", "granian"),
		"--interface", iface,
		"--uds", sock,
		"--workers", strconv.Itoa(workers),
		// Caddy speaks HTTP/1.1 to unix upstreams; auto-detection costs throughput.
		"--http", "1",
		// One crashing worker must not take the whole app down.
		"--respawn-failed-workers",
		"--workers-kill-timeout", "30",
		"--log-level", "info",
	}
	if truthy(r.env["ACCESS_LOG"]) {
		argv = append(argv, "--access-log") // into the process's log, which `logs` shows
	}
	if iface == "wsgi" {
		argv = append(argv, "--no-ws")
		// Granian's default (backpressure/2, 256 threads per worker) lets
		// every connection into Python at once to fight over the GIL:
		// 4 threads cut Flask's p99 from 208 to 56 ms (BENCHMARKS.md) and
		// leave room for views that wait on I/O.
		threads := 4
		if n, err := strconv.Atoi(r.env["GRANIAN_THREADS"]); err == nil && n > 0 {
			threads = n
		}
		argv = append(argv, "--blocking-threads", strconv.Itoa(threads))
	}
	argv = append(argv, e.Command)
	env := copyEnv(r.env)
	env["PROC_TYPE"] = e.Name
	// Granian reads GRANIAN_* variables as flags; the ones hop3 sets on the
	// command line win, the others (for example GRANIAN_BACKPRESSURE) pass.
	delete(env, "GRANIAN_WORKERS")
	delete(env, "GRANIAN_THREADS")
	// Caddy connects as another user, through its group: the socket must
	// be group-writable. Older Granians ignore the variable.
	env["GRANIAN_UDS_PERMISSIONS"] = "0660"
	return supervisor.Spec{
		Name:       processName(r.app, e.Name, 1, r.number, r.gen),
		Labels:     labels(r.app, e.Name, 1, r.number, r.gen),
		Command:    argv,
		Dir:        r.dir,
		Env:        envList(env),
		LogPath:    m.paths.processLog(r.app, e.Name, 1),
		Socket:     sock,
		HealthPath: r.env["HEALTHCHECK_PATH"],
		Restart:    true,
		User:       r.user,
	}, nil
}

// defaultWorkers is Granian's worker count when the app sets none: enough
// to use a small server's cores without crowding it.
func defaultWorkers(env map[string]string) int {
	for _, k := range []string{"GRANIAN_WORKERS", "WEB_CONCURRENCY"} {
		if n, err := strconv.Atoi(env[k]); err == nil && n > 0 {
			return n
		}
	}
	return min(2, runtime.NumCPU())
}

func labels(app, kind string, index, rel, gen int) map[string]string {
	return map[string]string{"app": app, "kind": kind, "index": strconv.Itoa(index),
		"release": strconv.Itoa(rel), "gen": strconv.Itoa(gen)}
}

// startRelease starts the processes of a release (only kinds, when
// non-nil) and waits until each is ready. On failure it stops what it
// started and returns why.
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
	var started []supervisor.Spec
	for _, spec := range specs {
		if err := m.cfg.Supervisor.Start(ctx, spec); err != nil {
			m.stopSpecs(context.WithoutCancel(ctx), started)
			kind := spec.Labels["kind"] + "." + spec.Labels["index"]
			var se *supervisor.StartError
			if errors.As(err, &se) && len(se.LogTail) > 0 {
				return nil, fmt.Errorf("%s did not start: %v; last lines of %s:\n%s", kind, se.Err, se.LogPath, strings.Join(se.LogTail, "\n"))
			}
			return nil, fmt.Errorf("%s did not start: %w", kind, err)
		}
		started = append(started, spec)
	}
	return started, nil
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

// switchTo points the app's stable paths (web socket, current dir) at a
// release. Each is an atomic rename of a fresh symlink, so Caddy's route
// never changes and no request sees a missing path.
func (m *Manager) switchTo(r release, kinds map[string]bool) error {
	if e, ok := r.procfile.Routed(); ok && (e.Kind == procfile.KindWSGI || e.Kind == procfile.KindASGI) && (kinds == nil || kinds[e.Name]) {
		target := filepath.Base(m.releaseSocket(r.app, e.Name, r.number, r.gen))
		if err := swapSymlink(target, m.paths.webSocket(r.app)); err != nil {
			return fmt.Errorf("switch socket: %w", err)
		}
	}
	rel, err := filepath.Rel(m.paths.appDir(r.app), r.dir)
	if err != nil {
		return err
	}
	if err := swapSymlink(rel, m.paths.current(r.app)); err != nil {
		return fmt.Errorf("switch current release: %w", err)
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("allocate port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
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
