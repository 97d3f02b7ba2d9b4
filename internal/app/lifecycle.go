package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"hop3/gitrepo"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// waitNote tells the caller, once, that another change to app is running.
func waitNote(out *ui.Writer, app string) func() {
	return func() {
		out.Info(fmt.Sprintf("another change to %s is in progress; waiting for it to finish", app))
	}
}

// liveRelease loads app's live release, or says why there is none.
func (m *Manager) liveRelease(ctx context.Context, app string) (store.App, release, error) {
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return a, release{}, err
	}
	if a.Release == 0 {
		return a, release{}, fmt.Errorf("%s has no release yet: push to deploy it", app)
	}
	r, err := m.loadRelease(ctx, app, a.Release)
	return a, r, err
}

// Deploy builds and deploys the app's current revision again, asked by
// the key named by (recorded with the release; admin: whether it is an
// admin's).
// noCache rebuilds dependency environments from scratch.
func (m *Manager) Deploy(ctx context.Context, app string, noCache bool, by string, admin bool, out *ui.Writer) error {
	unlock, err := m.lock(ctx, app, waitNote(out, app))
	if err != nil {
		return err
	}
	defer unlock()
	var rev string
	for _, b := range gitrepo.DeployBranches {
		if rev, err = resolveBranch(m.paths.Repo(app), b); err == nil {
			break
		}
	}
	if rev == "" {
		return fmt.Errorf("%s has no %s branch to deploy: push first", app, strings.Join(gitrepo.DeployBranches, " or "))
	}
	return m.deploy(ctx, app, rev, actor{name: by, admin: admin}, noCache, out)
}

// Restart starts the live release's processes anew beside the running ones
// and switches to them with zero downtime. It also reads the app's config
// again, which is how config changes reach the processes.
func (m *Manager) Restart(ctx context.Context, app string, out *ui.Writer) error {
	return m.withLive(ctx, app, out, func(a store.App, r release) error {
		if a.State == store.AppStopped {
			return fmt.Errorf("%s is stopped: use start", app)
		}
		return m.activate(ctx, r, nil, out)
	})
}

// withLive runs f holding app's lock, with its live release loaded.
func (m *Manager) withLive(ctx context.Context, app string, out *ui.Writer, f func(store.App, release) error) error {
	unlock, err := m.lock(ctx, app, waitNote(out, app))
	if err != nil {
		return err
	}
	defer unlock()
	a, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return err
	}
	return f(a, r)
}

// StopApp stops every process of app; its route answers with the stopped page.
func (m *Manager) StopApp(ctx context.Context, app string, out *ui.Writer) error {
	unlock, err := m.lock(ctx, app, waitNote(out, app))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := m.cfg.Store.App(ctx, app); err != nil {
		return err
	}
	if err := m.cfg.Store.SetAppState(ctx, app, store.AppStopped); err != nil {
		return err
	}
	if err := m.updateRoute(ctx, app); err != nil {
		return err
	}
	m.stopOld(ctx, app, 0, nil)
	if err := m.unsleep(ctx, app); err != nil {
		return err
	}
	out.Step(app + " stopped")
	return nil
}

// StartApp starts a stopped app's live release.
func (m *Manager) StartApp(ctx context.Context, app string, out *ui.Writer) error {
	return m.withLive(ctx, app, out, func(_ store.App, r release) error {
		if err := m.activate(ctx, r, nil, out); err != nil {
			return err
		}
		if err := m.cfg.Store.SetAppState(ctx, app, store.AppRunning); err != nil {
			return err
		}
		return m.updateRoute(ctx, app)
	})
}

// MaxScale bounds a process count: a small server can not run more.
const MaxScale = 32

// Scale sets process counts (for wsgi/asgi: Granian workers) and applies
// them with zero downtime; kinds not named keep running untouched. A
// wsgi/asgi count of store.ScaleAuto hands the entry's workers back to the
// autoscaler.
func (m *Manager) Scale(ctx context.Context, app string, counts map[string]int, out *ui.Writer) error {
	return m.withLive(ctx, app, out, func(a store.App, r release) error {
		return m.scale(ctx, a, r, counts, out)
	})
}

// ValidateScale refuses, with a one-line reason, counts that Scale would
// refuse for app's live release, changing nothing.
func (m *Manager) ValidateScale(ctx context.Context, app string, counts map[string]int) error {
	_, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return err
	}
	return m.checkScale(ctx, r, counts)
}

// checkScale refuses counts for kinds of release r that can not take them.
func (m *Manager) checkScale(ctx context.Context, r release, counts map[string]int) error {
	var config map[string]string
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		n := counts[kind]
		e, ok := r.procfile.Get(kind)
		if !ok || (e.Kind != procfile.KindWSGI && e.Kind != procfile.KindASGI && e.Kind != procfile.KindWeb && e.Kind != procfile.KindWorker) {
			return fmt.Errorf("%s has no scalable process %q; its Procfile has: %s", r.app, kind, strings.Join(scalable(r.procfile), ", "))
		}
		if n == store.ScaleAuto {
			if config == nil {
				var err error
				if config, err = m.cfg.Store.Config(ctx, r.app); err != nil {
					return err
				}
			}
			if why := autoScaleRefusal(r, e, config); why != "" {
				return errors.New(why)
			}
			continue
		}
		if n < 0 || n > MaxScale {
			return fmt.Errorf("scale %s=%d: use a count from 0 to %d", kind, n, MaxScale)
		}
	}
	return nil
}

