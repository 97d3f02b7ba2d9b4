package isolation

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"hop3/runtime/supervisor"
)

func TestModes(t *testing.T) {
	on := Policy{On: true, Base: DefaultBase}
	off := Policy{Base: DefaultBase}
	for _, c := range []struct {
		a      Access
		on     os.FileMode
		offDir os.FileMode
	}{
		{Private, 0o700, 0o700},
		{Traverse, 0o711, 0o700},
		{AppRead, 0o750, 0o700},
		{AppOwn, 0o700, 0o700},
		{AppServe, 0o750 | os.ModeSetgid, 0o700},
	} {
		if got := on.Mode(c.a); got != c.on {
			t.Errorf("on: mode of %d = %o, want %o", c.a, got, c.on)
		}
		if got := off.Mode(c.a); got != c.offDir {
			t.Errorf("off: mode of %d = %o, want %o", c.a, got, c.offDir)
		}
	}
}

func TestUser(t *testing.T) {
	p := Policy{On: true, Base: 62000}
	if u := p.User(3); u == nil || u.UID != 62003 || u.GID != 62003 {
		t.Fatalf("User(3) = %+v", u)
	}
	if u := (Policy{Base: 62000}).User(3); u != nil {
		t.Fatalf("off: User(3) = %+v, want nil", u)
	}
	if c := p.Caddy(); c == nil || c.UID != 62000 || c.GID != 62000 {
		t.Fatalf("Caddy() = %+v", c)
	}
	if c := (Policy{Base: 62000}).Caddy(); c != nil {
		t.Fatalf("off: Caddy() = %+v, want nil", c)
	}
	if _, err := New("sometimes", 62000); err == nil {
		t.Fatal("a bad mode was accepted")
	}
	if _, err := New("auto", 0); err == nil {
		t.Fatal("base 0 was accepted")
	}
	p, err := New("off", 62000)
	if err != nil || p.On || p.Warning() == "" {
		t.Fatalf("off: %+v, %v", p, err)
	}
}

func owner(t *testing.T, path string) (uint32, uint32, os.FileMode) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, os.FileMode(st.Mode & 0o7777)
}

// Give and Take change the tree and nothing a link inside it points to;
// Take drops write bits for others and set-id bits.
func TestGiveTake(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change owners")
	}
	p := Policy{On: true, Base: 62000}
	u := &supervisor.Credential{UID: 62001, GID: 62001}
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	tree := filepath.Join(dir, "tree")
	os.WriteFile(outside, []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(tree, "sub"), 0o777)
	os.WriteFile(filepath.Join(tree, "sub", "f"), []byte("x"), 0o666)
	os.WriteFile(filepath.Join(tree, "suid"), []byte("x"), 0o755)
	os.Chmod(filepath.Join(tree, "suid"), 0o4755)
	os.Symlink(outside, filepath.Join(tree, "link"))
	os.Symlink(dir, filepath.Join(tree, "dirlink"))

	if err := p.Give(tree, u); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"", "sub", "sub/f", "link", "dirlink"} {
		if uid, gid, _ := owner(t, filepath.Join(tree, n)); uid != 62001 || gid != 62001 {
			t.Errorf("after Give, %q belongs to %d:%d", n, uid, gid)
		}
	}
	if uid, _, _ := owner(t, outside); uid != 0 {
		t.Errorf("Give followed a link: outside belongs to %d", uid)
	}
	if uid, _, _ := owner(t, dir); uid != 0 {
		t.Errorf("Give followed a directory link: %d", uid)
	}
	if err := p.Take(tree); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]os.FileMode{"sub": 0o755, "sub/f": 0o644, "suid": 0o755} {
		uid, _, mode := owner(t, filepath.Join(tree, n))
		if uid != 0 || mode != want {
			t.Errorf("after Take, %q is %d mode %o, want 0 mode %o", n, uid, mode, want)
		}
	}
}

func TestDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change owners")
	}
	p := Policy{On: true, Base: 62000}
	u := &supervisor.Credential{UID: 62001, GID: 62001}
	dir := t.TempDir()
	for _, c := range []struct {
		a        Access
		uid, gid uint32
		mode     os.FileMode
	}{
		{Private, 0, 0, 0o700},
		{Traverse, 0, 0, 0o711},
		{AppRead, 0, 62001, 0o750},
		{AppOwn, 62001, 62001, 0o700},
		{AppServe, 62001, 62000, 0o2750},
	} {
		path := filepath.Join(dir, "d")
		if err := p.Dir(path, c.a, u); err != nil {
			t.Fatal(err)
		}
		if uid, gid, mode := owner(t, path); uid != c.uid || gid != c.gid || mode != c.mode {
			t.Errorf("kind %d: %d:%d %o, want %d:%d %o", c.a, uid, gid, mode, c.uid, c.gid, c.mode)
		}
	}
	link := filepath.Join(dir, "link")
	os.Symlink(dir, link)
	if err := p.Dir(link, AppOwn, u); err == nil {
		t.Fatal("Dir followed a link")
	}
}

func TestCapSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	os.WriteFile(path, []byte("Name:\thop3\nCapInh:\t0000000000000000\nCapEff:\t00000000000000c1\nCapAmb:\t0000000000000400\n"), 0o644)
	eff, err := capSet(path, "CapEff")
	if err != nil || eff&(1<<capSetUID) == 0 || eff&(1<<capSetGID) == 0 || eff&(1<<capChown) == 0 {
		t.Errorf("CapEff = %x, %v", eff, err)
	}
	if amb, err := capSet(path, "CapAmb"); err != nil || amb != 0x400 {
		t.Errorf("CapAmb = %x, %v", amb, err)
	}
	if _, err := capSet(path, "CapBnd"); err == nil {
		t.Error("a missing line was read")
	}
}
