package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func nodeSpec(t *testing.T, dir string, rep Reporter) Spec {
	t.Helper()
	needTool(t, "node")
	needTool(t, "npm")
	return Spec{
		App:      "test",
		Dir:      dir,
		Env:      map[string]string{},
		CacheDir: testCache(t),
		EnvsDir:  filepath.Join(t.TempDir(), "envs"),
		Report:   rep,
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestNodeLockfileAndBuild(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "express-app")
	rep := newRecorder(t)
	spec := nodeSpec(t, dir, rep)
	res := build(t, spec)

	if !reflect.DeepEqual(res.Packs, []string{"node"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Node.js app detected") || !rep.hasStep("npm ci") || !rep.hasStep("npm run build") {
		t.Errorf("log:\n%s", rep)
	}
	if !exists(filepath.Join(dir, "dist", "index.html")) {
		t.Error("the build script did not run")
	}
	if !exists(filepath.Join(dir, "node_modules", "express", "package.json")) {
		t.Error("express is not installed")
	}
	// The build needed the dev dependency; the release does not keep it.
	if exists(filepath.Join(dir, "node_modules", "kleur")) {
		t.Error("the dev dependency kleur was not pruned")
	}
	runIn(t, dir, nil, "node", "-e", "require('express')")
	modules := filepath.Join(dir, "node_modules")
	want := map[string]string{
		"NODE_ENV":  "production",
		"NODE_PATH": modules,
		"PATH":      filepath.Join(modules, ".bin") + ":" + os.Getenv("PATH"),
	}
	if !reflect.DeepEqual(res.Env, want) {
		t.Errorf("Env = %v, want %v", res.Env, want)
	}
	if len(res.Envs) != 1 || len(res.CacheHits) != 0 {
		t.Errorf("Envs = %v, CacheHits = %v", res.Envs, res.CacheHits)
	}

	// The second push copies node_modules from the store.
	dir2 := fixture(t, "express-app")
	rep2 := newRecorder(t)
	spec2 := spec
	spec2.Dir, spec2.Report = dir2, rep2
	res2 := build(t, spec2)
	if !contains(res2.CacheHits, "node-modules") || !rep2.hasStep("Reusing node_modules") {
		t.Errorf("second build: CacheHits = %v, log:\n%s", res2.CacheHits, rep2)
	}
	if !reflect.DeepEqual(res2.Envs, res.Envs) {
		t.Errorf("second build: Envs = %v, want %v", res2.Envs, res.Envs)
	}
	if !exists(filepath.Join(dir2, "dist", "index.html")) || exists(filepath.Join(dir2, "node_modules", "kleur")) {
		t.Error("second build: build output or pruning is wrong")
	}
	if fi, err := os.Lstat(filepath.Join(dir2, "node_modules")); err != nil || !fi.IsDir() {
		t.Errorf("node_modules is not a real directory: %v", err)
	}
	runIn(t, dir2, nil, "node", "-e", "require('express')")
	// Pruning the release did not reach into the cached tree.
	if !exists(filepath.Join(res.Envs[0], "node_modules", "kleur")) {
		t.Error("the cached tree lost its dev dependencies")
	}
}

func TestNodeWithoutLockfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"name": "tiny", "version": "1.0.0", "scripts": {"start": "node index.js"}}`)
	writeFile(t, filepath.Join(dir, "index.js"), "console.log('hi')\n")
	rep := newRecorder(t)
	res := build(t, nodeSpec(t, dir, rep))
	if !rep.hasStep("npm install") || len(res.Envs) != 0 {
		t.Errorf("Envs = %v, log:\n%s", res.Envs, rep)
	}
}

func TestNodeCorruptLockfile(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "express-app")
	writeFile(t, filepath.Join(dir, "package-lock.json"), `{"name": "express-app", "lockfileVersion": 3, "packages": {`)
	rep := newRecorder(t)
	spec := nodeSpec(t, dir, rep)
	_, err := Build(testContext(t), spec)
	if err == nil {
		t.Fatal("Build succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "npm ci failed (exit status") {
		t.Errorf("error = %q", msg)
	}
	if !strings.Contains(rep.String(), "npm error") {
		t.Errorf("npm's own error is not in the output:\n%s", rep)
	}
	if names := entries(t, spec.EnvsDir); len(names) != 0 {
		t.Errorf("a failed build left %v in the envs dir", names)
	}
}

func TestNodeEnginesMismatch(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "express-app")
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "package.json"), strings.Replace(string(data), `">=18"`, `"8 || 10.x"`, 1))
	rep := newRecorder(t)
	_, err = Build(testContext(t), nodeSpec(t, dir, rep))
	if err == nil {
		t.Fatal("Build succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, `is installed but engines.node in package.json requires "8 || 10.x"`) {
		t.Errorf("error = %q", msg)
	}
	if rep.hasStep("npm ci") {
		t.Error("npm ran despite the mismatch")
	}
}

func TestPythonWithFrontEnd(t *testing.T) {
	t.Parallel()
	needTool(t, "node")
	dir := fixture(t, "python-node-app")
	rep := newRecorder(t)
	spec := testSpec(t, dir, rep)
	res := build(t, spec)
	if !reflect.DeepEqual(res.Packs, []string{"python", "node"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Python app detected") || !rep.hasStep("Node.js front end detected") {
		t.Errorf("log:\n%s", rep)
	}
	if !exists(filepath.Join(dir, "static", "app.js")) {
		t.Error("the front end was not built")
	}
	checkVenv(t, res.Venv, dir, "flask", "app")
	venvBin := filepath.Join(res.Venv, "bin")
	nodeBin := filepath.Join(dir, "node_modules", ".bin")
	if want := venvBin + ":" + nodeBin + ":" + os.Getenv("PATH"); res.Env["PATH"] != want {
		t.Errorf("PATH = %q, want %q", res.Env["PATH"], want)
	}
	if res.Env["VIRTUAL_ENV"] != res.Venv || res.Env["NODE_ENV"] != "production" {
		t.Errorf("Env = %v", res.Env)
	}
}
