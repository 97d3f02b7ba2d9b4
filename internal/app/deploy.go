package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"hop3/buildpacks"
	"hop3/internal/isolation"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// PreparePush holds app for one push until done is called, creating it
// (record, directories, repository) on first use; it says on out when it
// waits for another push, and why it fails.
func (m *Manager) PreparePush(ctx context.Context, app string, w io.Writer, color bool) (done func(), err error) {
	out := ui.New(w, color)
	unlock, err := m.lock(ctx, app, func() {
		out.Info(fmt.Sprintf("another push to %s is being deployed; waiting for it to finish", app))
	})
	if err != nil {
		return nil, err
	}
	if err := m.ensureApp(ctx, app); err != nil {
		out.Fail(ui.OneLine(err.Error()))
		unlock()
		return nil, err
	}
	return unlock, nil
}

// DeployPush deploys revision rev of a push, read from the app's
// repository with git's quarantine variables env, while git waits for the
// verdict.
func (m *Manager) DeployPush(ctx context.Context, app, rev, pusher string, admin bool, env []string, w io.Writer, color bool) error {
	src := gitSource{repo: m.paths.Repo(app), env: env}
	return m.deployFrom(ctx, app, rev, actor{name: pusher, admin: admin}, false, src, ui.New(w, color))
}

// CanRead reports whether app exists to be cloned or fetched.
func (m *Manager) CanRead(ctx context.Context, app string) error {
	_, err := m.cfg.Store.App(ctx, app)
	return err
}

// ensureApp creates an app (record, repository, directories) on first use.
func (m *Manager) ensureApp(ctx context.Context, app string) error {
	if _, err := m.cfg.Store.App(ctx, app); errors.Is(err, store.ErrNotFound) {
		if _, err := m.cfg.Store.CreateApp(ctx, app); err != nil && !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("create app %s: %w", app, err)
		}
	} else if err != nil {
		return err
	}
	if _, err := m.prepareApp(ctx, app); err != nil {
		return err
	}
	return initRepo(m.paths.Repo(app))
}

// deploy builds revision rev of app, already in its repository, into a new
// release and switches traffic to it.
func (m *Manager) deploy(ctx context.Context, app, rev string, who actor, noCache bool, out *ui.Writer) error {
	return m.deployFrom(ctx, app, rev, who, noCache, gitSource{repo: m.paths.Repo(app)}, out)
}

// actor is who asks for a deploy: the name recorded with the release, and
// whether an admin's key asked, which decides the hosts the app may claim.
type actor struct {
	name  string
	admin bool
}

