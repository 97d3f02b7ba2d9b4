package app

import (
	"os"
	"path/filepath"
	"slices"

	"hop3/runtime/sandbox"
	"hop3/runtime/supervisor"
)

// sandboxFor is what the processes of release r may reach of the file
// system (Landlock, where the kernel has it): write their release
// (ephemeral, as on Heroku), DATA_DIR, TMPDIR and socket directory; read
// and execute their environments (virtualenv, node_modules), the Python
// the virtualenv was made from, the directories of hop3's own PATH and the
// system's programs; read what the system's libraries need (sandbox.System).
// Nothing of hop3 (its database, keys, sockets, logs) nor of another app.
//
// Paths come from hop3's layout and hop3's own environment only, never from
// the app's config: a config var must not widen the sandbox.
func (m *Manager) sandboxFor(r release) *supervisor.Sandbox {
	sys := sandbox.System()
	exec := slices.Concat(sys.ReadExec, []string{m.paths.envs(r.app)})
	if r.meta.Venv != "" {
		// A virtualenv links to its interpreter, whose standard library
		// lives beside it: /root/.pyenv/versions/3.12.1/{bin,lib}.
		if py, err := filepath.EvalSymlinks(filepath.Join(r.meta.Venv, "bin", "python")); err == nil {
			exec = append(exec, filepath.Dir(filepath.Dir(py)))
		}
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if filepath.IsAbs(dir) && dir != "/" {
			exec = append(exec, dir)
		}
	}
	return &supervisor.Sandbox{
		ReadOnly: sys.ReadOnly,
		ReadExec: exec,
		ReadWrite: slices.Concat(sys.ReadWrite, []string{
			r.dir, m.paths.data(r.app), m.paths.tmp(r.app), m.paths.run(r.app),
		}),
	}
}
