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
	// The tree with dev dependencies, the pruned one, the build's output.
	if len(res.Envs) != 3 || len(res.CacheHits) != 0 {
		t.Errorf("Envs = %v, CacheHits = %v", res.Envs, res.CacheHits)
	}
	target := linkTarget(t, modules)
	if filepath.Dir(filepath.Dir(target)) != spec.EnvsDir {
		t.Errorf("node_modules links to %s, outside the store %s", target, spec.EnvsDir)
	}

	// The same tree again: the build is reused, npm does not run.
	dir2 := fixture(t, "express-app")
	rep2 := newRecorder(t)
	spec2 := spec
	spec2.Dir, spec2.Report = dir2, rep2
	res2 := build(t, spec2)
	if !contains(res2.CacheHits, "build") || !rep2.hasStep("Reusing the build of an unchanged tree") ||
		strings.Contains(rep2.String(), "npm") {
		t.Errorf("second build: CacheHits = %v, log:\n%s", res2.CacheHits, rep2)
	}
	if !reflect.DeepEqual(res2.Envs, res.Envs) || !reflect.DeepEqual(res2.Env["PATH"], strings.Replace(res.Env["PATH"], dir, dir2, 1)) {
		t.Errorf("second build: Envs = %v, Env = %v; want %v, %v", res2.Envs, res2.Env, res.Envs, res.Env)
	}
	if !exists(filepath.Join(dir2, "dist", "index.html")) || exists(filepath.Join(dir2, "node_modules", "kleur")) {
		t.Error("second build: build output or pruning is wrong")
	}
	if got := linkTarget(t, filepath.Join(dir2, "node_modules")); got != target {
		t.Errorf("second release links node_modules to %s, the first to %s", got, target)
	}
	runIn(t, dir2, nil, "node", "-e", "require('express')")

	// A changed source: the build runs again, on the same node_modules.
	dir3 := fixture(t, "express-app")
	writeFile(t, filepath.Join(dir3, "build.js"), strings.Replace(readFile(t, filepath.Join(dir3, "build.js")), "Built by", "Rebuilt by", 1))
	rep3 := newRecorder(t)
	spec3 := spec
	spec3.Dir, spec3.Report = dir3, rep3
	res3 := build(t, spec3)
	if !contains(res3.CacheHits, "node-modules") || !rep3.hasStep("Reusing node_modules") || !rep3.hasStep("npm run build") ||
		rep3.hasStep("npm ci") {
		t.Errorf("third build: CacheHits = %v, log:\n%s", res3.CacheHits, rep3)
	}
	if got := linkTarget(t, filepath.Join(dir3, "node_modules")); got != target {
		t.Errorf("third release links node_modules to %s, the first to %s", got, target)
	}
	if !strings.Contains(readFile(t, filepath.Join(dir3, "dist", "index.html")), "Rebuilt by") {
		t.Error("third build: the build script did not run again")
	}
	// The build's own tree of links did not reach into the shared trees.
	if !exists(filepath.Join(res.Envs[0], "node_modules", "kleur")) {
		t.Error("the tree for builds lost its dev dependencies")
	}
	if exists(filepath.Join(target, "kleur")) {
		t.Error("the runtime tree has the dev dependency")
	}
}

func linkTarget(t *testing.T, path string) string {
	t.Helper()
	target, err := os.Readlink(path)
	if err != nil {
		t.Fatalf("%s is not a link: %v", path, err)
	}
	return target
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestNodeWithoutLockfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"name": "tiny", "version": "1.0.0", "scripts": {"start": "node index.js"}}`)
	writeFile(t, filepath.Join(dir, "index.js"), "console.log('hi')\n")
	rep := newRecorder(t)
	res := build(t, nodeSpec(t, dir, rep))
	// Only the build's output is kept: node_modules is the release's own.
	if !rep.hasStep("npm install") || len(res.Envs) != 1 || !strings.Contains(res.Envs[0], "/build-") {
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

// TestNodeInstallScripts: the app's own postinstall needs the app's files,
// so it runs in the release, not where the shared tree is installed; what it
// writes into node_modules stays out of the shared tree.
func TestNodeInstallScripts(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "express-app")
	pkg := readFile(t, filepath.Join(dir, "package.json"))
	script := `"postinstall": "node -e \"const fs=require('fs'); fs.writeFileSync('from-postinstall', fs.readFileSync('server.js')); fs.writeFileSync('node_modules/.written', '1')\"",`
	writeFile(t, filepath.Join(dir, "package.json"), strings.Replace(pkg, `"scripts": {`, `"scripts": {`+"\n    "+script, 1))
	rep := newRecorder(t)
	spec := nodeSpec(t, dir, rep)
	res := build(t, spec)
	if !exists(filepath.Join(dir, "from-postinstall")) {
		t.Fatalf("postinstall did not run in the release:\n%s", rep)
	}
	for _, env := range res.Envs {
		if exists(filepath.Join(env, "node_modules", ".written")) {
			t.Errorf("postinstall wrote into the shared tree %s", env)
		}
	}
	if exists(filepath.Join(dir, "node_modules", ".written")) {
		t.Error("the release's node_modules kept what postinstall wrote")
	}
}

// TestNodeWorkspaces: an npm workspace's install links packages of the
// app's own tree, so it is installed into the release.
func TestNodeWorkspaces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "package.json"), `{"name": "root", "version": "1.0.0", "private": true, "workspaces": ["packages/*"]}`)
	writeFile(t, filepath.Join(dir, "packages", "greet", "package.json"), `{"name": "greet", "version": "1.0.0", "main": "index.js"}`)
	writeFile(t, filepath.Join(dir, "packages", "greet", "index.js"), "module.exports = 'hi from greet';\n")
	runIn(t, dir, []string{"npm_config_cache=" + filepath.Join(testCache(t), "npm")}, "npm", "install", "--package-lock-only", "--no-audit", "--no-fund")
	rep := newRecorder(t)
	build(t, nodeSpec(t, dir, rep))
	if !strings.Contains(rep.String(), "npm workspaces need the app's files") {
		t.Errorf("log:\n%s", rep)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "node_modules")); err != nil || !fi.IsDir() {
		t.Errorf("node_modules is not the release's own directory: %v", err)
	}
	if out := runIn(t, dir, nil, "node", "-p", "require('greet')"); strings.TrimSpace(out) != "hi from greet" {
		t.Errorf("require('greet') = %q", out)
	}
}
