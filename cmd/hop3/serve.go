package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/buildpacks"
	"hop3/bytesize"
	"hop3/gitserver"
	"hop3/internal/addons"
	"hop3/internal/app"
	"hop3/internal/appname"
	"hop3/internal/commands"
	"hop3/internal/isolation"
	"hop3/internal/layout"
	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

type serveConfig struct {
	root, sshAddr, httpAddr, httpsAddr, domain string
	tls, acmeEmail, acmeCA                     string
	caddyBin, caddyAdmin, uv, cacheDir         string
	logLevel                                   string
	maxPushSize                                int64
	maxReleaseSize                             int64
	maxStartups                                gitserver.Startups
	metricsAddr                                string
	isolation                                  string
	uidBase                                    uint
	addonBackups                               string
	sandbox                                    string
	sleepAfter                                 time.Duration
	workerBudget                               int

	acmeCARoot, acmeEABKeyID, acmeEABHMAC string
	acmeFallback                          []string

	tlsOnDemand bool
	acmeDNS     string

	caddyEnv []string // Go runtime settings of the Caddy hop3 runs (caddyGoEnv)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	defHTTP := ":8080"
	if os.Geteuid() == 0 {
		defHTTP = ":80"
	}
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.root, "root", envDefault("root", defaultRoot()), "state directory; everything hop3 writes lives under it (HOP3_ROOT)")
	fs.StringVar(&c.sshAddr, "ssh-addr", envDefault("ssh-addr", ":2222"), "SSH listen address (HOP3_SSH_ADDR)")
	fs.StringVar(&c.httpAddr, "http-addr", envDefault("http-addr", defHTTP), "where Caddy serves apps over HTTP (HOP3_HTTP_ADDR)")
	fs.StringVar(&c.httpsAddr, "https-addr", envDefault("https-addr", ":443"), "where Caddy serves apps over HTTPS when --tls is not off (HOP3_HTTPS_ADDR)")
	fs.StringVar(&c.domain, "domain", envDefault("domain", "localhost"), "apps answer at <app>.<domain> (HOP3_DOMAIN)")
	fs.StringVar(&c.tls, "tls", envDefault("tls", "off"), "off, internal or acme (HOP3_TLS)")
	fs.StringVar(&c.acmeEmail, "acme-email", envDefault("acme-email", ""), "contact for the ACME CA (HOP3_ACME_EMAIL)")
	fs.StringVar(&c.acmeCA, "acme-ca", envDefault("acme-ca", ""), "ACME directory URL, e.g. a staging CA (HOP3_ACME_CA)")
	fs.StringVar(&c.acmeCARoot, "acme-ca-root", envDefault("acme-ca-root", ""), "PEM file of the roots the ACME server's certificate chains to, for a private CA (HOP3_ACME_CA_ROOT)")
	fs.StringVar(&c.acmeEABKeyID, "acme-eab-key-id", envDefault("acme-eab-key-id", ""), "External Account Binding key id the ACME CA gave (HOP3_ACME_EAB_KEY_ID)")
	fs.StringVar(&c.acmeEABHMAC, "acme-eab-hmac", envDefault("acme-eab-hmac", ""), "External Account Binding HMAC key, base64url; prefer the variable, which ps does not show (HOP3_ACME_EAB_HMAC)")
	fs.Func("acme-ca-fallback", "ACME directory URLs tried in order when --acme-ca fails, comma-separated (HOP3_ACME_CA_FALLBACK)", func(v string) error {
		c.acmeFallback = nil
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u == "" {
				continue
			}
			if err := router.ValidateACMEURL(u); err != nil {
				return err
			}
			c.acmeFallback = append(c.acmeFallback, u)
		}
		return nil
	})
	if v, ok := os.LookupEnv("HOP3_ACME_CA_FALLBACK"); ok {
		if err := fs.Set("acme-ca-fallback", v); err != nil {
			return usageError("HOP3_ACME_CA_FALLBACK: %v", err)
		}
	}
	fs.BoolVar(&c.tlsOnDemand, "tls-on-demand", false, "get an app host's certificate at its first TLS handshake, only for hosts an app's route claims (HOP3_TLS_ON_DEMAND)")
	if v := envDefault("tls-on-demand", ""); v != "" {
		if err := fs.Set("tls-on-demand", v); err != nil {
			return usageError("HOP3_TLS_ON_DEMAND: %v", err)
		}
	}
	fs.StringVar(&c.acmeDNS, "acme-dns", envDefault("acme-dns", ""), "Caddy DNS provider module (e.g. cloudflare) for one wildcard certificate *.<domain> through DNS-01; its settings come from HOP3_ACME_DNS_<KEY> variables (HOP3_ACME_DNS)")
	fs.StringVar(&c.caddyBin, "caddy-bin", envDefault("caddy-bin", ""), "Caddy binary (HOP3_CADDY_BIN; default: .tools/bin/caddy beside hop3, then PATH)")
	fs.StringVar(&c.caddyAdmin, "caddy-admin", envDefault("caddy-admin", ""), "use a Caddy someone else runs, through its admin API (unix//path/admin.sock or http://127.0.0.1:2019); hop3 then manages only its own server there (HOP3_CADDY_ADMIN)")
	fs.StringVar(&c.uv, "uv", envDefault("uv", ""), "uv binary for Python builds (HOP3_UV)")
	fs.StringVar(&c.cacheDir, "cache-dir", envDefault("cache-dir", ""), "shared build caches (uv, npm, go); default <root>/cache (HOP3_CACHE_DIR)")
	fs.StringVar(&c.logLevel, "log-level", envDefault("log-level", "info"), "debug, info, warn or error (HOP3_LOG_LEVEL)")
	fs.StringVar(&c.metricsAddr, "metrics-addr", envDefault("metrics-addr", ""), "serve Prometheus metrics here, e.g. 127.0.0.1:9323; empty: off (HOP3_METRICS_ADDR)")
	fs.StringVar(&c.isolation, "isolation", envDefault("isolation", "auto"), "auto: run each app as its own user when hop3 may switch users; off: every app as hop3's user (HOP3_ISOLATION)")
	fs.StringVar(&c.addonBackups, "addon-backups", envDefault("addon-backups", addons.DefaultBackupSchedule), "when every add-on is backed up: five-field cron in the server's time zone, or off (HOP3_ADDON_BACKUPS)")
	fs.UintVar(&c.uidBase, "uid-base", 0, "first uid of hop3's range: Caddy's; app n runs as base+n (HOP3_UID_BASE; default 62000)")
	if v, ok := os.LookupEnv("HOP3_UID_BASE"); ok {
		if err := fs.Set("uid-base", v); err != nil {
			return usageError("HOP3_UID_BASE: %v", err)
		}
	}
	fs.StringVar(&c.sandbox, "sandbox", envDefault("sandbox", "auto"), "auto or off: confine app processes' file access with Landlock where the kernel offers it (HOP3_SANDBOX)")
	fs.Func("max-push-size", "largest push accepted, e.g. 1GiB or 500MB; 0: no limit (HOP3_MAX_PUSH_SIZE; default 1GiB)", func(v string) error {
		n, err := bytesize.Parse(v)
		c.maxPushSize = n
		if err == nil && n == 0 {
			c.maxPushSize = -1
		}
		return err
	})
	c.maxReleaseSize = 2 << 30
	fs.Func("max-release-size", "largest checkout of a release, e.g. 2GiB; 0: no cap; an app's MAX_RELEASE_SIZE may lower it (HOP3_MAX_RELEASE_SIZE; default 2GiB)", func(v string) error {
		n, err := bytesize.Parse(v)
		c.maxReleaseSize = n
		return err
	})
	if v, ok := os.LookupEnv("HOP3_MAX_RELEASE_SIZE"); ok {
		if err := fs.Set("max-release-size", v); err != nil {
			return usageError("HOP3_MAX_RELEASE_SIZE: %v", err)
		}
	}
	fs.Func("max-startups", "SSH connections not authenticated yet, as start:rate:full: random early drop from start, all refused at full (HOP3_MAX_STARTUPS; default 64:30:128)", func(v string) error {
		st, err := gitserver.ParseStartups(v)
		c.maxStartups = st
		return err
	})
	if v, ok := os.LookupEnv("HOP3_MAX_STARTUPS"); ok {
		if err := fs.Set("max-startups", v); err != nil {
			return usageError("HOP3_MAX_STARTUPS: %v", err)
		}
	}
	fs.Func("sleep-after", "stop an app's processes after it was idle this long, until its next request, e.g. 15m; 0: never; an app's SLEEP_AFTER wins (HOP3_SLEEP_AFTER; default 0)", func(v string) error {
		d, err := app.ParseSleepAfter(v)
		if err != nil {
			return errors.New("use a duration (15m, 1h) or 0 for never")
		}
		c.sleepAfter = d
		return nil
	})
	if v, ok := os.LookupEnv("HOP3_SLEEP_AFTER"); ok {
		if err := fs.Set("sleep-after", v); err != nil {
			return usageError("HOP3_SLEEP_AFTER: %v", err)
		}
	}
	fs.Func("worker-budget", "Granian workers all apps may run together: auto (two per core, fewer when memory is short) or a number (HOP3_WORKER_BUDGET; default auto)", func(v string) error {
		n, err := app.ParseWorkerBudget(v)
		c.workerBudget = n
		return err
	})
	if v, ok := os.LookupEnv("HOP3_WORKER_BUDGET"); ok {
		if err := fs.Set("worker-budget", v); err != nil {
			return usageError("HOP3_WORKER_BUDGET: %v", err)
		}
	}
	if v, ok := os.LookupEnv("HOP3_MAX_PUSH_SIZE"); ok {
		if err := fs.Set("max-push-size", v); err != nil {
			return usageError("HOP3_MAX_PUSH_SIZE: %v", err)
		}
	}
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("serve takes no arguments")
	}
	if c.caddyBin == "" {
		c.caddyBin = findTool("caddy")
	}
	caddyEnv, err := caddyGoEnv(os.Getenv, runtime.NumCPU())
	if err != nil {
		return err
	}
	c.caddyEnv = caddyEnv
	if c.uv == "" {
		c.uv = findTool("uv")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return usageError("bad --log-level %q", c.logLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDaemon(ctx, c, logger, stdout)
}

func runDaemon(ctx context.Context, c serveConfig, logger *slog.Logger, stdout io.Writer) error {
	root, err := filepath.Abs(c.root)
	if err != nil {
		return err
	}
	if c.uidBase == 0 {
		c.uidBase = isolation.DefaultBase
	}
	iso, err := isolation.New(c.isolation, uint32(c.uidBase))
	if err != nil {
		return usageError("%v", err)
	}
	if w := iso.Warning(); w != "" {
		fmt.Fprintln(stdout, "hop3: "+w)
	}
	// Nothing under the root is for other users: closed from the start,
	// whoever created it (see app.New for what apps may pass through).
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create root: %w", err)
	}
	tlsMode, err := router.ParseTLSMode(c.tls)
	if err != nil {
		return usageError("%v", err)
	}
	st, err := openStore(root)
	if err != nil {
		return err
	}
	defer st.Close()

	// A previous hop3 that was killed may have left its processes running.
	pidDir := layout.New(root).PIDs()
	if n, err := supervisor.CleanupOrphans(pidDir, logger); err != nil {
		logger.Warn("clean up processes of a previous run", "component", "hop3", "err", err)
	} else if n > 0 {
		logger.Warn("stopped processes left by a previous run", "component", "hop3", "count", n)
	}
	supOpts := supervisor.Options{PIDDir: pidDir, Logger: logger}
	if supOpts.SandboxExec, err = sandboxWrapper(c.sandbox, logger); err != nil {
		return err
	}
	if clock, ok := testClock(); ok {
		supOpts.Clock = clock
	}
	sup, err := supervisor.New(supOpts)
	if err != nil {
		return err
	}

	// The edge's sockets are bound here, once; every Caddy hop3 starts
	// inherits them.
	edge, err := newEdge(ctx, c, root, tlsMode, iso, logger)
	if err != nil {
		return err
	}
	defer edge.close()
	httpAddr, rt, adminSock := edge.opts.HTTPAddr, edge.rt, edge.adminSock
	certs := edge.certs()
	ms, err := startMetrics(ctx, c.metricsAddr, sup, rt, adminSock, certs, logger)
	if err != nil {
		return err
	}
	defer ms.close()

	// hop3's own binary: git runs it as the pre-receive hook, and it
	// serves each app's static files.
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find hop3's executable: %w", err)
	}
	mgr, err := app.New(app.Config{
		Root:           root,
		CacheDir:       c.cacheDir,
		Domain:         c.domain,
		PublicHTTPAddr: httpAddr,
		Tools:          buildpacks.Tools{UV: c.uv},
		Store:          st,
		Router:         rt,
		Supervisor:     sup,
		Logger:         logger,
		Observer:       ms.observer(),
		MaxReleaseSize: c.maxReleaseSize,
		Isolation:      iso,
		Executable:     exe,

		PublicHTTPSAddr: edge.publicHTTPS(),
		Certs:           certs,
		SleepAfter:      c.sleepAfter,
	})
	if err != nil {
		return err
	}
	adm, err := newAddons(root, sup, st, iso, c.addonBackups, logger)
	if err != nil {
		return err
	}
	ms.setAddons(adm)
	dispatcher, err := commands.New(commands.Config{
		Addons:         adm,
		Backend:        mgr,
		Store:          st,
		Root:           root,
		Domain:         c.domain,
		Version:        version,
		CaddyBin:       c.caddyBin,
		GranianVersion: buildpacks.DefaultGranianVersion,
		Logger:         logger,

		Certs: certs,
	})
	if err != nil {
		return err
	}

	// Caddy boots with every app's route in its first config: one load.
	routes, err := mgr.Routes(ctx)
	if err != nil {
		return err
	}
	caddy, err := edge.start(ctx, c, routes, logger)
	if err != nil {
		return err
	}
	ms.setCaddy(caddy)
	defer func() {
		if caddy == nil {
			// Someone else's Caddy keeps hop3's server, and runs on.
			return
		}
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := caddy.Stop(sctx); err != nil {
			logger.Warn("stop caddy", "component", "hop3", "err", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := sup.StopAll(sctx); err != nil {
			logger.Warn("stop processes", "component", "hop3", "err", err)
		}
	}()
	procEvents, unsubscribe := sup.Subscribe()
	defer unsubscribe()
	go mgr.RecordProcessEvents(ctx, procEvents)
	ms.setDisk(mgr.DiskUsages)
	go mgr.WatchDisk(ctx, app.DiskRefresh)
	// Add-ons first: apps expect their databases when they start.
	if err := adm.Restore(ctx); err != nil {
		logger.Error("some add-ons did not come back", "component", "hop3", "err", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		adm.Stop(sctx)
	}()
	if err := mgr.Restore(ctx); err != nil {
		logger.Error("some apps did not come back", "component", "hop3", "err", err)
	}
	go mgr.WatchSleep(ctx, sleepPoll())
	// Tests shorten the autoscaler's interval; operators have no need to.
	interval, _ := time.ParseDuration(os.Getenv("HOP3_TEST_AUTOSCALE_INTERVAL"))
	go mgr.Autoscale(ctx, app.AutoscaleOptions{Budget: c.workerBudget, Interval: interval})

	paths := layout.New(root)
	ssh, err := gitserver.New(gitserver.Config{
		HostKeyPath: layout.New(root).HostKey(),
		MaxPushSize: c.maxPushSize,
		MaxStartups: c.maxStartups,
		Keys:        storeKeys{st},
		Deployer:    mgr,
		Repos: gitserver.Repos{
			Dir:        paths.Repo,
			HooksDir:   paths.GitHooks(),
			GatesDir:   paths.PushGates(),
			Executable: exe,
		},
		Commands:  dispatcher,
		ValidName: appname.Validate,
		Color:     ui.ColorFor,
		Logger:    logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.sshAddr)
	if err != nil {
		return fmt.Errorf("listen for ssh: %w", err)
	}
	ctl, ctlPath, err := listenControl(root)
	if err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(ctlPath)
	serveErr := make(chan error, 2)
	go func() { serveErr <- ssh.Serve(ln) }()
	go func() { serveErr <- ssh.ServeLocal(ctl) }()

	fmt.Fprintf(stdout, "hop3 ready: ssh=%s http=%s root=%s%s%s%s\n", ln.Addr(), httpAddr, root, ms.readyNote(), edge.readyNote(), isolationNote(iso))
	logger.Info("ready", "component", "hop3", "ssh", ln.Addr().String(), "http", httpAddr, "root", root, "caddy", c.caddyBin, "isolation", iso.On)
	if err := writeIsolationState(root, iso); err != nil {
		logger.Warn("record isolation state for doctor", "component", "hop3", "err", err)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("ssh server: %w", err)
		}
	}
	logger.Info("shutting down", "component", "hop3")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return ssh.Shutdown(sctx)
}

// caddyGoEnv is the Go runtime settings of the Caddy hop3 runs, each
// overridable from hop3's environment (HOP3_CADDY_GOMAXPROCS,
// HOP3_CADDY_GOGC). The proxy competes with the apps for CPU: on 2 cores
// GOMAXPROCS=1 (half the cores) gave more throughput through Caddy than the
// default, and GOGC=400 (a GC every 5× the live heap instead of 2×) the
// steadiest tail with ten apps behind it, for about 15 MiB more after load
// (BENCHMARKS.md §8 and §9).
func caddyGoEnv(getenv func(string) string, cores int) ([]string, error) {
	procs := strconv.Itoa(max(1, cores/2))
	if v := strings.TrimSpace(getenv("HOP3_CADDY_GOMAXPROCS")); v != "" {
		if n, err := strconv.Atoi(v); err != nil || n < 1 {
			return nil, usageError("HOP3_CADDY_GOMAXPROCS=%q: want a count of threads, 1 or more", v)
		}
		procs = v
	}
	gogc := "400"
	if v := strings.TrimSpace(getenv("HOP3_CADDY_GOGC")); v != "" {
		if n, err := strconv.Atoi(v); v != "off" && (err != nil || n < 1) {
			return nil, usageError("HOP3_CADDY_GOGC=%q: want a percentage, 1 or more, or off", v)
		}
		gogc = v
	}
	return []string{"GOMAXPROCS=" + procs, "GOGC=" + gogc}, nil
}

// newAddons makes the add-on manager: Redis add-ons run as their apps'
// users, PostgreSQL as Debian's postgres system user (see addons.SystemUser).
func newAddons(root string, sup *supervisor.Supervisor, st *store.Store, iso isolation.Policy, backups string, logger *slog.Logger) (*addons.Manager, error) {
	var pgUser *supervisor.Credential
	if iso.On || os.Geteuid() == 0 {
		pgUser = addons.SystemUser()
	}
	var schedule supervisor.Schedule
	if backups != "off" {
		s, err := procfile.ParseCron(backups)
		if err != nil {
			return nil, usageError("--addon-backups: %v", err)
		}
		schedule = s
	}
	return addons.New(addons.Config{
		BackupSchedule: schedule,
		Root:           root,
		Supervisor:     sup,
		PostgresUser:   pgUser,
		Logger:         logger,
		AppUser: func(ctx context.Context, name string) (*supervisor.Credential, error) {
			n, err := st.AppNumber(ctx, name)
			if err != nil {
				return nil, err
			}
			return iso.User(n), nil
		},
	})
}

// listenControl opens <root>/control.sock, through which `hop3 COMMAND` on
// the server reaches the daemon as an admin: its mode (0600) is the
// credential. It is bound inside the private ssh directory, made 0600 and
// only then moved into place, so it is never reachable with wider
// permissions.
func listenControl(root string) (net.Listener, string, error) {
	paths := layout.New(root)
	path := paths.Control()
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return nil, "", fmt.Errorf("another hop3 is running on %s (%s answers)", root, path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("remove stale control socket: %w", err)
	}
	if err := os.MkdirAll(paths.SSH(), 0o700); err != nil {
		return nil, "", err
	}
	tmp := paths.ControlStaging()
	os.Remove(tmp)
	l, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, "", fmt.Errorf("listen on control socket: %w", err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		return nil, "", fmt.Errorf("control socket: %w", err)
	}
	return l, path, nil
}

// isolationNote is the ready line's word on who apps run as.
func isolationNote(p isolation.Policy) string {
	if p.On {
		return fmt.Sprintf(" isolation=uid%d+", p.Base+1)
	}
	return " isolation=OFF"
}

// writeIsolationState records, for `hop3 doctor`, whether the running
// daemon isolates apps: doctor may run as another user than the daemon.
func writeIsolationState(root string, p isolation.Policy) error {
	state := "on\n"
	if !p.On {
		state = "off " + p.Why + "\n"
	}
	return os.WriteFile(layout.New(root).IsolationState(), []byte(state), 0o600)
}