func (m *Manager) scale(ctx context.Context, a store.App, r release, counts map[string]int, out *ui.Writer) error {
	app := a.Name
	if err := m.checkScale(ctx, r, counts); err != nil {
		return err
	}
	kinds := map[string]bool{}
	for _, kind := range slices.Sorted(maps.Keys(counts)) {
		if _, pinned := r.scale[kind]; counts[kind] == store.ScaleAuto && !pinned {
			out.Info(kind + " is already scaled automatically")
			continue
		}
		kinds[kind] = true
	}
	if err := m.cfg.Store.SetScale(ctx, app, counts); err != nil {
		return err
	}
	running := a.State != store.AppStopped && a.Asleep.IsZero()
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		n := counts[k]
		if n != store.ScaleAuto {
			r.scale[k] = n
			continue
		}
		pinned, ok := r.scale[k]
		if !ok {
			continue
		}
		delete(r.scale, k)
		if running {
			// A stopped or sleeping entry starts again from one worker, as
			// any auto entry does.
			start := unpinnedWorkers(pinned)
			m.workers.set(workerKey{app, k}, start)
			out.Info(fmt.Sprintf("%s's workers follow the load again, from %d", k, start))
		}
	}
	if len(kinds) == 0 {
		return nil
	}
	if a.State == store.AppStopped {
		out.Info(app + " is stopped; the new scale applies when it starts")
		return nil
	}
	if !a.Asleep.IsZero() {
		out.Info(app + " is sleeping; the new scale applies when it wakes")
		return nil
	}
	return m.activate(ctx, r, kinds, out)
}

func scalable(pf *procfile.Procfile) []string {
	var out []string
	for _, e := range pf.Processes() {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

// Rollback switches to an earlier release's build (number 0: the newest
// good release before the live one) with zero downtime and no rebuild.
func (m *Manager) Rollback(ctx context.Context, app string, number int, actor string, out *ui.Writer) error {
	unlock, err := m.lock(ctx, app, waitNote(out, app))
	if err != nil {
		return err
	}
	defer unlock()
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return err
	}
	if number == 0 {
		rels, err := m.cfg.Store.Releases(ctx, app)
		if err != nil {
			return err
		}
		for _, rel := range rels {
			if rel.Number < a.Release && rel.Status == store.Succeeded {
				number = rel.Number
				break
			}
		}
		if number == 0 {
			return fmt.Errorf("%s has no earlier good release to roll back to", app)
		}
	}
	rel, err := m.cfg.Store.Release(ctx, app, number)
	if err != nil {
		return fmt.Errorf("%s has no release v%d", app, number)
	}
	if rel.Status != store.Succeeded {
		return fmt.Errorf("v%d of %s did not deploy (%s); choose a good release", number, app, rel.Status)
	}
	if _, err := os.Stat(m.paths.Release(app, number)); err != nil {
		return fmt.Errorf("v%d of %s was removed; choose a newer release", number, app)
	}
	r, err := m.loadRelease(ctx, app, number)
	if err != nil {
		return err
	}
	out.Step(fmt.Sprintf("Rolling %s back to v%d (%s)", app, number, short(rel.Revision)))
	if err := m.activate(ctx, r, nil, out); err != nil {
		return err
	}
	m.event(ctx, app, "rollback", actor, fmt.Sprintf("rolled back to v%d", number))
	out.Success(fmt.Sprintf("%s v%d is live at %s", app, number, m.URL(app)))
	return nil
}

// ApplyConfig restarts app so that its processes see its current config
// vars (after config:set or config:unset), with zero downtime. An app with
// nothing running has nothing to restart.
func (m *Manager) ApplyConfig(ctx context.Context, app string, out *ui.Writer) error {
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return err
	}
	if a.Release == 0 || a.State == store.AppStopped {
		return nil
	}
	if !a.Asleep.IsZero() {
		// Its processes read the config when its next request wakes it.
		out.Info(app + " is sleeping; it wakes with the new config")
		return m.UpdateRoute(ctx, app)
	}
	if err := m.Restart(ctx, app, out); err != nil {
		return err
	}
	// Host names and static paths may come from config.
	return m.UpdateRoute(ctx, app)
}

// Processes lists the supervised processes of app.
func (m *Manager) Processes(app string) []supervisor.Status {
	var out []supervisor.Status
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] == app {
			out = append(out, st)
		}
	}
	return out
}

