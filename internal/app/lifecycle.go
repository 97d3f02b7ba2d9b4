package app

import (
	"context"
	"errors"
	"io"

	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// DeployOptions tune a deploy started by a command rather than a push.
type DeployOptions struct {
	NoCache bool   // rebuild dependency environments from scratch
	Actor   string // who asked, recorded with the release
}

var errTODO = errors.New("not implemented yet")

// Deploy builds and deploys the app's current revision again.
func (m *Manager) Deploy(ctx context.Context, app string, opts DeployOptions, out *ui.Writer) error {
	return errTODO
}

// Restart starts the live release's processes anew beside the running ones
// and switches to them with zero downtime.
func (m *Manager) Restart(ctx context.Context, app string, out *ui.Writer) error {
	return errTODO
}

// StopApp stops every process of app; its route answers with the stopped page.
func (m *Manager) StopApp(ctx context.Context, app string, out *ui.Writer) error {
	return errTODO
}

// StartApp starts a stopped app's live release.
func (m *Manager) StartApp(ctx context.Context, app string, out *ui.Writer) error {
	return errTODO
}

// Scale sets process counts (for wsgi/asgi: Granian workers) and applies
// them with zero downtime; kinds not named keep running untouched.
func (m *Manager) Scale(ctx context.Context, app string, counts map[string]int, out *ui.Writer) error {
	return errTODO
}

// Rollback switches to an earlier release's build (number 0: the release
// before the live one) with zero downtime and no rebuild.
func (m *Manager) Rollback(ctx context.Context, app string, number int, actor string, out *ui.Writer) error {
	return errTODO
}

// ApplyConfig restarts app so that its processes see its current config
// vars (after config:set or config:unset), with zero downtime.
func (m *Manager) ApplyConfig(ctx context.Context, app string, out *ui.Writer) error {
	return errTODO
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
	return nil, errTODO
}

// RunOneOff runs a command in the live release's directory and environment
// and returns its exit status.
func (m *Manager) RunOneOff(ctx context.Context, app string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	return 0, errTODO
}

// Destroy stops and removes an app: processes, route, repository, releases.
// Its DATA_DIR is kept unless purge.
func (m *Manager) Destroy(ctx context.Context, app string, purge bool) error {
	return errTODO
}

// Create makes an app without a push.
func (m *Manager) Create(ctx context.Context, app string) error {
	return m.ensureApp(ctx, app)
}

// UpdateRoute recomputes app's route (hosts, static paths, TLS options) and
// applies it: the only kind of change that touches Caddy's config.
func (m *Manager) UpdateRoute(ctx context.Context, app string) error {
	return errTODO
}
