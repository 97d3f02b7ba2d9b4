package app

import (
	"path/filepath"
	"strconv"
)

// layout names every path hop3 uses under its root.
type layout struct{ root string }

func (l layout) db() string                 { return filepath.Join(l.root, "hop3.db") }
func (l layout) hostKey() string            { return filepath.Join(l.root, "ssh", "host_ed25519") }
func (l layout) repo(app string) string     { return filepath.Join(l.root, "repos", app+".git") }
func (l layout) appDir(app string) string   { return filepath.Join(l.root, "apps", app) }
func (l layout) releases(app string) string { return filepath.Join(l.appDir(app), "releases") }
func (l layout) envs(app string) string     { return filepath.Join(l.appDir(app), "envs") }
func (l layout) data(app string) string     { return filepath.Join(l.root, "data", app) }
func (l layout) logs(app string) string     { return filepath.Join(l.root, "logs", app) }
func (l layout) run(app string) string      { return filepath.Join(l.root, "run", app) }
func (l layout) pids() string               { return filepath.Join(l.root, "run", "pids") }
func (l layout) cache() string              { return filepath.Join(l.root, "cache") }
func (l layout) caddy() string              { return filepath.Join(l.root, "caddy") }
func (l layout) tmpDir(app string) string   { return filepath.Join(l.root, "tmp", app) }
func (l layout) release(app string, n int) string {
	return filepath.Join(l.releases(app), strconv.Itoa(n))
}

// buildLog keeps the output of deploy attempt n of an app, which may
// never have become a release.
func (l layout) buildLog(app string, attempt int) string {
	return filepath.Join(l.appDir(app), "builds", strconv.Itoa(attempt)+".log")
}

// legacyBuildLog is where a build log was kept, beside its release, before
// attempts were numbered apart from releases (their numbers were the same).
func (l layout) legacyBuildLog(app string, n int) string {
	return filepath.Join(l.releases(app), strconv.Itoa(n)+".build.log")
}

// manifest lists the files a release held when it went live.
func (l layout) manifest(app string, n int) string {
	return filepath.Join(l.releases(app), strconv.Itoa(n)+".files")
}

// current is a symlink to the live release directory: static files are
// served through it so a deploy changes no route.
func (l layout) current(app string) string { return filepath.Join(l.appDir(app), "current") }

// webSocket is the stable socket path Caddy dials for an app; it is a
// symlink to the live release's socket, swapped atomically on deploy.
func (l layout) webSocket(app string) string { return filepath.Join(l.run(app), "web.sock") }

// staticSocket is the stable socket of the app's static file server, a
// symlink to the live generation's socket like webSocket.
func (l layout) staticSocket(app string) string { return filepath.Join(l.run(app), "static.sock") }

// processLog is where one process of an app writes.
func (l layout) processLog(app, kind string, index int) string {
	return filepath.Join(l.logs(app), kind+"."+strconv.Itoa(index)+".log")
}
