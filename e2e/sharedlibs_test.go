package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mappedInodes returns the inodes of the files named like pattern (a
// substring of the path) that process pid maps, from /proc/pid/maps.
func mappedInodes(t *testing.T, pid int, pattern string) map[string]bool {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// address perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.Contains(fields[5], pattern) {
			out[fields[4]] = true
		}
	}
	return out
}

// TestSharedLibs: two Python apps built alike, each its own user and
// virtualenv, map one copy of Granian's native library, so its pages are
// in memory once; the copy is hop3's and neither app can write it.
func TestSharedLibs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root (or CAP_SETUID and friends)")
	}
	t.Parallel()
	root := shortTemp(t)
	// Landlock off: the write below must be refused by owner and mode alone.
	d := startDaemonEnv(t, root, "127.0.0.1:0", []string{"HOP3_SANDBOX=off"})
	alice := newUser(t, "alice")
	d.register(alice)
	for _, app := range []string{"a", "b"} {
		newWorkdir(t, isolationApp("hello from "+app)).mustPush(d, alice, app)
	}
	for _, app := range []string{"a", "b"} {
		wantBody(t, d, app+".localhost", "/", "hello from "+app)
	}

	sos := map[string]string{}
	for _, app := range []string{"a", "b"} {
		found, _ := filepath.Glob(filepath.Join(root, "apps", app, "envs", "py-*", "lib", "python*", "site-packages", "granian", "_granian*.so"))
		if len(found) != 1 {
			t.Fatalf("app %s: Granian libraries %v, want one", app, found)
		}
		sos[app] = found[0]
	}
	infoA, err := os.Stat(sos["a"])
	if err != nil {
		t.Fatal(err)
	}
	infoB, err := os.Stat(sos["b"])
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(infoA, infoB) {
		t.Errorf("%s and %s are different files", sos["a"], sos["b"])
	}
	st := infoA.Sys().(*syscall.Stat_t)
	if st.Uid != 0 || infoA.Mode().Perm()&0o022 != 0 {
		t.Errorf("shared library owner %d mode %o: want root's, writable by no one else", st.Uid, infoA.Mode().Perm())
	}
	// The environments' link and the store's copy: one each.
	if st.Nlink != 3 {
		t.Errorf("shared library has %d links, want 3 (two environments and the store)", st.Nlink)
	}
	if m := fileMode(t, filepath.Join(root, "cache", "shared-objects")); m.Perm()&0o077 != 0 {
		t.Errorf("shared-object store mode %o, want hop3's alone", m.Perm())
	}

	// The running processes map that one file.
	want := fmt.Sprint(st.Ino)
	for _, app := range []string{"a", "b"} {
		pids := granianPIDs(t, root, app)
		if len(pids) == 0 {
			t.Fatalf("no Granian process for %s", app)
		}
		for _, pid := range pids {
			got := mappedInodes(t, pid, "_granian")
			if len(got) != 1 || !got[want] {
				t.Errorf("%s: pid %d maps _granian inodes %v, want only %s", app, pid, got, want)
			}
		}
	}

	// The app's own user cannot write the shared copy through its
	// environment, nor replace it there.
	for _, script := range []string{
		`f=$(find "$VIRTUAL_ENV" -name '_granian*.so'); [ -n "$f" ] && echo x >> "$f"`,
		`f=$(find "$VIRTUAL_ENV" -name '_granian*.so'); [ -n "$f" ] && rm -f "$f"`,
	} {
		if r := d.command(alice, "", "run", "a", "--", "sh", "-c", script); r.code == 0 {
			t.Errorf("app a's user changed the shared library (%s): %s", script, r)
		}
	}
	after, err := os.Stat(sos["b"])
	if err != nil || after.Size() != infoA.Size() || after.ModTime() != infoA.ModTime() {
		t.Errorf("shared library changed: %v, %v", after, err)
	}
	wantBody(t, d, "b.localhost", "/", "hello from b")
}
