package buildpacks

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// fakeTool writes a script that prints version for --version.
func fakeTool(t *testing.T, path, version string) string {
	t.Helper()
	writeFile(t, path, "#!/bin/sh\necho "+version+"\n")
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBuildKeyInputs changes one input of a build at a time: each change
// must name another build, so that nothing stale is ever reused.
func TestBuildKeyInputs(t *testing.T) {
	t.Parallel()
	tools := t.TempDir()
	node := fakeTool(t, filepath.Join(tools, "a", "node"), "v20.1.0")
	npm := fakeTool(t, filepath.Join(tools, "a", "npm"), "10.0.0")
	otherNode := fakeTool(t, filepath.Join(tools, "b", "node"), "v22.0.0")
	otherNPM := fakeTool(t, filepath.Join(tools, "b", "npm"), "11.0.0")
	sameNode := filepath.Join(tools, "c", "node")
	os.MkdirAll(filepath.Dir(sameNode), 0o755)
	if err := os.Symlink(node, sameNode); err != nil {
		t.Fatal(err)
	}

	key := func(t *testing.T, change func(dir string, spec *Spec)) string {
		dir := fixture(t, "express-app")
		spec := Spec{Dir: dir, Env: map[string]string{"A": "1"}, Tools: Tools{Node: node, NPM: npm}, HasProcfile: true}
		if change != nil {
			change(dir, &spec)
		}
		b := newBuilder(spec, dir)
		k, err := b.buildKey(testContext(t), []string{PackNode})
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key(t, nil)
	if again := key(t, nil); again != base {
		t.Fatalf("the same inputs give two keys: %s, %s", base, again)
	}
	tests := []struct {
		name   string
		change func(dir string, spec *Spec)
		same   bool
	}{
		{"a source file", func(dir string, _ *Spec) { writeFile(t, filepath.Join(dir, "server.js"), "changed\n") }, false},
		{"a new file", func(dir string, _ *Spec) { writeFile(t, filepath.Join(dir, "public", "x.css"), "") }, false},
		{"a removed file", func(dir string, _ *Spec) { os.Remove(filepath.Join(dir, "build.js")) }, false},
		{"a file's mode", func(dir string, _ *Spec) { os.Chmod(filepath.Join(dir, "server.js"), 0o755) }, false},
		{"the lockfile", func(dir string, _ *Spec) {
			writeFile(t, filepath.Join(dir, "package-lock.json"), readFile(t, filepath.Join(dir, "package-lock.json"))+" ")
		}, false},
		{"a config var", func(_ string, s *Spec) { s.Env["A"] = "2" }, false},
		{"a new config var", func(_ string, s *Spec) { s.Env["NEXT_PUBLIC_API"] = "x" }, false},
		{"PATH", func(_ string, s *Spec) { s.Env["PATH"] = "/opt/bin:$PATH" }, false},
		{"static entry", func(_ string, s *Spec) { s.HasStatic = true }, false},
		{"another node", func(_ string, s *Spec) { s.Tools.Node = otherNode }, false},
		{"another npm", func(_ string, s *Spec) { s.Tools.NPM = otherNPM }, false},
		{"the same node by another name", func(_ string, s *Spec) { s.Tools.Node = sameNode }, true},
		{"a .git directory", func(dir string, _ *Spec) { writeFile(t, filepath.Join(dir, ".git", "HEAD"), "x") }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(t, tt.change); (got == base) != tt.same {
				t.Errorf("key %s, base %s; want same = %v", got, base, tt.same)
			}
		})
	}
}

// TestBuildReuseNeedsItsEnvironments removes the node_modules trees a
// build used, as pruning does once no live release needs them: the same
// tree is then built again rather than linked to nothing.
func TestBuildReuseNeedsItsEnvironments(t *testing.T) {
	t.Parallel()
	rep := newRecorder(t)
	spec := nodeSpec(t, fixture(t, "express-app"), rep)
	res := build(t, spec)
	var keep []string
	for _, e := range res.Envs {
		if strings.HasPrefix(filepath.Base(e), "build-") {
			keep = append(keep, e)
		}
	}
	if len(keep) != 1 {
		t.Fatalf("Envs = %v, want one build record", res.Envs)
	}
	if err := PruneEnvs(spec.EnvsDir, keep); err != nil {
		t.Fatal(err)
	}
	spec2 := spec
	spec2.Dir, spec2.Report = fixture(t, "express-app"), newRecorder(t)
	res2 := build(t, spec2)
	log := spec2.Report.(*recorder)
	if contains(res2.CacheHits, "build") || !log.hasStep("npm ci") || !log.hasStep("npm run build") {
		t.Errorf("CacheHits = %v, log:\n%s", res2.CacheHits, log)
	}
	runIn(t, spec2.Dir, nil, "node", "-e", "require('express')")

	// NoCache builds even when the record is there.
	spec3 := spec
	spec3.Dir, spec3.Report, spec3.NoCache = fixture(t, "express-app"), newRecorder(t), true
	res3 := build(t, spec3)
	if contains(res3.CacheHits, "build") || !spec3.Report.(*recorder).hasStep("npm run build") {
		t.Errorf("NoCache: CacheHits = %v", res3.CacheHits)
	}
}

func TestGoBuildReused(t *testing.T) {
	t.Parallel()
	spec := goSpec(t, fixture(t, "go-app"), newRecorder(t))
	spec.EnvsDir = filepath.Join(t.TempDir(), "envs")
	res := build(t, spec)
	spec2 := spec
	rep2 := newRecorder(t)
	spec2.Dir, spec2.Report = fixture(t, "go-app"), rep2
	res2 := build(t, spec2)
	if !contains(res2.CacheHits, "build") || rep2.hasStep("Building Go binaries") {
		t.Errorf("CacheHits = %v, log:\n%s", res2.CacheHits, rep2)
	}
	if want := strings.ReplaceAll(res.Env["PATH"], spec.Dir, spec2.Dir); res2.Env["PATH"] != want {
		t.Errorf("PATH = %q, want %q", res2.Env["PATH"], want)
	}
	out := runIn(t, spec2.Dir, nil, filepath.Join(spec2.Dir, "bin", "myservice"), "-version")
	if strings.TrimSpace(out) != "myservice 1.0" {
		t.Errorf("reused bin/myservice -version = %q", out)
	}
}

func TestSnapshotDiff(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keep.txt"), "same")
	writeFile(t, filepath.Join(dir, "edit.txt"), "before")
	writeFile(t, filepath.Join(dir, "gone", "a", "b.txt"), "x")
	writeFile(t, filepath.Join(dir, "gone2.txt"), "x")
	writeFile(t, filepath.Join(dir, "node_modules", "committed", "index.js"), "x")
	before, err := snapshotTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "edit.txt"), "after, longer")
	os.RemoveAll(filepath.Join(dir, "gone"))
	os.Remove(filepath.Join(dir, "gone2.txt"))
	writeFile(t, filepath.Join(dir, "dist", "index.html"), "built")
	os.Mkdir(filepath.Join(dir, "empty"), 0o755)
	os.RemoveAll(filepath.Join(dir, "node_modules"))
	os.Symlink("/elsewhere/node_modules", filepath.Join(dir, "node_modules"))
	after, err := snapshotTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	changed, removed := before.diff(after)
	if want := []string{"dist", "dist/index.html", "edit.txt", "empty", "node_modules"}; !reflect.DeepEqual(changed, want) {
		t.Errorf("changed = %q, want %q", changed, want)
	}
	// node_modules turned from a directory into a link: removed first, then
	// copied in again.
	if want := []string{"gone", "gone2.txt", "node_modules"}; !reflect.DeepEqual(removed, want) {
		t.Errorf("removed = %q, want %q", removed, want)
	}
}