// deployFrom builds revision rev of app, read from src, into a new release
// and switches traffic to it. Until the switch nothing that serves the app
// is touched; any error before it leaves the previous release serving. The
// attempt is recorded either way, but takes a release number only if it
// goes live.
func (m *Manager) deployFrom(ctx context.Context, app, rev string, who actor, noCache bool, src gitSource, out *ui.Writer) (err error) {
	st := m.cfg.Store
	a, err := st.App(ctx, app)
	if err != nil {
		return err
	}
	rel, err := st.CreateRelease(ctx, app, rev, who.name)
	if err != nil {
		return fmt.Errorf("record release: %w", err)
	}
	started := time.Now()
	logPath := m.paths.BuildLog(app, rel.Attempt)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		m.log.Warn("create build log directory", "app", app, "err", err)
	}
	// The log sits where the app passes through: it is hop3's alone.
	if logf, lerr := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); lerr == nil {
		defer logf.Close()
		out = out.Also(logf, false)
	} else {
		m.log.Warn("open build log", "app", app, "err", lerr)
	}
	out.Step(fmt.Sprintf("Deploying %s (%s), deploy d%d", app, short(rev), rel.Attempt))
	var metaJSON []byte
	dir := m.paths.Release(app, rel.Number)
	defer func() {
		status, detail := store.Succeeded, ""
		if err != nil {
			status, detail = store.Failed, ui.OneLine(err.Error())
		}
		if err != nil {
			// The summary first; details (a process's last log lines) after it.
			lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
			out.Fail(lines[0])
			for _, l := range lines[1:] {
				out.Info(l)
			}
			still := "nothing was live before it"
			if a.Release > 0 {
				still = fmt.Sprintf("v%d serves on", a.Release)
			}
			out.Info(fmt.Sprintf("deploy d%d failed and took no release number; %s (log: releases:info %s d%d)", rel.Attempt, still, app, rel.Attempt))
			// A failed release can never go live: free its space (a build
			// that filled the disk must not keep it full). Its log stays.
			os.RemoveAll(dir)
			os.Remove(m.paths.Manifest(app, rel.Number))
		}
		if ferr := st.FinishRelease(context.WithoutCancel(ctx), app, rel.Attempt, status, detail, string(metaJSON)); ferr != nil {
			m.log.Error("record release result", "app", app, "attempt", rel.Attempt, "err", ferr)
		}
		msg := fmt.Sprintf("deployed v%d (%s)", rel.Number, short(rev))
		if err != nil {
			msg = fmt.Sprintf("deploy d%d (%s) failed: %s", rel.Attempt, short(rev), detail)
		}
		m.event(ctx, app, "deploy", who.name, msg)
		m.observeDeploy(app, err == nil, time.Since(started))
		m.log.Info("deploy", "app", app, "attempt", rel.Attempt, "release", rel.Number, "status", status.String(), "duration", time.Since(started).Round(time.Millisecond), "err", detail)
		// Told above, with its detail lines: the caller prints it no more.
		err = ui.Reported(err)
	}()

	if a.Release > 0 {
		m.reportState(app, a.Release, out)
	}
	// Read once: the size cap, the build and the processes see the same
	// config, even should it change while the build runs.
	config, err := st.Config(ctx, app)
	if err != nil {
		return err
	}
	limit, err := m.releaseSizeCap(config)
	if err != nil {
		return err
	}
	// A crash during an earlier attempt at this number may have left its
	// directory behind.
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("clear %s: %w", dir, err)
	}
	notes, err := checkout(ctx, src, rev, dir, limit)
	if err != nil {
		if errors.Is(err, ErrReleaseTooLarge) {
			return err
		}
		return fmt.Errorf("checkout: %w", err)
	}
	for _, n := range notes {
		out.Info(n)
	}
	// Hashed before the app's user owns the tree: what was pushed.
	source, err := buildpacks.SourceHash(ctx, dir)
	if err != nil {
		m.log.Warn("hash the pushed tree", "app", app, "err", err)
	}
	u, err := m.prepareApp(ctx, app)
	if err != nil {
		return err
	}
	if err := m.giveRelease(dir, u); err != nil {
		return err
	}
	r, err := m.buildRelease(ctx, app, rel.Number, dir, u, config, noCache, who.admin, out)
	if err != nil {
		return err
	}
	r.meta.Source = source
	metaJSON, _ = json.Marshal(r.meta)
	// Recorded now: should hop3 die after the switch, the next start must
	// be able to start this release again.
	if err := st.RecordBuild(ctx, app, rel.Attempt, string(metaJSON)); err != nil {
		return err
	}
	// What the commit and the build made; anything else found here later
	// was written by the app, and is lost with the release.
	if err := writeManifest(dir, m.paths.Manifest(app, rel.Number)); err != nil {
		m.log.Warn("record release files", "app", app, "release", rel.Number, "err", err)
	}
	if e, ok := r.procfile.Get("release"); ok && e.Kind == procfile.KindRelease {
		out.Step("Running release command: " + e.Command)
		if err := m.runHook(ctx, r, e, out); err != nil {
			return fmt.Errorf("release command failed: %w", err)
		}
	}
	if by := m.provenBy(ctx, a.Release, r, time.Now()); by > 0 {
		r.proven = true
		out.Info(fmt.Sprintf("Same tree, build and settings as v%d, which has stayed up: no settle wait", by))
	}
	if err := m.activate(ctx, r, nil, out); err != nil {
		return err
	}
	if err := st.SetAppState(ctx, app, store.AppRunning); err != nil {
		return err
	}
	m.prune(ctx, app, r.meta)
	if _, routed := r.procfile.Routed(); !routed {
		out.Success(fmt.Sprintf("%s v%d is live; it has no web process, so no URL routes to it", app, rel.Number))
		return nil
	}
	m.certNote(out, app)
	out.Success(fmt.Sprintf("%s v%d is live at %s", app, rel.Number, m.URL(app)))
	return nil
}

