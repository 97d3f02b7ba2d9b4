package doctor

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"hop3/internal/isolation"
)

// isolationCheck reports whether apps run as their own users: what the
// running daemon recorded, else what hop3 started by this user would do.
func (c *checker) isolationCheck() Result {
	const name = "isolation"
	if c.running && c.sys.ReadFile != nil {
		if b, err := c.sys.ReadFile(isolation.StatePath(c.cfg.Root)); err == nil {
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

// privatePaths are the paths under the root no other user may read, with
// the most permission each may have. The root itself may be passed
// through (apps reach their own directories), never listed.
var privatePaths = []struct {
	rel string
	max fs.FileMode
}{
	{".", 0o711},
	{"hop3.db", 0o600},
	{"hop3.db-wal", 0o600},
	{"hop3.db-shm", 0o600},
	{"control.sock", 0o600},
	{"ssh", 0o700},
	{"ssh/host_ed25519", 0o600},
	{"repos", 0o700},
	{"logs", 0o700},
	// Caddy's group enters it when Caddy runs as its own user; its state
	// and admin directory are its own.
	{"caddy", 0o750},
	{"caddy/data", 0o700},
	{"caddy/config", 0o700},
	{"caddy/admin", 0o700},
	{"run/pids", 0o700},
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
	for _, p := range privatePaths {
		path := filepath.Join(c.cfg.Root, p.rel)
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