// TestBuildReuseCommittedModules: a committed node_modules is replaced by
// the link; reusing that build must not remove the committed files through
// the link, from the shared tree.
func TestBuildReuseCommittedModules(t *testing.T) {
	t.Parallel()
	withModules := func() string {
		dir := fixture(t, "express-app")
		writeFile(t, filepath.Join(dir, "node_modules", "express", "package.json"), `{"name": "stale"}`)
		writeFile(t, filepath.Join(dir, "node_modules", "express", "index.js"), "stale\n")
		return dir
	}
	spec := nodeSpec(t, withModules(), newRecorder(t))
	build(t, spec)
	spec2 := spec
	spec2.Dir, spec2.Report = withModules(), newRecorder(t)
	res2 := build(t, spec2)
	if !contains(res2.CacheHits, "build") {
		t.Fatalf("not reused: %v", res2.CacheHits)
	}
	for _, name := range []string{"package.json", "index.js"} {
		if !exists(filepath.Join(spec2.Dir, "node_modules", "express", name)) {
			t.Errorf("express/%s is gone from the shared tree", name)
		}
	}
	runIn(t, spec2.Dir, nil, "node", "-e", "require('express')")
}

// chownAll changes the owner of a tree without following links, and with
// clear set clears those mode bits of everything.
func chownAll(path string, uid, gid int, clear os.FileMode) error {
	return filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
		if clear != 0 && d.Type()&os.ModeSymlink == 0 {
			info, err := d.Info()
			if err != nil {
				return err
			}
			return os.Chmod(p, info.Mode().Perm()&^clear)
		}
		return nil
	})
}

