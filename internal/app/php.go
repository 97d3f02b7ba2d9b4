package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/buildpacks"
	"hop3/internal/router"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// phpIface labels a php-fpm master among an app's processes.
const phpIface = "php"

// Defaults of php-fpm's pool: small, for a small server shared by apps.
const (
	defaultFPMMaxChildren = 5
	defaultFPMMaxRequests = 500
	maxFPMChildren        = 1000
)

// phpSettings are the config vars that shape a PHP app's php-fpm pool.
type phpSettings struct {
	docRoot     string // PHP_DOCUMENT_ROOT; empty: the php entry's
	maxChildren int    // PHP_FPM_MAX_CHILDREN
	maxRequests int    // PHP_FPM_MAX_REQUESTS; 0 never recycles a worker
}

// readPHPSettings reads and checks the PHP config vars, with one line per
// mistake.
func readPHPSettings(env map[string]string) (phpSettings, error) {
	s := phpSettings{maxChildren: defaultFPMMaxChildren, maxRequests: defaultFPMMaxRequests}
	if v := strings.TrimSpace(env["PHP_DOCUMENT_ROOT"]); v != "" {
		if err := procfile.CheckDir(v); err != nil {
			return s, fmt.Errorf("PHP_DOCUMENT_ROOT %w", err)
		}
		s.docRoot = filepath.Clean(v)
	}
	for _, n := range []struct {
		key      string
		dst      *int
		min, max int
	}{
		{"PHP_FPM_MAX_CHILDREN", &s.maxChildren, 1, maxFPMChildren},
		{"PHP_FPM_MAX_REQUESTS", &s.maxRequests, 0, 1 << 30},
	} {
		v := strings.TrimSpace(env[n.key])
		if v == "" {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < n.min || i > n.max {
			return s, fmt.Errorf("%s %q: use a whole number from %d to %d", n.key, v, n.min, n.max)
		}
		*n.dst = i
	}
	return s, nil
}

// phpDocRoot is the document root of a release's php entry, relative to
// the release.
func phpDocRoot(env map[string]string, e procfile.Entry) string {
	if s, err := readPHPSettings(env); err == nil && s.docRoot != "" {
		return s.docRoot
	}
	return filepath.Clean(e.Command)
}

// fpmConfig is a php-fpm configuration file: one pool, in the foreground,
// logging to standard error, which the supervisor writes to the app's log.
type fpmConfig struct {
	socket      string
	dir         string // the release: the pool's working directory
	tmpDir      string // uploads and sessions
	maxChildren int
	maxRequests int
	accessLog   bool // ACCESS_LOG: a line per request into the app's log
	// graceful bounds how long a graceful stop (SIGQUIT) lets a worker
	// finish its request.
	graceful time.Duration
}

// render writes the file. The socket is group-writable: Caddy connects
// through the group of the app's run directory. clear_env = no passes the
// app's environment (its config vars) to the workers, as Granian and web
// processes get it.
func (c fpmConfig) render() []byte {
	start := min(2, c.maxChildren)
	maxSpare := min(3, c.maxChildren)
	lines := []string{
		"; Written by hop3 at every start; edits are lost.",
		"[global]",
		"error_log = /proc/self/fd/2",
		"log_limit = 8192",
		"daemonize = no",
		"process_control_timeout = " + strconv.Itoa(max(1, int((c.graceful+time.Second-1)/time.Second))) + "s",
		"",
		"[app]",
		"listen = " + c.socket,
		"listen.mode = 0660",
		"pm = dynamic",
		"pm.max_children = " + strconv.Itoa(c.maxChildren),
		"pm.start_servers = " + strconv.Itoa(start),
		"pm.min_spare_servers = 1",
		"pm.max_spare_servers = " + strconv.Itoa(maxSpare),
		"pm.max_requests = " + strconv.Itoa(c.maxRequests),
		"chdir = " + c.dir,
		"clear_env = no",
		"catch_workers_output = yes",
		"decorate_workers_output = no",
		"php_admin_value[error_log] = /proc/self/fd/2",
		"php_admin_flag[log_errors] = on",
	}
	if c.accessLog {
		// The URI the client asked for, not the script it ran.
		lines = append(lines, "access.log = /proc/self/fd/2", `access.format = "%m %{REQUEST_URI}e %s %{mili}dms"`)
	}
	if c.tmpDir != "" {
		lines = append(lines,
			"php_admin_value[upload_tmp_dir] = "+c.tmpDir,
			"php_admin_value[sys_temp_dir] = "+c.tmpDir,
			"php_value[session.save_path] = "+c.tmpDir)
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// phpSpec is the app's php-fpm master, run like Granian: one per
// generation, on the generation's socket, ready once the socket accepts,
// restarted with backoff. It runs as the app's user; only a hop3 running
// as root with no per-app users runs it as root, which php-fpm wants
// confirmed (-R).
func (m *Manager) phpSpec(r release, e procfile.Entry) (supervisor.Spec, error) {
	settings, err := readPHPSettings(r.env)
	if err != nil {
		return supervisor.Spec{}, err
	}
	root := phpDocRoot(r.env, e)
	if info, err := os.Stat(filepath.Join(r.dir, root)); err != nil || !info.IsDir() {
		return supervisor.Spec{}, fmt.Errorf("the PHP document root %s is not a directory of the app (php: in the Procfile, or PHP_DOCUMENT_ROOT)", root)
	}
	fpm, err := buildpacks.FindPHPFPM("", r.env["PATH"])
	if err != nil {
		return supervisor.Spec{}, err
	}
	sock := m.releaseSocket(r.app, e.Name, r.number, r.gen)
	conf := fpmConfig{
		socket:      sock,
		dir:         r.dir,
		tmpDir:      r.env["TMPDIR"],
		maxChildren: settings.maxChildren,
		maxRequests: settings.maxRequests,
		accessLog:   truthy(r.env["ACCESS_LOG"]),
		graceful:    durationEnv(r.env, "DRAIN_TIMEOUT", DefaultDrainTimeout),
	}
	name := fmt.Sprintf("php-fpm.v%d.%d.conf", r.number, r.gen)
	m.removeFPMConfigs(r.app)
	if err := writeAppFile(m.paths.Run(r.app), name, conf.render()); err != nil {
		return supervisor.Spec{}, fmt.Errorf("write php-fpm config: %w", err)
	}
	path := filepath.Join(m.paths.Run(r.app), name)
	argv := []string{fpm, "--nodaemonize", "--fpm-config", path}
	if conf.tmpDir != "" {
		// OPcache makes its lock file at startup, in /tmp unless told:
		// closed to a confined app.
		argv = append(argv, "-d", "opcache.lockfile_path="+conf.tmpDir)
	}
	if r.user == nil && os.Geteuid() == 0 {
		argv = append(argv, "--allow-to-run-as-root")
	}
	env := copyEnv(r.env)
	env["PROC_TYPE"] = e.Name
	lbl := labels(r.app, e.Name, 1, r.number, r.gen)
	lbl["socket"], lbl["iface"], lbl["conf"] = sock, phpIface, path
	sb := m.sandboxFor(r)
	// php-fpm reads its php.ini and the extensions' settings there.
	sb.ReadOnly = append(slices.Clone(sb.ReadOnly), "/etc/php")
	return supervisor.Spec{
		Name:    processName(r.app, e.Name, 1, r.number, r.gen),
		Labels:  lbl,
		Command: argv,
		Dir:     r.dir,
		Env:     envList(env),
		LogPath: m.paths.ProcessLog(r.app, e.Name, 1),
		Socket:  sock,
		Restart: true,
		User:    r.user,
		Sandbox: sb,
	}, nil
}

// removeFPMConfigs removes the php-fpm config files of app that no
// supervised process uses: a php-fpm that restarts reads its file again.
func (m *Manager) removeFPMConfigs(app string) {
	files, _ := filepath.Glob(filepath.Join(m.paths.Run(app), "php-fpm.v*.conf"))
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] == app {
			files = slices.DeleteFunc(files, func(f string) bool { return f == st.Labels["conf"] })
		}
	}
	for _, f := range files {
		os.Remove(f)
	}
}

// stopFPMGracefully is the Drain.Hold of a replaced php-fpm: SIGQUIT asks
// the master to let each worker finish its request (bounded by
// process_control_timeout) and exit, where SIGTERM would cut them off. It
// returns when the drain ends, which the master's exit ends.
func stopFPMGracefully(ctx context.Context, pid int) {
	if err := syscall.Kill(pid, syscall.SIGQUIT); err != nil && !errors.Is(err, syscall.ESRCH) {
		return
	}
	<-ctx.Done()
}

// phpRoute fills in how Caddy reaches a PHP app: php-fpm through the
// stable socket link, the document root through the current release link,
// so a deploy changes nothing in Caddy.
func (m *Manager) phpRoute(route *router.Route, r release, e procfile.Entry) {
	route.Upstreams = []string{"unix/" + m.paths.WebSocket(r.app)}
	route.PHPRoot = filepath.Join(m.paths.Current(r.app), phpDocRoot(r.env, e))
}
