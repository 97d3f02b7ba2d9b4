package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	"hop3/runtime/supervisor"
)

// Observer is told about deploys and builds as they finish, for metrics. Its
// methods must return quickly: they run on the deploy's goroutine.
type Observer interface {
	// DeployFinished reports a deploy's outcome and how long it took,
	// from the release record to the switch (or the failure).
	DeployFinished(app string, ok bool, took time.Duration)
	// BuildFinished reports a successful build and the environments it
	// reused ("python-venv", "node-modules").
	BuildFinished(app string, cacheHits []string)
}

func (m *Manager) observeDeploy(app string, ok bool, took time.Duration) {
	if m.cfg.Observer != nil {
		m.cfg.Observer.DeployFinished(app, ok, took)
	}
}

func (m *Manager) observeBuild(app string, cacheHits []string) {
	if m.cfg.Observer != nil {
		m.cfg.Observer.BuildFinished(app, cacheHits)
	}
}

// restartEventGap is the least time between two "restart" events about the
// same process: a process that fails quickly is restarted several times
// before it is declared crashed, and one line says enough.
const restartEventGap = time.Minute

// RecordProcessEvents writes what happens to apps' processes without anyone
// asking into the event log: a process that exited and is being restarted
// ("restart") and one that kept failing and was given up ("crash"). It
// reads the supervisor's events until the channel closes or ctx ends.
func (m *Manager) RecordProcessEvents(ctx context.Context, events <-chan supervisor.Event) {
	lastRestart := map[string]time.Time{}
	for {
		var ev supervisor.Event
		var ok bool
		select {
		case <-ctx.Done():
			return
		case ev, ok = <-events:
			if !ok {
				return
			}
		}
		switch {
		case ev.To == supervisor.Crashed:
			app, proc, st := m.describe(ev.Name)
			if app == "" {
				continue
			}
			msg := fmt.Sprintf("%s crashed after %d restarts", proc, st.Restarts)
			if st.LastExit != "" {
				msg += " (last: " + st.LastExit + ")"
			}
			msg += "; it stays down until the app is restarted or deployed"
			m.event(ctx, app, "crash", "", msg)
		case ev.From == supervisor.Running && ev.To == supervisor.Backoff:
			app, proc, st := m.describe(ev.Name)
			if app == "" {
				continue
			}
			key := app + "/" + proc
			if t, seen := lastRestart[key]; seen && time.Since(t) < restartEventGap {
				continue
			}
			lastRestart[key] = time.Now()
			msg := proc + " exited"
			if st.LastExit != "" {
				msg += " (" + st.LastExit + ")"
			}
			m.event(ctx, app, "restart", "", msg+"; restarting it")
		}
	}
}

// describe names the app and the process ("worker.1") behind a supervisor
// process name, with its status; app is empty for processes that belong
// to no app's Procfile (one-off runs, release commands).
func (m *Manager) describe(name string) (app, proc string, st supervisor.Status) {
	for _, s := range m.cfg.Supervisor.List() {
		if s.Name == name {
			st = s
			break
		}
	}
	if st.Labels["app"] != "" && st.Labels["kind"] != "" {
		return st.Labels["app"], st.Labels["kind"] + "." + st.Labels["index"], st
	}
	// The process is already gone from the list: read its name, which
	// processName builds as app/kind.index@vN.gen.
	app, rest, ok := strings.Cut(name, "/")
	if !ok {
		return "", "", st
	}
	proc, _, _ = strings.Cut(rest, "@")
	if !strings.Contains(proc, ".") || strings.HasPrefix(proc, "run") {
		return "", "", st
	}
	return app, proc, st
}
