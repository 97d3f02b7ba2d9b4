package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
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
