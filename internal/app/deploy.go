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
	"hop3/gitserver"
	"hop3/hooks"
	"hop3/internal/isolation"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

var _ gitserver.Backend = (*Manager)(nil)

// Receive serves a push: the real git receive-pack stores the objects, then a
// push to main (or master) is built and deployed while the pusher watches.
// A failed deploy leaves the ref where it was and the old release serving.
func (m *Manager) Receive(ctx context.Context, s *gitserver.Session, app string) int {
	out := ui.New(s.Stderr, ui.ColorFor(s.TTY, s.Env))
	unlock, err := m.lock(ctx, app, func() {
		out.Info(fmt.Sprintf("another push to %s is being deployed; waiting for it to finish", app))
	})
	if err != nil {
		return 1
	}
	defer unlock()
	if err := m.ensureApp(ctx, app); err != nil {
		out.Fail(oneLine(err))
		return 1
	}
	repo := m.paths.repo(app)
	before, err := refs(repo)
	if err != nil {
		out.Fail(oneLine(err))
		return 1
	}
	if err := gitserver.RunPack(ctx, "receive-pack", repo, s); err != nil {
		m.log.Warn("receive-pack failed", "app", app, "err", err)
		return 1
	}
	after, err := refs(repo)
	if err != nil {
		out.Fail(oneLine(err))
		return 1
	}
	plan := hooks.PlanFor(hooks.Diff(before, after))
	for _, b := range plan.Ignored {
		out.Info(fmt.Sprintf("branch %s stored, not deployed (push to main or master to deploy)", b))
	}
	if plan.Deploy == nil {
		return 0
	}
	if err := m.deploy(ctx, app, plan.Deploy.New, s.Identity.Name, false, out); err != nil {
		if rerr := resetRef(repo, *plan.Deploy); rerr != nil {
			m.log.Error("restore ref after failed deploy", "app", app, "err", rerr)
		}
		return 1
	}
	if err := setHead(repo, plan.Deploy.Branch()); err != nil {
		m.log.Warn("set HEAD", "app", app, "err", err)
	}
	return 0
}

// Upload serves a clone or fetch of an app's repository.
func (m *Manager) Upload(ctx context.Context, s *gitserver.Session, app string) int {
	if _, err := m.cfg.Store.App(ctx, app); err != nil {
		fmt.Fprintf(s.Stderr, " !     no app named %s\n", app)
		return 1
	}
	if err := gitserver.RunPack(ctx, "upload-pack", m.paths.repo(app), s); err != nil {
		m.log.Warn("upload-pack failed", "app", app, "err", err)
		return 1
	}
	return 0
}

// Command runs every other SSH command.
func (m *Manager) Command(ctx context.Context, s *gitserver.Session) int {
	if m.cfg.Commands != nil {
		return m.cfg.Commands(ctx, s)
	}
	name := ""
	if len(s.Args) > 0 {
		name = s.Args[0]
	}
	fmt.Fprintf(s.Stderr, " !     unknown command %q\n", name)
	return 2
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
	return initRepo(m.paths.repo(app))
}