// releaseSizeCap is the most an app's release may hold: the server's cap,
// or the app's MAX_RELEASE_SIZE (in its config vars) when that is lower.
func (m *Manager) releaseSizeCap(config map[string]string) (int64, error) {
	limit := m.cfg.MaxReleaseSize
	n, err := appReleaseSize(config)
	if err != nil {
		return 0, err
	}
	if n > 0 && (limit <= 0 || n < limit) {
		limit = n
	}
	return limit, nil
}

// appReleaseSize reads an app's MAX_RELEASE_SIZE (0 when unset).
func appReleaseSize(env map[string]string) (int64, error) {
	return sizeEnv(env, "MAX_RELEASE_SIZE")
}

// buildRelease reads the Procfile and builds the checked-out source in dir,
// with the app's config vars as the deploy read them.
func (m *Manager) buildRelease(ctx context.Context, app string, number int, dir string, u *supervisor.Credential, config map[string]string, noCache, admin bool, out *ui.Writer) (release, error) {
	r := release{app: app, number: number, dir: dir, user: u}
	pf, err := readProcfile(dir)
	if err != nil {
		return r, err
	}
	r.procfile = pf
	// Read before the build, which runs the app's code in dir: what was
	// checked here is what the processes get.
	files, err := readRepoEnvFiles(dir)
	if err != nil {
		return r, err
	}
	dotenv, err := files.vars(nil)
	if err != nil {
		return r, err
	}
	buildEnv := merge(dotenv, config)
	// Values that shape the route (hosts, static paths, sizes) fail the push
	// here, before anything runs, rather than after the switch.
	if err := m.ValidateConfig(ctx, app, buildEnv, admin); err != nil {
		return r, err
	}
	if e, ok := pf.Get("preflight"); ok && e.Kind == procfile.KindPreflight {
		out.Step("Running preflight command: " + e.Command)
		pre := release{app: app, number: number, dir: dir, user: u, env: merge(map[string]string{"PATH": os.Getenv("PATH"), "APP": app, "DATA_DIR": m.paths.Data(app), "TMPDIR": m.paths.Tmp(app)}, buildEnv)}
		if err := m.runHook(ctx, pre, e, out); err != nil {
			return r, fmt.Errorf("preflight command failed: %w", err)
		}
	}
	if truthy(buildEnv["HOP3_NO_CACHE"]) {
		noCache = true
	}
	_, hasStatic := pf.Get("static")
	routed, _ := pf.Routed()
	timeout := durationEnv(buildEnv, "BUILD_TIMEOUT", m.cfg.BuildTimeout)
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := buildpacks.Build(bctx, buildpacks.Spec{
		App:         app,
		Dir:         dir,
		Env:         buildEnv,
		CacheDir:    m.appCacheDir(u),
		TempDir:     m.paths.Tmp(app),
		As:          m.buildUser(u),
		EnvsDir:     m.paths.Envs(app),
		Tools:       m.cfg.Tools,
		HasStatic:   hasStatic,
		HasProcfile: true,
		HasPHP:      routed.Kind == procfile.KindPHP,
		NoCache:     noCache,
		Report:      out,
		// Environments are complete and hop3's before they are shared.
		SharedObjects: m.paths.SharedObjects(),
		Log:           m.log,
	})
	if err != nil {
		if bctx.Err() == context.DeadlineExceeded {
			return r, fmt.Errorf("build timed out after %s (BUILD_TIMEOUT)", timeout)
		}
		return r, fmt.Errorf("build failed: %w", err)
	}
	m.observeBuild(app, res.CacheHits)
	r.meta = releaseMeta{Packs: res.Packs, Venv: res.Venv, Env: res.Env, Envs: res.Envs}
	r.env, err = m.processEnv(r, config, files)
	if err != nil {
		return r, err
	}
	r.scale, err = m.cfg.Store.Scale(ctx, app)
	return r, err
}

