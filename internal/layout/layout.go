// Package layout names every path hop3 uses under its root. It is the one
// place that knows where a repository, a release, a log or a socket lives;
// every other package asks it.
//
// A package that is handed one directory and lays it out itself keeps that
// inside: Caddy's directory (router: config, data, boot.json, caddy.log,
// its own admin socket) and the add-ons' directory (addons: the cluster,
// the Redis servers and their sockets).
package layout

import (
	"path/filepath"
	"strconv"
)

// Layout is hop3's root and the paths under it.
type Layout struct{ root string }

// New returns the layout of the hop3 rooted at root.
func New(root string) Layout { return Layout{root: root} }

// Root is hop3's state directory.
func (l Layout) Root() string { return l.root }

// DB is hop3's SQLite database.
func (l Layout) DB() string { return filepath.Join(l.root, "hop3.db") }

// SSH is the private directory of the SSH host key.
func (l Layout) SSH() string { return filepath.Join(l.root, "ssh") }

// HostKey is the SSH host key.
func (l Layout) HostKey() string { return filepath.Join(l.SSH(), "host_ed25519") }

// Control is the socket through which `hop3 COMMAND` on the server reaches
// the daemon as an admin.
func (l Layout) Control() string { return filepath.Join(l.root, "control.sock") }

// ControlStaging is where the control socket is bound before it is moved
// into place: inside the private ssh directory, so it is never reachable
// with wider permissions.
func (l Layout) ControlStaging() string { return filepath.Join(l.SSH(), "control.sock.new") }

// ReposDir holds every app's bare repository.
func (l Layout) ReposDir() string { return filepath.Join(l.root, "repos") }

// Repo is an app's bare git repository.
func (l Layout) Repo(app string) string { return filepath.Join(l.ReposDir(), app+".git") }

// AppsDir holds every app's releases and environments.
func (l Layout) AppsDir() string { return filepath.Join(l.root, "apps") }

// AppDir is an app's directory of releases and environments.
func (l Layout) AppDir(app string) string { return filepath.Join(l.AppsDir(), app) }

// Releases holds an app's release directories.
func (l Layout) Releases(app string) string { return filepath.Join(l.AppDir(app), "releases") }

// Release is the directory of release n of an app.
func (l Layout) Release(app string, n int) string {
	return filepath.Join(l.Releases(app), strconv.Itoa(n))
}

// Envs holds an app's built environments (virtualenvs, node_modules).
func (l Layout) Envs(app string) string { return filepath.Join(l.AppDir(app), "envs") }

// BuildLog keeps the output of deploy attempt n of an app, which may
// never have become a release.
func (l Layout) BuildLog(app string, attempt int) string {
	return filepath.Join(l.AppDir(app), "builds", strconv.Itoa(attempt)+".log")
}

// LegacyBuildLog is where a build log was kept, beside its release, before
// attempts were numbered apart from releases (their numbers were the same).
func (l Layout) LegacyBuildLog(app string, n int) string {
	return filepath.Join(l.Releases(app), strconv.Itoa(n)+".build.log")
}

// Manifest lists the files a release held when it went live.
func (l Layout) Manifest(app string, n int) string {
	return filepath.Join(l.Releases(app), strconv.Itoa(n)+".files")
}

// Current is a symlink to the live release directory: static files are
// served through it so a deploy changes no route.
func (l Layout) Current(app string) string { return filepath.Join(l.AppDir(app), "current") }

// DataDir holds every app's DATA_DIR.
func (l Layout) DataDir() string { return filepath.Join(l.root, "data") }

// Data is an app's DATA_DIR, kept across releases.
func (l Layout) Data(app string) string { return filepath.Join(l.DataDir(), app) }

// LogsDir holds every app's process logs, and the add-ons'.
func (l Layout) LogsDir() string { return filepath.Join(l.root, "logs") }

// Logs is the directory of an app's process logs.
func (l Layout) Logs(app string) string { return filepath.Join(l.LogsDir(), app) }

// ProcessLog is where one process of an app writes.
func (l Layout) ProcessLog(app, kind string, index int) string {
	return filepath.Join(l.Logs(app), kind+"."+strconv.Itoa(index)+".log")
}

// AddonLog is where add-on process name writes.
func (l Layout) AddonLog(name string) string {
	return filepath.Join(l.LogsDir(), "addons", name+".log")
}

// RunDir holds every app's socket directory, the pid files and the
// isolation state.
func (l Layout) RunDir() string { return filepath.Join(l.root, "run") }

// Run is an app's socket directory.
func (l Layout) Run(app string) string { return filepath.Join(l.RunDir(), app) }

// WebSocket is the stable socket path Caddy dials for an app; it is a
// symlink to the live release's socket, swapped atomically on deploy.
func (l Layout) WebSocket(app string) string { return filepath.Join(l.Run(app), "web.sock") }

// StaticSocket is the stable socket of the app's static file server, a
// symlink to the live generation's socket like WebSocket.
func (l Layout) StaticSocket(app string) string { return filepath.Join(l.Run(app), "static.sock") }

// PIDs is where the supervisor records its process groups, so a later
// hop3 can stop what a killed one left running.
func (l Layout) PIDs() string { return filepath.Join(l.RunDir(), "pids") }

// IsolationState is where a running hop3 records whether it isolates apps
// ("on", or "off" and why), for `hop3 doctor`, which may run as another
// user than the daemon.
func (l Layout) IsolationState() string { return filepath.Join(l.RunDir(), "isolation") }

// TmpDir holds every app's TMPDIR.
func (l Layout) TmpDir() string { return filepath.Join(l.root, "tmp") }

// Tmp is an app's TMPDIR.
func (l Layout) Tmp(app string) string { return filepath.Join(l.TmpDir(), app) }

// Cache is the default directory of the shared build caches.
func (l Layout) Cache() string { return filepath.Join(l.root, "cache") }

// SharedObjects holds the one copy per content of the shared libraries
// environments link to. It is under the root, not the cache directory (which
// may be given from elsewhere), because a hard link needs the apps' file
// system.
func (l Layout) SharedObjects() string { return filepath.Join(l.root, "cache", "shared-objects") }

// Caddy is the directory of the Caddy hop3 starts (laid out by router).
func (l Layout) Caddy() string { return filepath.Join(l.root, "caddy") }

// Admin is the directory, only hop3 may enter, of the admin socket hop3
// binds for a Caddy of its own user.
func (l Layout) Admin() string { return filepath.Join(l.root, "admin") }

// HeldAdminSocket is the admin socket hop3 binds and passes to a Caddy of
// its own user: Caddy can not reach it by its path.
func (l Layout) HeldAdminSocket() string { return filepath.Join(l.Admin(), "caddy.sock") }

// GitHooks is the only directory git runs hooks from: outside every
// repository, written by hop3 alone.
func (l Layout) GitHooks() string { return filepath.Join(l.root, "git", "hooks") }

// PushGates holds the private directory of each push's pre-receive socket.
func (l Layout) PushGates() string { return filepath.Join(l.root, "git", "pushes") }

// Addons is the add-ons' directory (laid out by addons).
func (l Layout) Addons() string { return filepath.Join(l.root, "addons") }

// Backups holds an app's add-on backups.
func (l Layout) Backups(app string) string { return filepath.Join(l.root, "backups", app) }