// deploy builds revision rev of app into a new release and switches traffic
// to it. Until the switch nothing that serves the app is touched; any error
// before it leaves the previous release serving.
func (m *Manager) deploy(ctx context.Context, app, rev, pusher string, noCache bool, out *ui.Writer) (err error) {
	st := m.cfg.Store
	rel, err := st.CreateRelease(ctx, app, rev, pusher)
	if err != nil {
		return fmt.Errorf("record release: %w", err)
	}
	started := time.Now()
	// The log sits where the app passes through: it is hop3's alone.
	if logf, lerr := os.OpenFile(m.paths.buildLog(app, rel.Number), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); lerr == nil {
		defer logf.Close()
		out = out.Also(logf, false)
	} else {
		m.log.Warn("open build log", "app", app, "err", lerr)
	}
	out.Step(fmt.Sprintf("Deploying %s v%d (%s)", app, rel.Number, short(rev)))
	var metaJSON []byte
	defer func() {
		status, detail := store.Succeeded, ""
		if err != nil {
			status, detail = store.Failed, oneLine(err)
		}
		if err != nil {
			// The summary first; details (a process's last log lines) after it.
			lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
			out.Fail(lines[0])
			for _, l := range lines[1:] {
				out.Info(l)
			}
		}
		if err != nil {
			// A failed release can never go live: free its space (a build
			// that filled the disk must not keep it full). Its log stays.
			os.RemoveAll(m.paths.release(app, rel.Number))
		}
		if ferr := st.FinishRelease(context.WithoutCancel(ctx), app, rel.Number, status, detail, string(metaJSON)); ferr != nil {
			m.log.Error("record release result", "app", app, "release", rel.Number, "err", ferr)
		}
		msg := fmt.Sprintf("deployed v%d (%s)", rel.Number, short(rev))
		if err != nil {
			msg = fmt.Sprintf("deploy of v%d (%s) failed: %s", rel.Number, short(rev), detail)
		}
		m.event(ctx, app, "deploy", pusher, msg)
		m.observeDeploy(app, err == nil, time.Since(started))
		m.log.Info("deploy", "app", app, "release", rel.Number, "status", status.String(), "duration", time.Since(started).Round(time.Millisecond), "err", detail)
	}()

	dir := m.paths.release(app, rel.Number)
	if err := checkout(m.paths.repo(app), rev, dir); err != nil {
		return fmt.Errorf("checkout: %w", err)
	}
	u, err := m.prepareApp(ctx, app)
	if err != nil {
		return err
	}
	if err := m.giveRelease(dir, u); err != nil {
		return err
	}
	r, err := m.buildRelease(ctx, app, rel.Number, dir, u, noCache, out)
	if err != nil {
		return err
	}
	metaJSON, _ = json.Marshal(r.meta)
	if e, ok := r.procfile.Get("release"); ok && e.Kind == procfile.KindRelease {
		out.Step("Running release command: " + e.Command)
		if err := m.runHook(ctx, r, e, out); err != nil {
			return fmt.Errorf("release command failed: %w", err)
		}
	}
	if err := m.activate(ctx, r, nil, out); err != nil {
		return err
	}
	if err := st.SetAppState(ctx, app, store.AppRunning); err != nil {
		return err
	}
	m.prune(ctx, app, r.meta)
	out.Success(fmt.Sprintf("%s v%d is live at %s", app, rel.Number, m.URL(app)))
	return nil
}

// buildRelease reads the Procfile and builds the checked-out source in dir.
func (m *Manager) buildRelease(ctx context.Context, app string, number int, dir string, u *supervisor.Credential, noCache bool, out *ui.Writer) (release, error) {
	r := release{app: app, number: number, dir: dir, user: u}
	pf, err := readProcfile(dir)
	if err != nil {
		return r, err
	}
	r.procfile = pf
	config, err := m.cfg.Store.Config(ctx, app)
	if err != nil {
		return r, err
	}
	dotenv, err := readDotenv(dir)
	if err != nil {
		return r, err
	}
	buildEnv := merge(dotenv, config)
	// Values that shape the route (hosts, static paths, sizes) fail the push
	// here, before anything runs, rather than after the switch.
	if err := m.ValidateConfig(ctx, app, buildEnv); err != nil {
		return r, err
	}
	if e, ok := pf.Get("preflight"); ok && e.Kind == procfile.KindPreflight {
		out.Step("Running preflight command: " + e.Command)
		pre := release{app: app, number: number, dir: dir, user: u, env: merge(map[string]string{"PATH": os.Getenv("PATH"), "APP": app, "DATA_DIR": m.paths.data(app), "TMPDIR": m.paths.tmpDir(app)}, buildEnv)}
		if err := m.runHook(ctx, pre, e, out); err != nil {
			return r, fmt.Errorf("preflight command failed: %w", err)
		}
	}
	if v := strings.ToLower(buildEnv["HOP3_NO_CACHE"]); v == "1" || v == "true" || v == "yes" {
		noCache = true
	}
	_, hasStatic := pf.Get("static")
	timeout := durationEnv(buildEnv, "BUILD_TIMEOUT", m.cfg.BuildTimeout)
	bctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := buildpacks.Build(bctx, buildpacks.Spec{
		App:         app,
		Dir:         dir,
		Env:         buildEnv,
		CacheDir:    m.appCacheDir(u),
		TempDir:     m.paths.tmpDir(app),
		As:          m.buildUser(u),
		EnvsDir:     m.paths.envs(app),
		Tools:       m.cfg.Tools,
		HasStatic:   hasStatic,
		HasProcfile: true,
		NoCache:     noCache,
		Report:      out,
	})
	if err != nil {
		if bctx.Err() == context.DeadlineExceeded {
			return r, fmt.Errorf("build timed out after %s (BUILD_TIMEOUT)", timeout)
		}
		return r, fmt.Errorf("build failed: %w", err)
	}
	m.observeBuild(app, res.CacheHits)
	r.meta = releaseMeta{Packs: res.Packs, Venv: res.Venv, Env: res.Env, Envs: res.Envs}
	r.env, err = m.runtimeEnv(ctx, r)
	if err != nil {
		return r, err
	}
	r.scale, err = m.cfg.Store.Scale(ctx, app)
	return r, err
}

