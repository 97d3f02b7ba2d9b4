package app

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// testRepo is a bare repository whose trees the tests write object by
// object, as a crafted push would, with no fsck in the way.
type testRepo struct {
	t   *testing.T
	dir string
}

func newTestRepo(t *testing.T) *testRepo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "r.git")
	if out, err := exec.Command("git", "init", "-q", "--bare", dir).CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	return &testRepo{t: t, dir: dir}
}

func (r *testRepo) git(stdin string, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"--git-dir", r.dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func (r *testRepo) blob(content string) string { return r.git(content, "hash-object", "-w", "--stdin") }

// tree writes a tree from "MODE NAME" keys: 100644/100755 files and
// 120000 links take their content from the value, 040000 directories a
// tree id, 160000 submodules a commit id.
func (r *testRepo) tree(entries [][3]string) string {
	var lines []string
	for _, e := range entries {
		mode, name, v := e[0], e[1], e[2]
		switch mode {
		case "040000":
			lines = append(lines, "040000 tree "+v+"\t"+name)
		case "160000":
			lines = append(lines, "160000 commit "+v+"\t"+name)
		default:
			lines = append(lines, mode+" blob "+r.blob(v)+"\t"+name)
		}
	}
	return r.git(strings.Join(lines, "\n")+"\n", "mktree", "--missing")
}

func (r *testRepo) commit(tree string) string { return r.git("", "commit-tree", tree, "-m", "t") }

func TestCheckout(t *testing.T) {
	r := newTestRepo(t)
	sub := r.tree([][3]string{{"100644", "b.txt", "bee\n"}})
	good := r.commit(r.tree([][3]string{
		{"100644", "a.txt", "hello\n"},
		{"100755", "run.sh", "#!/bin/sh\n"},
		{"040000", "sub", sub},
		{"120000", "link", "sub/b.txt"},
		{"120000", "sub2", "sub"},
		{"160000", "vendored", strings.Repeat("1", 40)},
	}))
	dst := filepath.Join(t.TempDir(), "rel")
	notes, err := checkout(context.Background(), gitSource{repo: r.dir}, good, dst, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "submodule vendored skipped") {
		t.Errorf("notes = %q", notes)
	}
	for path, want := range map[string]string{"a.txt": "hello\n", "sub/b.txt": "bee\n", "link": "bee\n", "sub2/b.txt": "bee\n"} {
		if b, err := os.ReadFile(filepath.Join(dst, path)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dst, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh: %v %v, want mode 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dst, "a.txt")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("a.txt: %v %v, want mode 0644", fi.Mode(), err)
	}
}

// The known attack, with no fsck to refuse it: links l1 -> . ... l5 ->
// l4/.. lead from the release to the directory four levels up, and a
// directory entry also named l5 carries files aimed there. Nothing may be
// written outside the release, and the tree is refused.
func TestCheckoutSymlinkChainWithDuplicateEntry(t *testing.T) {
	r := newTestRepo(t)
	base := t.TempDir() // plays hop3's root: <base>/apps/a/releases/2
	dst := filepath.Join(base, "apps", "a", "releases", "2")
	os.MkdirAll(filepath.Dir(dst), 0o755)
	hooksDir := r.tree([][3]string{{"100755", "pre-receive", "#!/bin/sh\nexit 0\n"}})
	gitDir := r.tree([][3]string{{"040000", "hooks", hooksDir}})
	repos := r.tree([][3]string{{"040000", "b.git", gitDir}})
	evil := r.tree([][3]string{{"040000", "repos", repos}, {"100644", "x.pth", "import os\n"}})
	entries := [][3]string{
		{"120000", "l1", "."}, {"120000", "l2", "l1/.."}, {"120000", "l3", "l2/.."}, {"120000", "l4", "l3/.."}, {"120000", "l5", "l4/.."},
		{"040000", "l5", evil},
	}
	rev := r.commit(r.tree(entries))
	_, err := checkout(context.Background(), gitSource{repo: r.dir}, rev, dst, 0)
	if err == nil {
		t.Fatal("the crafted tree was checked out")
	}
	if !strings.Contains(err.Error(), "l5") {
		t.Errorf("error %q does not name l5", err)
	}
	for _, p := range []string{"x.pth", "repos/b.git/hooks/pre-receive", "repos"} {
		if _, err := os.Lstat(filepath.Join(base, p)); !os.IsNotExist(err) {
			t.Errorf("checkout wrote %s outside the release (%v)", p, err)
		}
	}
}

func TestCheckoutRefuses(t *testing.T) {
	r := newTestRepo(t)
	dup := r.tree([][3]string{{"100644", "b", "x"}})
	tests := []struct {
		name    string
		entries [][3]string
		want    string
	}{
		{"absolute link", [][3]string{{"120000", "leak", "/etc/passwd"}}, "symlink leak points outside the app"},
		{"link up", [][3]string{{"120000", "up", "../../x"}}, "symlink up points outside the app"},
		{"chain", [][3]string{{"120000", "l1", "."}, {"120000", "l2", "l1/.."}}, "symlink l2 points outside the app"},
		{"file and directory", [][3]string{{"100644", "a", "x"}, {"040000", "a", dup}}, "malformed tree"},
		{"name twice", [][3]string{{"100644", "a", "x"}, {"100644", "a", "y"}}, "malformed tree: a appears twice"},
		{"dot dot", [][3]string{{"100644", "..", "x"}}, "malformed tree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			dst := filepath.Join(base, "rel")
			_, err := checkout(context.Background(), gitSource{repo: r.dir}, r.commit(r.tree(tc.entries)), dst, 0)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if names, _ := os.ReadDir(base); len(names) > 1 {
				t.Errorf("checkout wrote beside the release: %v", names)
			}
		})
	}
}