// TestNodeBuildAsUser builds and reuses a Node.js app as an app's user, as
// hop3 does with isolation: the environments end up hop3's and read-only,
// the build's tree of links has the user's directories and hop3's files,
// and a reused build is copied in by the app's user.
func TestNodeBuildAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	t.Parallel()
	needTool(t, "npm")
	const uid = 62913
	top, err := os.MkdirTemp("", "asuser")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	os.Chmod(top, 0o711)
	user := &BuildUser{
		Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}},
		Give:       func(p string) error { return chownAll(p, uid, uid, 0) },
		Take:       func(p string) error { return chownAll(p, 0, 0, 0o022) },
	}
	release := func(name string) string {
		dir := filepath.Join(top, name)
		if err := copyTree(context.Background(), filepath.Join("testdata", "express-app"), dir); err != nil {
			t.Fatal(err)
		}
		if err := user.Give(dir); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	cache := filepath.Join(top, "cache")
	os.Mkdir(cache, 0o700)
	user.Give(cache)
	envs := filepath.Join(top, "envs")
	os.Mkdir(envs, 0o755)
	// The build's own tree of links, seen by the build script: directories
	// the user's, files hop3's.
	probe := `const fs = require('fs'); const d = fs.statSync('node_modules/express'), f = fs.statSync('node_modules/express/package.json');` +
		` fs.writeFileSync('owners.txt', d.uid + ' ' + f.uid); require('./build.js')`
	spec := Spec{App: "test", Dir: release("r1"), Env: map[string]string{}, CacheDir: cache, EnvsDir: envs, As: user, Report: newRecorder(t)}
	pkg := readFile(t, filepath.Join(spec.Dir, "package.json"))
	writeFile(t, filepath.Join(spec.Dir, "package.json"), strings.Replace(pkg, `"build": "node build.js"`, `"build": "node -e \"`+probe+`\""`, 1))
	os.Lchown(filepath.Join(spec.Dir, "package.json"), uid, uid)
	res := build(t, spec)
	if got := strings.TrimSpace(readFile(t, filepath.Join(spec.Dir, "owners.txt"))); got != "62913 0" {
		t.Errorf("owners of the build's node_modules directory and files = %q, want \"62913 0\"", got)
	}
	for _, env := range res.Envs {
		if fi, err := os.Stat(env); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
			t.Errorf("environment %s is not hop3's", env)
		}
	}
	target := linkTarget(t, filepath.Join(spec.Dir, "node_modules"))
	if exists(filepath.Join(target, "kleur")) || !exists(filepath.Join(target, "express")) {
		t.Errorf("runtime tree %s is wrong", target)
	}

	spec2 := spec
	spec2.Dir, spec2.Report = release("r2"), newRecorder(t)
	writeFile(t, filepath.Join(spec2.Dir, "package.json"), readFile(t, filepath.Join(spec.Dir, "package.json")))
	os.Lchown(filepath.Join(spec2.Dir, "package.json"), uid, uid)
	res2 := build(t, spec2)
	if !contains(res2.CacheHits, "build") {
		t.Fatalf("not reused: %v\n%s", res2.CacheHits, spec2.Report.(*recorder))
	}
	if linkTarget(t, filepath.Join(spec2.Dir, "node_modules")) != target || !exists(filepath.Join(spec2.Dir, "dist", "index.html")) {
		t.Error("the reused build lacks its output")
	}
	if fi, err := os.Stat(filepath.Join(spec2.Dir, "dist", "index.html")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uid {
		t.Error("the reused output is not the app's")
	}
}
