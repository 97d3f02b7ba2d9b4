package router

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestPrepareDirOwnUser: for a Caddy of its own user, StartCaddy checks the
// layout its caller made instead of making one: directories of Caddy's not
// given to it, or a parent Caddy can not enter, are refused with the path
// named; the boot config is readable by Caddy's group only.
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
	u := User{UID: 62000, GID: 62000}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, u.GID); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(dir, &u); err == nil {
		t.Fatal("a layout without Caddy's directories was accepted")
	}
	for _, d := range OwnDirs(dir) {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareDir(dir, &u); err == nil || !strings.Contains(err.Error(), "not a directory of caddy's user") {
		t.Fatalf("directories still hop3's: %v", err)
	}
	for _, d := range OwnDirs(dir) {
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareDir(dir, &u); err != nil {
		t.Fatalf("laid out: %v", err)
	}
	boot := filepath.Join(dir, "boot.json")
	if err := writeFileAtomic(boot, []byte("{}"), &u); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(boot)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || int(st.Gid) != u.GID || fi.Mode().Perm() != 0o640 {
		t.Errorf("boot.json: %d:%d %v, want 0:%d 0640", st.Uid, st.Gid, fi.Mode().Perm(), u.GID)
	}

	if err := os.Chmod(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := prepareDir(dir, &u); err == nil || !strings.Contains(err.Error(), "can not enter "+base) {
		t.Errorf("under a 0700 parent: %v, want it to name %s", err, base)
	}
}
