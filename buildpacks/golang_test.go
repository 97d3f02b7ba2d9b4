package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func goSpec(t *testing.T, dir string, rep Reporter) Spec {
	t.Helper()
	needTool(t, "go")
	return Spec{App: "test", Dir: dir, CacheDir: testCache(t), HasProcfile: true, Report: rep}
}

func TestGoBuild(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "go-app")
	rep := newRecorder(t)
	res := build(t, goSpec(t, dir, rep))
	if !reflect.DeepEqual(res.Packs, []string{"go"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	bin := filepath.Join(dir, "bin")
	if want := bin + ":" + os.Getenv("PATH"); res.Env["PATH"] != want {
		t.Errorf("PATH = %q, want %q", res.Env["PATH"], want)
	}
	out := runIn(t, dir, nil, filepath.Join(bin, "myservice"), "-version")
	if strings.TrimSpace(out) != "myservice 1.0" {
		t.Errorf("bin/myservice -version = %q", out)
	}
	if !strings.Contains(rep.String(), "bin/myservice") {
		t.Errorf("log:\n%s", rep)
	}
}

func TestGoCompileError(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "go-app")
	writeFile(t, filepath.Join(dir, "broken.go"), "package main\n\nfunc broken() int { return \"not an int\" }\n")
	rep := newRecorder(t)
	_, err := Build(testContext(t), goSpec(t, dir, rep))
	if err == nil {
		t.Fatal("Build succeeded")
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "go build failed (exit status") {
		t.Errorf("error = %q", msg)
	}
	if !strings.Contains(rep.String(), "broken.go:3") {
		t.Errorf("the compiler's error is not in the output:\n%s", rep)
	}
}