// runtimeEnv composes the process environment of an already built release
// (processEnv) from the app's config vars and the release's ENV and .env
// as they are now.
func (m *Manager) runtimeEnv(ctx context.Context, r release) (map[string]string, error) {
	config, err := m.cfg.Store.Config(ctx, r.app)
	if err != nil {
		return nil, err
	}
	files, err := readRepoEnvFiles(r.dir)
	if err != nil {
		return nil, err
	}
	return m.processEnv(r, config, files)
}

// processEnv composes a release's process environment: system basics, the
// buildpacks' additions, the repository's ENV and .env, then config vars;
// hop3's own values come last so they can not be spoofed: APP, DATA_DIR,
// and piku's name for it, DATA_ROOT, so apps moved from piku run
// unchanged. (piku's LOG_ROOT is not set: hop3 writes the processes' logs
// itself, where apps may not.)
func (m *Manager) processEnv(r release, config map[string]string, files repoEnvFiles) (map[string]string, error) {
	systemPath := "/usr/local/bin:/usr/bin:/bin"
	if p := os.Getenv("PATH"); p != "" {
		systemPath = p
	}
	env := map[string]string{
		"PATH":             systemPath,
		"HOME":             m.paths.Data(r.app),
		"TMPDIR":           m.paths.Tmp(r.app),
		"LANG":             "C.UTF-8",
		"PYTHONUNBUFFERED": "1",
	}
	for k, v := range r.meta.Env {
		if k == "PATH" {
			v = expandPath(v, systemPath)
		}
		env[k] = v
	}
	own := map[string]string{
		"APP":       r.app,
		"DATA_DIR":  m.paths.Data(r.app),
		"DATA_ROOT": m.paths.Data(r.app),
	}
	// piku expands $VAR in ENV against the environment it starts apps
	// with; these are hop3's equivalents.
	repoEnv, err := files.vars(merge(env, own))
	if err != nil {
		return nil, err
	}
	return merge(env, repoEnv, config, own), nil
}

// activate starts a built release beside the running one and switches
// traffic to it once every process is ready and has stayed up for its
// settle time, then hands the old processes to the supervisor to drain in
// the background: it returns as soon as the new generation is live. kinds,
// when non-nil, limits all of this to those Procfile entries (scaling one
// kind restarts no other).
func (m *Manager) activate(ctx context.Context, r release, kinds map[string]bool, out *ui.Writer) error {
	if kinds != nil && m.sleeping(r.app) {
		return nil // a sleeping app starts with its new scale when it wakes
	}
	r.gen = int(m.gen.Add(1))
	out.Step("Starting processes")
	specs, err := m.startRelease(ctx, r, kinds)
	if err != nil {
		return err
	}
	for _, s := range specs {
		if s.Schedule != nil {
			out.Info(fmt.Sprintf("%s.%s scheduled (%s)", s.Labels["kind"], s.Labels["index"], s.Schedule))
			continue
		}
		out.Info(fmt.Sprintf("%s.%s ready", s.Labels["kind"], s.Labels["index"]))
	}
	exposed := m.exposed(specs)
	for _, name := range slices.Sorted(maps.Keys(exposed)) {
		out.Fail(supervisor.ExposedNotice(name, exposed[name]))
	}
	if err := m.switchTo(r, kinds); err != nil {
		m.stopSpecs(context.WithoutCancel(ctx), specs)
		return err
	}
	if kinds == nil {
		m.awake(ctx, r.app) // a deploy or a restart of a sleeping app wakes it
	}
	if err := m.route(ctx, r); err != nil {
		// Traffic already moved through the socket symlink; a route error
		// concerns hosts or ports, and is reported without undoing the switch.
		out.Fail("routing: " + ui.OneLine(err.Error()))
		m.log.Error("set route", "app", r.app, "err", err)
	}
	if err := m.cfg.Store.SetLiveRelease(ctx, r.app, r.number); err != nil {
		return err
	}
	m.drainOld(r, kinds)
	return nil
}