// LiveEnv is the environment the app's processes get (without per-process
// values such as PORT).
func (m *Manager) LiveEnv(ctx context.Context, app string) (map[string]string, error) {
	_, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return nil, err
	}
	return r.env, nil
}

// RunOneOff runs a command in the live release's directory and environment
// and returns its exit status. argv is executed directly; a shell runs only
// if the user names one.
func (m *Manager) RunOneOff(ctx context.Context, app string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("no command given")
	}
	_, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return 0, err
	}
	env := copyEnv(r.env)
	env["PROC_TYPE"] = "run"
	return m.cfg.Supervisor.Run(ctx, supervisor.Spec{
		Name:    fmt.Sprintf("%s/run@v%d.%d", app, r.number, m.gen.Add(1)),
		Command: argv,
		Dir:     r.dir,
		Env:     envList(env),
		User:    r.user,
		Sandbox: m.sandboxFor(r),
	}, stdin, stdout, stderr)
}

// RunTerminal runs a command like RunOneOff, on a pseudo-terminal of the
// client's size that follows its window changes (ssh -t); term names the
// client's terminal type (TERM), empty when it sent none.
func (m *Manager) RunTerminal(ctx context.Context, app string, argv []string, rw io.ReadWriter, term string, size supervisor.WinSize, resize <-chan supervisor.WinSize) (int, error) {
	if len(argv) == 0 {
		return 0, errors.New("no command given")
	}
	tr, ok := m.cfg.Supervisor.(terminalRunner)
	if !ok {
		return 0, errors.New("this process manager cannot run a terminal")
	}
	_, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return 0, err
	}
	env := copyEnv(r.env)
	env["PROC_TYPE"] = "run"
	if term != "" {
		env["TERM"] = term
	}
	return tr.RunTerminal(ctx, supervisor.Spec{
		Name:    fmt.Sprintf("%s/run@v%d.%d", app, r.number, m.gen.Add(1)),
		Command: argv,
		Dir:     r.dir,
		Env:     envList(env),
		User:    r.user,
		Sandbox: m.sandboxFor(r),
	}, rw, size, resize)
}

// Destroy stops and removes an app: processes, route, repository, releases,
// logs. Its DATA_DIR is kept unless purge.
func (m *Manager) Destroy(ctx context.Context, app string, purge bool) error {
	unlock, err := m.lock(ctx, app, nil)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := m.cfg.Store.App(ctx, app); err != nil {
		return err
	}
	m.stopOld(ctx, app, 0, nil)
	if err := m.unsleep(ctx, app); err != nil {
		return err
	}
	if err := m.cfg.Router.Remove(ctx, app); err != nil {
		return fmt.Errorf("remove route: %w", err)
	}
	u, err := m.appUser(ctx, app)
	if err != nil {
		return err
	}
	if err := m.cfg.Store.DeleteApp(ctx, app); err != nil {
		return err
	}
	dirs := []string{m.paths.Repo(app), m.paths.AppDir(app), m.paths.Logs(app), m.paths.Run(app), m.paths.Tmp(app)}
	if u != nil && within(m.cfg.Root, m.cfg.CacheDir) {
		// No later app of this root gets this uid, so no one would use its
		// caches. A cache directory given from outside the root may be
		// shared with another hop3 whose app of the same uid builds with
		// it: that one is left alone.
		dirs = append(dirs, m.appCacheDir(u))
	}
	if purge {
		dirs = append(dirs, m.paths.Data(app))
	}
	var errs []error
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	// The app's environments went with its directory: copies only they
	// linked would otherwise stay until some later deploy prunes.
	m.pruneSharedObjects()
	return errors.Join(errs...)
}

// Create makes an app without a push.
func (m *Manager) Create(ctx context.Context, app string) error {
	if _, err := m.cfg.Store.App(ctx, app); err == nil {
		return fmt.Errorf("app %s already exists", app)
	}
	return m.ensureApp(ctx, app)
}

// UpdateRoute recomputes app's route (hosts, static paths, TLS options) and
// applies it: the only kind of change that touches Caddy's config.
func (m *Manager) UpdateRoute(ctx context.Context, app string) error {
	unlock, err := m.lock(ctx, app, nil)
	if err != nil {
		return err
	}
	defer unlock()
	return m.updateRoute(ctx, app)
}

func (m *Manager) updateRoute(ctx context.Context, app string) error {
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return nil
	}
	r, err := m.loadRelease(ctx, app, a.Release)
	if err != nil {
		return err
	}
	route, ok, err := m.routeFor(ctx, r)
	if err != nil || !ok {
		return err
	}
	route.Stopped = a.State == store.AppStopped
	return m.cfg.Router.Set(ctx, route)
}

// event records what happened to an app, for `events`.
func (m *Manager) event(ctx context.Context, app, kind, actor, msg string) {
	if err := m.cfg.Store.AddEvent(context.WithoutCancel(ctx), store.Event{App: app, Kind: kind, Actor: actor, Message: msg}); err != nil {
		m.log.Warn("record event", "app", app, "err", err)
	}
}
