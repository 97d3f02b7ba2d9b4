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
	if err := prepareDir(dir, &u, true); err == nil {
		t.Fatal("a layout without Caddy's directories was accepted")
	}
	for _, d := range OwnDirs(dir, true) {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareDir(dir, &u, true); err == nil || !strings.Contains(err.Error(), "not a directory of caddy's user") {
		t.Fatalf("directories still hop3's: %v", err)
	}
	for _, d := range OwnDirs(dir, true) {
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareDir(dir, &u, true); err != nil {
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
	if err := prepareDir(dir, &u, true); err == nil || !strings.Contains(err.Error(), "can not enter "+base) {
		t.Errorf("under a 0700 parent: %v, want it to name %s", err, base)
	}
}

// TestPrepareDirAdmin: Caddy's admin directory is made only when Caddy
// binds its admin socket there; a Caddy handed the socket hop3 holds gets
// none, and a Caddy of its own user is not asked for one.
func TestPrepareDirAdmin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		bindsAdmin bool
	}{
		{"caddy binds its admin socket", true},
		{"hop3 holds the admin socket", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "caddy")
			if err := prepareDir(dir, nil, tc.bindsAdmin); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Dir(AdminSocket(dir)))
			if exists := err == nil; exists != tc.bindsAdmin {
				t.Errorf("admin directory exists: %v, want %v", exists, tc.bindsAdmin)
			}
			for _, d := range OwnDirs(dir, false) {
				if _, err := os.Stat(d); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if os.Geteuid() != 0 {
		return
	}
	// A Caddy of its own user with the held socket: config and data only.
	base := shortDir(t)
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "caddy")
	u := User{UID: 62001, GID: 62001}
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, u.GID); err != nil {
		t.Fatal(err)
	}
	for _, d := range OwnDirs(dir, false) {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	if err := prepareDir(dir, &u, false); err != nil {
		t.Errorf("held admin socket, no admin directory: %v", err)
	}
	if err := prepareDir(dir, &u, true); err == nil {
		t.Error("a Caddy that binds its admin socket was started without its admin directory")
	}
}
