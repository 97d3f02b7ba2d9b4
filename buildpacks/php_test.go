package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDetectPHP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   []string
		root    string
		isPHP   bool
		packs   []string
		nothing bool
	}{
		{"index.php", []string{"index.php", "style.css"}, ".", true, []string{"php"}, false},
		{"composer with public", []string{"composer.json", "public/index.php"}, "public", true, []string{"php"}, false},
		{"public index only", []string{"public/index.php"}, "public", true, []string{"php"}, false},
		{"php with a front end", []string{"composer.json", "package.json"}, ".", true, []string{"php", "node"}, false},
		{"python wins", []string{"requirements.txt", "index.php"}, ".", true, []string{"python"}, false},
		{"php wins over static", []string{"index.php", "index.html"}, ".", true, []string{"php"}, false},
		{"a php file elsewhere", []string{"src/index.php"}, "", false, nil, true},
		{"directory named index.php", []string{"index.php/x"}, "", false, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(dir, f), "")
			}
			root, ok := DetectPHP(dir)
			if ok != tt.isPHP || root != tt.root {
				t.Errorf("DetectPHP = %q, %v; want %q, %v", root, ok, tt.root, tt.isPHP)
			}
			packs, err := Detect(dir, false, false)
			if tt.nothing {
				if err == nil {
					t.Errorf("Detect = %v, want no match", packs)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(packs, tt.packs) {
				t.Errorf("Detect = %v, %v; want %v", packs, err, tt.packs)
			}
		})
	}
}

func TestFindPHPFPM(t *testing.T) {
	t.Parallel()
	exe := func(path string) string {
		writeFile(t, path, "#!/bin/sh\n")
		if err := os.Chmod(path, 0o755); err != nil {
			t.Fatal(err)
		}
		return path
	}
	dir := t.TempDir()
	exe(filepath.Join(dir, "versioned", "php-fpm8.2"))
	newest := exe(filepath.Join(dir, "versioned", "php-fpm8.10"))
	plain := exe(filepath.Join(dir, "plain", "php-fpm"))
	if got, err := FindPHPFPM("", filepath.Join(dir, "versioned")); err != nil || got != newest {
		t.Errorf("versioned: FindPHPFPM = %q, %v; want %q", got, err, newest)
	}
	if got, err := FindPHPFPM("", filepath.Join(dir, "plain")+":"+filepath.Join(dir, "versioned")); err != nil || got != plain {
		t.Errorf("plain first: FindPHPFPM = %q, %v; want %q", got, err, plain)
	}
	if got, err := FindPHPFPM(plain, ""); err != nil || got != plain {
		t.Errorf("configured: FindPHPFPM = %q, %v", got, err)
	}
	if _, err := FindPHPFPM(filepath.Join(dir, "none"), ""); err == nil {
		t.Error("a configured php-fpm that is missing was found")
	}
}

func TestPHPBuild(t *testing.T) {
	t.Parallel()
	needTool(t, "php")
	needTool(t, "composer")
	if _, err := FindPHPFPM("", os.Getenv("PATH")); err != nil {
		t.Skip(err)
	}
	dir := fixture(t, "php-composer-app")
	rep := newRecorder(t)
	cache := t.TempDir()
	res := build(t, Spec{App: "test", Dir: dir, CacheDir: cache, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res.Packs, []string{"php"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Installing dependencies with composer install --no-dev --no-interaction --prefer-dist") ||
		!rep.hasStep("Checking PHP syntax with php -l") || !strings.Contains(rep.String(), "2 files without errors") {
		t.Errorf("log:\n%s", rep)
	}
	if _, err := os.Stat(filepath.Join(dir, "vendor", "autoload.php")); err != nil {
		t.Fatalf("no vendor/autoload.php: %v\n%s", err, rep)
	}
	if _, err := os.Stat(filepath.Join(cache, "composer-home")); err != nil {
		t.Errorf("composer's home is not in the cache: %v", err)
	}
	out := runIn(t, dir, nil, "php", "public/index.php")
	if out != "Hello, hop3, from a Composer autoloader\n" {
		t.Errorf("php public/index.php = %q", out)
	}

	// A syntax error fails the build, naming the file and line.
	broken := fixture(t, "php-app")
	writeFile(t, filepath.Join(broken, "index.php"), "<?php\necho 'unclosed;\n")
	rep = newRecorder(t)
	_, err := Build(testContext(t), Spec{App: "test", Dir: broken, CacheDir: cache, HasProcfile: true, Report: rep})
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "php -l: Parse error: syntax error") || !strings.Contains(err.Error(), "index.php on line") {
		t.Fatalf("err = %v, want php -l's parse error on one line\n%s", err, rep)
	}
}
