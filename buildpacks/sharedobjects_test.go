package buildpacks

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// makeEnv creates a complete environment holding files (path → content,
// mode 0o755 for *.so, else 0o644) through store.
func makeEnv(t *testing.T, store envStore, key string, files map[string]string) string {
	t.Helper()
	path, err := store.create(key, false, map[string]string{"k": key}, func(tmp, _ string) error {
		for rel, content := range files {
			p := filepath.Join(tmp, rel)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if isSharedObject(filepath.Base(rel)) {
				mode = 0o755
			}
			if err := os.WriteFile(p, []byte(content), mode); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func inode(t *testing.T, path string) (uint64, uint64) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	return st.Ino, uint64(st.Nlink)
}

func TestSharedObjectsLinked(t *testing.T) {
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	store := envStore{dir: filepath.Join(root, "envs"), shared: sharedStore{dir: shared}}
	same := "ELF granian"
	a := makeEnv(t, store, "py-a", map[string]string{
		"lib/_granian.cpython-311-x86_64-linux-gnu.so": same,
		"lib/libz.so.1.2": "ELF libz a",
		"lib/app.py":      "print(1)",
	})
	b := makeEnv(t, store, "py-b", map[string]string{
		"lib/_granian.cpython-311-x86_64-linux-gnu.so": same,
		"lib/libz.so.1.2": "ELF libz b",
		"lib/app.py":      "print(1)",
	})
	so := "lib/_granian.cpython-311-x86_64-linux-gnu.so"
	inoA, n := inode(t, filepath.Join(a, so))
	inoB, _ := inode(t, filepath.Join(b, so))
	if inoA != inoB || n != 3 {
		t.Errorf("same .so: inodes %d and %d, %d links; want one inode, 3 links (two envs and the store)", inoA, inoB, n)
	}
	for _, env := range []string{a, b} {
		data, err := os.ReadFile(filepath.Join(env, so))
		if err != nil || string(data) != same {
			t.Errorf("%s content = %q, %v", env, data, err)
		}
		if m := fileMode(t, filepath.Join(env, so)); m != 0o755 {
			t.Errorf("%s mode = %o, want 755", env, m)
		}
	}
	if za, zb := ino(t, filepath.Join(a, "lib/libz.so.1.2")), ino(t, filepath.Join(b, "lib/libz.so.1.2")); za == zb {
		t.Error("different .so contents share an inode")
	}
	if pa, pb := ino(t, filepath.Join(a, "lib/app.py")), ino(t, filepath.Join(b, "lib/app.py")); pa == pb {
		t.Error("a non-.so file was linked")
	}
	if _, n := inode(t, filepath.Join(a, "lib/app.py")); n != 1 {
		t.Errorf("non-.so file has %d links, want 1", n)
	}
	entries, _ := os.ReadDir(shared)
	var copies []string
	for _, e := range entries {
		if e.Name() != sharedLockFile {
			copies = append(copies, e.Name())
			if m := fileMode(t, filepath.Join(shared, e.Name())); m != 0o755 {
				t.Errorf("shared copy %s mode = %o", e.Name(), m)
			}
		}
	}
	if len(copies) != 3 {
		t.Errorf("store holds %v, want 3 copies", copies)
	}
	if m := fileMode(t, shared); m&0o077 != 0 {
		t.Errorf("store mode = %o, want no access for others", m)
	}

	// Pruning one environment leaves its copies to the other; pruning
	// both leaves nothing in the store.
	if err := PruneEnvs(store.dir, []string{b}); err != nil {
		t.Fatal(err)
	}
	if err := PruneSharedObjects(shared); err != nil {
		t.Fatal(err)
	}
	left := storeCopies(t, shared)
	if len(left) != 2 {
		t.Errorf("after pruning one env the store holds %v, want b's 2 copies", left)
	}
	if _, n := inode(t, filepath.Join(b, so)); n != 2 {
		t.Errorf("b's .so has %d links, want 2", n)
	}
	if err := PruneEnvs(store.dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := PruneSharedObjects(shared); err != nil {
		t.Fatal(err)
	}
	if left := storeCopies(t, shared); len(left) != 0 {
		t.Errorf("after pruning all envs the store holds %v", left)
	}
}

func storeCopies(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != sharedLockFile {
			names = append(names, e.Name())
		}
	}
	return names
}

func ino(t *testing.T, path string) uint64 {
	i, _ := inode(t, path)
	return i
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// TestSharedObjectsFallBack: a store that cannot be trusted or reached by a
// hard link leaves the environment its own files, and the build goes on.
func TestSharedObjectsFallBack(t *testing.T) {
	otherFS := "/dev/shm"
	for _, tc := range []struct {
		name  string
		store func(t *testing.T, root string) string
	}{
		{"world-writable store", func(t *testing.T, root string) string {
			dir := filepath.Join(root, "shared")
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			os.Chmod(dir, 0o777) // past the umask
			return dir
		}},
		{"store is a file", func(t *testing.T, root string) string {
			p := filepath.Join(root, "shared")
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}},
		{"store on another file system", func(t *testing.T, root string) string {
			if !isDir(otherFS) || sameFileSystem(otherFS, root) {
				t.Skip("no second file system at " + otherFS)
			}
			dir, err := os.MkdirTemp(otherFS, "shared-")
			if err != nil {
				t.Skip(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			shared := tc.store(t, root)
			store := envStore{dir: filepath.Join(root, "envs"), shared: sharedStore{dir: shared}}
			files := map[string]string{"lib/x.so": "ELF x"}
			a := makeEnv(t, store, "py-a", files)
			b := makeEnv(t, store, "py-b", files)
			if ino(t, filepath.Join(a, "lib/x.so")) == ino(t, filepath.Join(b, "lib/x.so")) {
				t.Error("files were shared through an unusable store")
			}
			if _, n := inode(t, filepath.Join(a, "lib/x.so")); n != 1 {
				t.Errorf("x.so has %d links, want 1", n)
			}
			if data, err := os.ReadFile(filepath.Join(b, "lib/x.so")); err != nil || string(data) != "ELF x" {
				t.Errorf("content = %q, %v", data, err)
			}
		})
	}
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

// TestSharedObjectsSkipWritable: a library others may write is not shared,
// nor is one the store is off for.
func TestSharedObjectsSkipWritable(t *testing.T) {
	root := t.TempDir()
	shared := filepath.Join(root, "shared")
	s := sharedStore{dir: shared}
	p := filepath.Join(root, "w.so")
	if err := os.WriteFile(p, []byte("ELF"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
	if n := s.dedupe(root); n != 0 {
		t.Errorf("dedupe shared %d group/world-writable files", n)
	}
	if n := (sharedStore{}).dedupe(root); n != 0 {
		t.Errorf("dedupe with no store shared %d files", n)
	}
}

// TestPruneSharedObjectsKeepsLinked: only copies no environment links
// (link count 1) and leftover temporary copies go.
func TestPruneSharedObjectsKeepsLinked(t *testing.T) {
	dir := t.TempDir()
	write := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	used := write("aaa-0755")
	write("bbb-0755")
	write(sharedTmpPrefix + "123")
	if err := os.Link(used, filepath.Join(t.TempDir(), "env.so")); err != nil {
		t.Fatal(err)
	}
	if err := PruneSharedObjects(dir); err != nil {
		t.Fatal(err)
	}
	if got := storeCopies(t, dir); len(got) != 1 || got[0] != "aaa-0755" {
		t.Errorf("store holds %v, want [aaa-0755]", got)
	}
	if err := PruneSharedObjects(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("missing store: %v", err)
	}
}
