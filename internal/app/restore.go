package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
)

// loadRelease rebuilds the description of an already built release from
// its directory and recorded metadata, without building anything.
func (m *Manager) loadRelease(ctx context.Context, app string, number int) (release, error) {
	rec, err := m.cfg.Store.Release(ctx, app, number)
	if err != nil {
		return release{}, fmt.Errorf("release v%d of %s: %w", number, app, err)
	}
	r := release{app: app, number: number, dir: m.paths.Release(app, number)}
	if r.user, err = m.appUser(ctx, app); err != nil {
		return r, err
	}
	if rec.Build != "" {
		if err := json.Unmarshal([]byte(rec.Build), &r.meta); err != nil {
			return r, fmt.Errorf("release v%d of %s: bad build record: %w", number, app, err)
		}
	}
	if r.procfile, err = readProcfile(r.dir); err != nil {
		return r, err
	}
	if r.env, err = m.runtimeEnv(ctx, r); err != nil {
		return r, err
	}
	r.scale, err = m.cfg.Store.Scale(ctx, app)
	return r, err
}

// Routes lists the route of every app that has a live release: the desired
// state Caddy is loaded with when hop3 or Caddy starts.
func (m *Manager) Routes(ctx context.Context) ([]router.Route, error) {
	apps, err := m.cfg.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	var routes []router.Route
	for _, a := range apps {
		if a.Release == 0 {
			continue
		}
		r, err := m.loadRelease(ctx, a.Name, a.Release)
		if err != nil {
			m.log.Error("load release for routing", "app", a.Name, "err", err)
			continue
		}
		route, ok, err := m.routeFor(ctx, r)
		if err != nil {
			// One app's bad route (say, a host another app took meanwhile)
			// must not keep every other app off the air.
			m.log.Error("route of app left out", "app", a.Name, "err", err)
			continue
		}
		if ok {
			route.Stopped = a.State == store.AppStopped
			routes = append(routes, route)
		}
	}
	return routes, nil
}

// Restore starts the live release of every running app, as after a restart
// of hop3. Apps start a few at a time (restoreLimit): most of a start is
// waiting for readiness and the settle time, which overlap. One app that
// fails to start does not keep the others down.
func (m *Manager) Restore(ctx context.Context) error {
	if n, err := m.cfg.Store.FailBuilding(ctx, interrupted); err != nil {
		return err
	} else if n > 0 {
		m.log.Warn("deploys interrupted by a stop of hop3 marked failed", "count", n)
	}
	return m.restoreApps(ctx, restoreLimit())
}

// restoreLimit is how many apps Restore starts at once: a few per core,
// since starting apps mostly waits, but capped, so twenty apps importing
// their code at once do not slow every one of them down.
func restoreLimit() int { return min(runtime.NumCPU()*2, 8) }

// restoreApps starts the live release of every running app, at most limit
// at once, and joins their errors in the order of the apps.
func (m *Manager) restoreApps(ctx context.Context, limit int) error {
	apps, err := m.cfg.Store.Apps(ctx)
	if err != nil {
		return err
	}
	errs := make([]error, len(apps))
	slots := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, a := range apps {
		if a.Release == 0 || a.State == store.AppStopped {
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = m.restoreApp(ctx, a)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// restoreApp starts one app's live release, or puts its waker up when it
// was asleep, and logs how that went.
func (m *Manager) restoreApp(ctx context.Context, a store.App) error {
	if !a.Asleep.IsZero() {
		err := m.restoreAsleep(ctx, a.Name, a.Release)
		if err == nil {
			m.log.Info("app sleeps until its next request", "app", a.Name, "release", a.Release)
			return nil
		}
		m.log.Error("put sleeping app's waker up; starting it instead", "app", a.Name, "err", err)
	}
	r, err := m.loadRelease(ctx, a.Name, a.Release)
	if err == nil {
		err = m.activate(ctx, r, nil, ui.New(io.Discard, false))
	}
	if err != nil {
		m.log.Error("restore app", "app", a.Name, "release", a.Release, "err", err)
		return fmt.Errorf("%s: %w", a.Name, err)
	}
	m.log.Info("app restored", "app", a.Name, "release", a.Release)
	return nil
}

// interrupted is the failure recorded for deploys a stop of hop3 cut short.
// Nothing else needs repair after one: the deploy ran inside git's
// pre-receive step, and the hook, losing its connection to hop3, refused
// the push, so no branch moved.
const interrupted = "interrupted: hop3 stopped during the deploy"
