package isolation

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"hop3/runtime/supervisor"
)

// Access says who may reach a directory under hop3's root.
type Access int

// The kinds of directory. With isolation off every one is 0700 and hop3's:
// nothing but hop3 runs, so no one else needs to pass.
const (
	// Private: hop3 alone (0700): the database's directory, repositories,
	// logs, the SSH key, caches.
	Private Access = iota + 1
	// Traverse: hop3's; anyone may pass through to a name it knows, no one
	// may list it (0711): the root, apps/, data/, run/, tmp/.
	Traverse
	// AppRead: hop3's; the app may list and read it, not write it (0750,
	// group the app's): an app's directory and its environments.
	AppRead
	// AppOwn: the app's own, no one else's (0700): DATA_DIR, TMPDIR, build
	// caches.
	AppOwn
	// AppServe: the app's; Caddy's group may read it (2750, group Base):
	// the app's socket directory, its release directories. The set-group-id
	// bit gives what the app creates inside (its sockets) Caddy's group.
	AppServe
)

// Mode is the permission bits of a directory of kind a.
func (p Policy) Mode(a Access) fs.FileMode {
	if !p.On {
		return 0o700
	}
	switch a {
	case Traverse:
		return 0o711
	case AppRead:
		return 0o750
	case AppServe:
		return 0o750 | fs.ModeSetgid
	}
	return 0o700
}

// sysMode turns a FileMode into the kernel's mode bits.
func sysMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetgid != 0 {
		mode |= syscall.S_ISGID
	}
	return mode
}

// owner returns the uid and gid a directory of kind a belongs to; -1 leaves
// the owner as it is (hop3's, for a directory hop3 creates).
func (p Policy) owner(a Access, u *supervisor.Credential) (int, int) {
	if !p.On {
		return -1, -1
	}
	self, selfGID := os.Getuid(), os.Getgid()
	switch a {
	case AppRead:
		if u != nil {
			return self, int(u.GID)
		}
	case AppOwn:
		if u != nil {
			return int(u.UID), int(u.GID)
		}
	case AppServe:
		if u != nil {
			return int(u.UID), int(p.Base)
		}
	}
	return self, selfGID
}

// Dir creates dir if it is missing (its parent must exist) and gives it the
// owner and mode of kind a; u is the app's credential, nil for hop3's own
// directories. It refuses a symbolic link where dir should be.
func (p Policy) Dir(dir string, a Access, u *supervisor.Credential) error {
	mode := p.Mode(a)
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Open without following, then change the directory through its
	// descriptor: a name swapped for a link meanwhile changes nothing else.
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if uid, gid := p.owner(a, u); uid >= 0 {
		if err := unix.Fchown(fd, uid, gid); err != nil {
			return fmt.Errorf("give %s to %d:%d: %w", dir, uid, gid, err)
		}
	}
	if err := unix.Fchmod(fd, sysMode(mode)); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return nil
}

// Dirs creates each directory, in order, with Dir.
func (p Policy) Dirs(a Access, u *supervisor.Credential, dirs ...string) error {
	for _, d := range dirs {
		if err := p.Dir(d, a, u); err != nil {
			return err
		}
	}
	return nil
}

// Give hands the tree at path to the app: everything in it becomes u's.
// Links are not followed. Nothing happens with isolation off or u nil.
func (p Policy) Give(path string, u *supervisor.Credential) error {
	if !p.On || u == nil {
		return nil
	}
	if err := chownTree(path, int(u.UID), int(u.GID), 0); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", path, u.UID, err)
	}
	return nil
}

// Take makes the tree at path hop3's again and read-only for everyone
// else: group and other write bits and set-id bits are cleared, so that
// what an app built can be used by it but never changed by it afterwards.
func (p Policy) Take(path string) error {
	if !p.On {
		return nil
	}
	if err := chownTree(path, os.Getuid(), os.Getgid(), 0o022|fs.FileMode(syscall.S_ISUID|syscall.S_ISGID)); err != nil {
		return fmt.Errorf("take back %s: %w", path, err)
	}
	return nil
}

// OwnedBy reports whether path (not followed) belongs to uid.
func OwnedBy(path string, uid uint32) bool {
	info, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Uid == uid
}