// runtimeEnv composes a release's process environment: system basics, the
// buildpacks' additions, the repository's .env, then config vars; hop3's own
// values (APP, DATA_DIR) come last so they can not be spoofed.
func (m *Manager) runtimeEnv(ctx context.Context, r release) (map[string]string, error) {
	config, err := m.cfg.Store.Config(ctx, r.app)
	if err != nil {
		return nil, err
	}
	dotenv, err := readDotenv(r.dir)
	if err != nil {
		return nil, err
	}
	systemPath := "/usr/local/bin:/usr/bin:/bin"
	if p := os.Getenv("PATH"); p != "" {
		systemPath = p
	}
	env := map[string]string{
		"PATH":             systemPath,
		"HOME":             m.paths.data(r.app),
		"TMPDIR":           m.paths.tmpDir(r.app),
		"LANG":             "C.UTF-8",
		"PYTHONUNBUFFERED": "1",
	}
	for k, v := range r.meta.Env {
		if k == "PATH" {
			v = expandPath(v, systemPath)
		}
		env[k] = v
	}
	env = merge(env, dotenv, config)
	env["APP"] = r.app
	env["DATA_DIR"] = m.paths.data(r.app)
	return env, nil
}

// activate starts a built release beside the running one and switches
// traffic to it once every process is ready and has stayed up for its
// settle time, then hands the old processes to the supervisor to drain in
// the background: it returns as soon as the new generation is live. kinds,
// when non-nil, limits all of this to those Procfile entries (scaling one
// kind restarts no other).
func (m *Manager) activate(ctx context.Context, r release, kinds map[string]bool, out *ui.Writer) error {
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
	if err := m.route(ctx, r); err != nil {
		// Traffic already moved through the socket symlink; a route error
		// concerns hosts or ports, and is reported without undoing the switch.
		out.Fail("routing: " + oneLine(err))
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
// but an index.html at its top is a static site, as if its Procfile said
// "static: ." (Caddy's file server hides dotfiles such as .env and .git).
func readProcfile(dir string) (*procfile.Procfile, error) {
	if name, ok := buildpacks.ReadProcfilePath(dir); ok {
		// The release may be the app's to write: no link out of it is
		// followed.
		f, err := isolation.OpenInTree(dir, name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return procfile.Parse(f)
	}
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err == nil {
		return procfile.Parse(strings.NewReader("static: .\n"))
	}
	return nil, errors.New("no Procfile: add one naming your processes, e.g. \"wsgi: app:app\"")
}

// readDotenv reads the repository's .env (without expanding it against
// hop3's own environment).
func readDotenv(dir string) (map[string]string, error) {
	path := filepath.Join(dir, ".env")
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	// The release may be the app's to write: a link to another app's .env
	// (or any file hop3 can read) must not become this app's environment.
	f, err := isolation.OpenInTree(dir, ".env")
	if err != nil {
		return nil, err // names .env
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxDotenvSize+1))
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	env, err := parseDotenvBytes(src)
	if err != nil {
		return nil, fmt.Errorf(".env: %w", err)
	}
	return env, nil
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
