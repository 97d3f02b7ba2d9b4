package doctor

import (
	"fmt"
	"io/fs"
	"strings"

	"hop3/internal/isolation"
	"hop3/internal/layout"
	"hop3/internal/router"
)

// isolationCheck reports whether apps run as their own users: what the
// running daemon recorded, else what hop3 started by this user would do.
func (c *checker) isolationCheck() Result {
	const name = "isolation"
	if c.running && c.sys.ReadFile != nil {
		if b, err := c.sys.ReadFile(layout.New(c.cfg.Root).IsolationState()); err == nil {
			state := strings.TrimSpace(string(b))
			if state == "on" {
				return ok(name, "every app runs as its own user")
			}
			why := strings.TrimSpace(strings.TrimPrefix(state, "off"))
			return fail(name, "every app runs as hop3's own user and can read hop3's database, keys and other apps' files ("+why+")", isolation.Fix)
		}
	}
	if c.cfg.Isolation == "off" {
		return fail(name, "HOP3_ISOLATION=off: every app would run as hop3's own user", "remove HOP3_ISOLATION (or set it to auto), and "+isolation.Fix)
	}
	if c.sys.CanSwitch == nil {
		return skip(name, "skipped: cannot tell")
	}
	if err := c.sys.CanSwitch(); err != nil {
		return fail(name, "hop3 started by this user would run every app as its own user: "+err.Error(), isolation.Fix)
	}
	return ok(name, "hop3 started by this user runs each app as its own user")
}

// privatePath is a path under the root no other user may read, with the
// most permission it may have.
type privatePath struct {
	path string
	max  fs.FileMode
}

// privatePaths are the private paths under root. The root itself may be
// passed through (apps reach their own directories), never listed.
func privatePaths(root string) []privatePath {
	l := layout.New(root)
	paths := []privatePath{
		{l.Root(), 0o711},
		{l.DB(), 0o600},
		{l.DB() + "-wal", 0o600},
		{l.DB() + "-shm", 0o600},
		{l.Control(), 0o600},
		{l.SSH(), 0o700},
		{l.HostKey(), 0o600},
		{l.ReposDir(), 0o700},
		{l.LogsDir(), 0o700},
		// Caddy's group enters it when Caddy runs as its own user; its
		// state and admin directory are its own.
		{l.Caddy(), 0o750},
	}
	for _, d := range router.OwnDirs(l.Caddy(), true) {
		paths = append(paths, privatePath{d, 0o700})
	}
	return append(paths, privatePath{l.PIDs(), 0o700})
}

// stateModes checks that nothing under the root is open to other users.
func (c *checker) stateModes() Result {
	const name = "state-root"
	if c.sys.Lstat == nil {
		return skip(name, "skipped: cannot tell")
	}
	if _, err := c.sys.Lstat(c.cfg.Root); err != nil {
		return skip(name, "no state directory yet ("+c.cfg.Root+")")
	}
	var loose, fixes []string
	for _, p := range privatePaths(c.cfg.Root) {
		path := p.path
		info, err := c.sys.Lstat(path)
		if err != nil {
			continue
		}
		if extra := info.Mode().Perm() &^ p.max; extra != 0 {
			loose = append(loose, fmt.Sprintf("%s (%#o)", path, info.Mode().Perm()))
			fixes = append(fixes, fmt.Sprintf("chmod %#o %s", info.Mode().Perm()&p.max, path))
		}
	}
	if len(loose) > 0 {
		return fail(name, "other users may read "+strings.Join(loose, ", "), strings.Join(fixes, "; ")+" (hop3 serve closes the root and its directories at every start)")
	}
	return ok(name, c.cfg.Root+": nothing readable by other users")
}
