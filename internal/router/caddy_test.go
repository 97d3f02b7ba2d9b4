package router

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func owner(t *testing.T, path string) (int, int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode() & (os.ModePerm | os.ModeSetgid)
}

// TestPrepareDirOwnUser lays out Caddy's directory for its own user over
// the state of a Caddy that ran as hop3's: the state is given to Caddy
// without following links out of it, hop3 keeps the directory it writes
// in, and a parent Caddy can not enter is reported.
func TestPrepareDirOwnUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	t.Parallel()
	base := shortDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "caddy")
	outside := filepath.Join(base, "outside")
	cert := filepath.Join(dir, "data", "caddy", "certificates", "x.crt")
	for _, f := range []string{outside, cert} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	u := User{UID: 62000, GID: 62000}
	if err := prepareDir(dir, &u); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{dir, 0, u.GID, 0o750},
		{filepath.Join(dir, "data"), u.UID, u.GID, 0o700},
		{filepath.Join(dir, "config"), u.UID, u.GID, 0o700},
		{cert, u.UID, u.GID, 0o600},
		{filepath.Join(dir, "admin"), u.UID, 0, 0o770 | os.ModeSetgid},
		{outside, 0, 0, 0o600},
	} {
		if uid, gid, mode := owner(t, tc.path); uid != tc.uid || gid != tc.gid || mode != tc.mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", tc.path, uid, gid, mode, tc.uid, tc.gid, tc.mode)
		}
	}
	boot := filepath.Join(dir, "boot.json")
	if err := writeFileAtomic(boot, []byte("{}"), &u); err != nil {
		t.Fatal(err)
	}
	if uid, gid, mode := owner(t, boot); uid != 0 || gid != u.GID || mode != 0o640 {
		t.Errorf("boot.json: %d:%d %v, want 0:%d 0640", uid, gid, mode, u.GID)
	}

	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(dir, &u); err == nil || !strings.Contains(err.Error(), "can not enter "+base) {
		t.Errorf("prepareDir under a 0700 parent: %v, want it to name %s", err, base)
	}
}