// The size of the tree is measured before anything is written.
func TestCheckoutSizeCap(t *testing.T) {
	r := newTestRepo(t)
	rev := r.commit(r.tree([][3]string{{"100644", "big", strings.Repeat("0", 3000)}, {"100644", "small", "x"}}))
	tests := []struct {
		cap  int64
		fail bool
	}{{0, false}, {3001, false}, {3000, true}, {1024, true}}
	for _, tc := range tests {
		dst := filepath.Join(t.TempDir(), "rel")
		_, err := checkout(context.Background(), gitSource{repo: r.dir}, rev, dst, tc.cap)
		if !tc.fail {
			if err != nil {
				t.Errorf("cap %d: %v", tc.cap, err)
			}
			continue
		}
		if !errors.Is(err, ErrReleaseTooLarge) || !strings.Contains(err.Error(), "3001 bytes") {
			t.Errorf("cap %d: err = %v, want the size named", tc.cap, err)
		}
		if _, err := os.Lstat(dst); !os.IsNotExist(err) {
			t.Errorf("cap %d: the release directory was created", tc.cap)
		}
	}
}

func TestNewFiles(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "rel")
	for _, p := range []string{"app.py", "static/a.css", "node_modules/x/index.js"} {
		os.MkdirAll(filepath.Dir(filepath.Join(rel, p)), 0o755)
		os.WriteFile(filepath.Join(rel, p), []byte("x"), 0o644)
	}
	manifest := filepath.Join(dir, "1.files")
	if err := writeManifest(rel, manifest); err != nil {
		t.Fatal(err)
	}
	if got, err := newFiles(rel, manifest); err != nil || len(got) != 0 {
		t.Fatalf("right after the manifest: %q, %v", got, err)
	}
	// Bytecode and dependency trees are caches, not state.
	for _, p := range []string{"db.sqlite3", "uploads/a.png", "__pycache__/app.cpython-312.pyc", "node_modules/.cache/y", "mod.pyc"} {
		os.MkdirAll(filepath.Dir(filepath.Join(rel, p)), 0o755)
		os.WriteFile(filepath.Join(rel, p), []byte("x"), 0o644)
	}
	got, err := newFiles(rel, manifest)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "db.sqlite3,uploads/a.png" {
		t.Errorf("new files = %q", got)
	}
}

// Whatever is already in the release, the writer never passes through a
// symbolic link: not for a file, not for a directory on its way.
func TestTreeWriterNeverFollowsLinks(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	dst := filepath.Join(base, "rel")
	os.MkdirAll(outside, 0o755)
	os.MkdirAll(dst, 0o755)
	os.Symlink("../outside", filepath.Join(dst, "l"))
	os.Symlink("../outside/f", filepath.Join(dst, "f"))
	w, err := openTreeWriter(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	fill := func(f io.Writer) error { _, err := io.WriteString(f, "x"); return err }
	for _, p := range []string{"l/x", "l/d/x", "f"} {
		if err := w.writeFile(p, 0o644, fill); err == nil {
			t.Errorf("wrote %s through a link", p)
		}
	}
	if err := w.symlink("l/y", "."); err == nil {
		t.Error("created a link through a link")
	}
	if names, _ := os.ReadDir(outside); len(names) != 0 {
		t.Errorf("written outside: %v", names)
	}
	if err := w.writeFile("ok/x", 0o644, fill); err != nil {
		t.Errorf("plain file: %v", err)
	}
}
