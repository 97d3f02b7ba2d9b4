package buildpacks

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDetect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		files       []string
		hasStatic   bool
		hasProcfile bool
		want        []string
	}{
		{"requirements", []string{"requirements.txt", "app.py"}, false, true, []string{"python"}},
		{"pyproject", []string{"pyproject.toml"}, false, false, []string{"python"}},
		{"uv lock", []string{"uv.lock"}, false, false, []string{"python"}},
		{"python with front end", []string{"requirements.txt", "package.json"}, false, true, []string{"python", "node"}},
		{"python wins over static", []string{"requirements.txt", "index.html"}, true, true, []string{"python"}},
		{"node", []string{"package.json", "package-lock.json"}, false, true, []string{"node"}},
		{"node wins over go", []string{"package.json", "go.mod"}, false, false, []string{"node"}},
		{"go", []string{"go.mod", "main.go"}, false, true, []string{"go"}},
		{"static by procfile", []string{"public/index.html"}, true, true, []string{"static"}},
		{"static by index.html", []string{"index.html"}, false, false, []string{"static"}},
		{"generic", []string{"run.sh"}, false, true, []string{"generic"}},
		{"directory named like a marker", []string{"requirements.txt/x"}, false, true, []string{"generic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(dir, f), "")
			}
			got, err := Detect(dir, tt.hasStatic, tt.hasProcfile)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDetectNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "README.md"), "hello")
	_, err := Detect(dir, false, false)
	if !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Detect error = %v, want ErrNoMatch", err)
	}
	want := "no buildpack matched: add requirements.txt, pyproject.toml, package.json, go.mod, Cargo.toml, pom.xml, build.gradle, composer.json, index.php, Gemfile or a Procfile"
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	_, err = Build(context.Background(), Spec{Dir: dir})
	if !errors.Is(err, ErrNoMatch) {
		t.Errorf("Build error = %v, want ErrNoMatch", err)
	}
}

func TestBuildStaticAndGeneric(t *testing.T) {
	t.Parallel()
	rep := newRecorder(t)
	res := build(t, Spec{Dir: fixture(t, "static-site"), HasStatic: true, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res.Packs, []string{"static"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Static site detected") || !strings.Contains(rep.String(), "Nothing to build") {
		t.Errorf("log:\n%s", rep)
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "Procfile"), "worker: ./run.sh\n")
	writeFile(t, filepath.Join(dir, "run.sh"), "#!/bin/sh\nsleep 1000\n")
	rep = newRecorder(t)
	res = build(t, Spec{Dir: dir, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res.Packs, []string{"generic"}) || len(res.Env) != 0 {
		t.Errorf("Packs = %v, Env = %v", res.Packs, res.Env)
	}
	if !rep.hasStep("Generic app detected") {
		t.Errorf("log:\n%s", rep)
	}
}
