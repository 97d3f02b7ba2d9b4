package app

import (
	"os"
	"path/filepath"
	"slices"

	"hop3/internal/addons"
	"hop3/runtime/sandbox"
	"hop3/runtime/supervisor"
)

// sandboxFor is what the processes of release r may reach of the file
// system (Landlock, where the kernel has it): write their release
// (ephemeral, as on Heroku), DATA_DIR and TMPDIR, write files and sockets
// but no links in their socket directory; read
// and execute their environments (virtualenv, node_modules), the Python
// the virtualenv was made from, the programs on hop3's own PATH (toolDirs)
// and the system's; read what the system's libraries need (sandbox.System).
// Nothing of hop3 (its database, keys, sockets, logs) nor of another app.
//
// Paths come from hop3's layout and hop3's own environment only, never from
// the app's config: a config var must not widen the sandbox.
func (m *Manager) sandboxFor(r release) *supervisor.Sandbox {
	sys := sandbox.System()
	exec := slices.Concat(sys.ReadExec, []string{m.paths.Envs(r.app)})
	if r.meta.Venv != "" {
		// A virtualenv links to its interpreter, whose standard library
		// lives beside it: /root/.pyenv/versions/3.12.1/{bin,lib}.
		if py, err := filepath.EvalSymlinks(filepath.Join(r.meta.Venv, "bin", "python")); err == nil {
			exec = append(exec, filepath.Dir(filepath.Dir(py)))
		}
	}
	exec = append(exec, m.toolDirs(os.Getenv("PATH"))...)
	own := []string{r.dir, m.paths.Data(r.app), m.paths.Tmp(r.app)}
	// Its add-ons' sockets: the database's, Redis's.
	own = append(own, addons.SandboxPaths(m.paths.Root(), r.app)...)
	return &supervisor.Sandbox{
		ReadOnly:  sys.ReadOnly,
		ReadExec:  exec,
		ReadWrite: slices.Concat(sys.ReadWrite, own),
		// Granian binds its socket there and the asgi wrapper keeps its
		// drain files there; the app must not re-point web.sock, the
		// link Caddy dials.
		Shared: []string{m.paths.Run(r.app)},
	}
}

// toolDirs lists the directories of path that an app may execute from: each
// absolute one, and the tree a bin, sbin or shims directory belongs to,
// since a version manager's shim runs programs elsewhere in its tree
// (~/.pyenv/shims/python3 runs ~/.pyenv/libexec/pyenv, then a Python in
// ~/.pyenv/versions). Never "/", a home directory (~/bin is on many PATHs),
// nor a directory holding hop3's root or inside it.
func (m *Manager) toolDirs(path string) []string {
	home, _ := os.UserHomeDir()
	allowed := func(dir string) bool {
		if !filepath.IsAbs(dir) || dir == "/" || dir == home || dir == "/root" || filepath.Dir(dir) == "/home" {
			return false
		}
		return !within(dir, m.paths.Root()) && !within(m.paths.Root(), dir)
	}
	var dirs []string
	for _, dir := range filepath.SplitList(path) {
		dir = filepath.Clean(dir)
		if !allowed(dir) {
			continue
		}
		dirs = append(dirs, dir)
		switch filepath.Base(dir) {
		case "bin", "sbin", "shims":
			if tree := filepath.Dir(dir); allowed(tree) {
				dirs = append(dirs, tree)
			}
		}
	}
	return dirs
}