// runHook runs a one-off Procfile command (release, preflight) in the
// release's environment, streaming its output.
func (m *Manager) runHook(ctx context.Context, r release, e procfile.Entry, out *ui.Writer) error {
	env := copyEnv(r.env)
	env["PROC_TYPE"] = e.Name
	w := out.Output()
	code, err := m.cfg.Supervisor.Run(ctx, supervisor.Spec{
		Name:    processName(r.app, e.Name, 1, r.number, 0),
		Command: []string{"/bin/sh", "-c", e.Command},
		Dir:     r.dir,
		Env:     envList(env),
		User:    r.user,
		Sandbox: m.sandboxFor(r),
	}, nil, w, w)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("exit status %d", code)
	}
	return nil
}

// readProcfile reads hop3/Procfile, else Procfile. A repository with neither
// is a PHP app when buildpacks.DetectPHP says so, as if its Procfile said
// "php: public" (or "php: ."); else, with an index.html at its top, a
// static site, as if its Procfile said "static: ." (Caddy's file server
// hides dotfiles such as .env and .git).
func readProcfile(dir string) (*procfile.Procfile, error) {
	name, static := procfile.Find(dir)
	if name != "" {
		// The release may be the app's to write: no link out of it is
		// followed.
		f, err := isolation.OpenInTree(dir, name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return procfile.Parse(f)
	}
	if root, ok := buildpacks.DetectPHP(dir); ok {
		return procfile.Parse(strings.NewReader("php: " + root + "\n"))
	}
	if static {
		return procfile.Parse(strings.NewReader(procfile.StaticSite))
	}
	example := "wsgi: app:app"
	if packs, err := buildpacks.Detect(dir, false, false); err == nil && packs[0] == buildpacks.PackJava {
		example = buildpacks.JavaProcfileExample(dir)
	}
	return nil, fmt.Errorf("no Procfile: add one naming your processes, e.g. %q", example)
}

// repoEnvFiles is a release's environment files as read from it, once per
// deploy: piku's ENV and .env. Either may be missing (nil).
type repoEnvFiles struct {
	pikuENV []byte
	dotenv  []byte
}

// readRepoEnvFiles reads the release's ENV and .env.
func readRepoEnvFiles(dir string) (repoEnvFiles, error) {
	var f repoEnvFiles
	var err error
	if f.pikuENV, err = readPikuENV(dir); err != nil {
		return f, err // names ENV
	}
	if _, err := os.Lstat(filepath.Join(dir, ".env")); errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if f.dotenv, err = readInRelease(dir, ".env"); err != nil {
		return f, err // names .env
	}
	return f, nil
}

// vars reads the ENV file, expanding $VAR against base and the lines
// before (the build gives none: piku's variables stay as written), then
// .env, which wins over ENV for a name both set.
func (f repoEnvFiles) vars(base map[string]string) (map[string]string, error) {
	env, err := parsePikuENV(f.pikuENV, base)
	if err != nil {
		return nil, fmt.Errorf("ENV: %w", err)
	}
	if f.dotenv == nil {
		return env, nil
	}
	dotenv, err := parseDotenvBytes(f.dotenv)
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	return merge(env, dotenv), nil
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}
