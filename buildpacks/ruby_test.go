package buildpacks

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rubyFixture copies testdata/ruby-app into a release directory and packs
// Debian's rack and webrick into its vendor/cache, as `bundle cache` would,
// with the lock naming their versions, which it returns.
func rubyFixture(t *testing.T) (string, map[string]string) {
	t.Helper()
	ruby := needTool(t, "ruby")
	needTool(t, "bundle")
	for _, name := range []string{"rack", "webrick"} {
		if m, _ := filepath.Glob("/usr/share/rubygems-integration/all/specifications/" + name + "-*.gemspec"); len(m) == 0 {
			t.Skipf("Debian's ruby-%s is not installed", name)
		}
	}
	dir := fixture(t, "ruby-app")
	script, err := filepath.Abs(filepath.Join("testdata", "debian-gems.rb"))
	if err != nil {
		t.Fatal(err)
	}
	runIn(t, dir, nil, ruby, script, dir, "rack", "webrick")
	versions := map[string]string{}
	for _, name := range entries(t, filepath.Join(dir, "vendor", "cache")) {
		gem, version, _ := strings.Cut(strings.TrimSuffix(name, ".gem"), "-")
		versions[gem] = version
	}
	return dir, versions
}

func TestDetectRuby(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"gemfile", []string{"Gemfile", "Gemfile.lock", "config.ru"}, []string{"ruby"}},
		{"gemfile alone", []string{"Gemfile"}, []string{"ruby"}},
		{"node wins over ruby", []string{"package.json", "Gemfile"}, []string{"node"}},
		{"a directory named Gemfile", []string{"Gemfile/x"}, []string{"generic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range tt.files {
				writeFile(t, filepath.Join(dir, f), "")
			}
			got, err := Detect(dir, false, true)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Detect = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestRubyBuild installs the fixture's gems from vendor/cache into a shared
// environment, runs them through the runtime environment the build
// returns, reuses the environment for an unchanged lock, and fails with
// Bundler's message when the Gemfile no longer matches the lock.
func TestRubyBuild(t *testing.T) {
	t.Parallel()
	dir, versions := rubyFixture(t)
	envs := filepath.Join(t.TempDir(), "envs")
	cache := t.TempDir()
	rep := newRecorder(t)
	res := build(t, Spec{App: "test", Dir: dir, CacheDir: cache, EnvsDir: envs, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res.Packs, []string{"ruby"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Installing gems with bundle install --local (Gemfile.lock)") {
		t.Errorf("log:\n%s", rep)
	}
	if len(res.Envs) != 1 || !strings.HasPrefix(filepath.Base(res.Envs[0]), "ruby-") {
		t.Fatalf("Envs = %v", res.Envs)
	}
	env := res.Envs[0]
	if got, want := res.Env["BUNDLE_PATH"], filepath.Join(env, "bundle"); got != want {
		t.Errorf("BUNDLE_PATH = %q, want %q", got, want)
	}
	if got, want := res.Env["BUNDLE_GEMFILE"], filepath.Join(env, "Gemfile"); got != want {
		t.Errorf("BUNDLE_GEMFILE = %q, want %q", got, want)
	}
	gemHome := res.Env["GEM_HOME"]
	if _, err := os.Stat(filepath.Join(gemHome, "gems", "rack-"+versions["rack"])); err != nil {
		t.Errorf("rack is not in GEM_HOME %s: %v", gemHome, err)
	}
	if _, err := os.Stat(filepath.Join(gemHome, "gems", "minitest-5.15.0")); err == nil {
		t.Errorf("the development group was installed")
	}
	if res.Env["RACK_ENV"] != "production" || !strings.HasPrefix(res.Env["PATH"], filepath.Join(gemHome, "bin")+":") {
		t.Errorf("RACK_ENV = %q, PATH = %q", res.Env["RACK_ENV"], res.Env["PATH"])
	}
	if _, err := os.Stat(filepath.Join(dir, "vendor", "bundle")); err == nil {
		t.Errorf("gems were installed into the release")
	}

	// The app's view: bundle exec in the release, with the build's runtime
	// environment only.
	var runEnv []string
	for k, v := range res.Env {
		runEnv = append(runEnv, k+"="+v)
	}
	cmd := exec.Command("bundle", "exec", "ruby", "-e", `require "rack"; require "webrick"; print Rack.release, " ", WEBrick::VERSION`)
	cmd.Dir = dir
	cmd.Env = append(runEnv, "HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(string(out), versions["rack"]+" "+versions["webrick"]) {
		t.Errorf("bundle exec = %v %q", err, out)
	}

	// An unchanged lock: the same environment, nothing installed.
	dir2, _ := rubyFixture(t)
	rep = newRecorder(t)
	res2 := build(t, Spec{App: "test", Dir: dir2, CacheDir: cache, EnvsDir: envs, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res2.Envs, res.Envs) || !contains(res2.CacheHits, "ruby-gems") || !rep.hasStep("Reusing gems (Gemfile.lock unchanged)") {
		t.Errorf("second build: Envs %v (first %v), hits %v\n%s", res2.Envs, res.Envs, res2.CacheHits, rep)
	}
	if rep.hasStep("Installing gems") {
		t.Errorf("second build installed again:\n%s", rep)
	}

	// The app's BUNDLE_WITHOUT wins: the development group is wanted now,
	// and its minitest is not in vendor/cache.
	rep = newRecorder(t)
	_, err = Build(testContext(t), Spec{App: "test", Dir: dir2, CacheDir: cache, EnvsDir: envs, HasProcfile: true, Report: rep,
		Env: map[string]string{"BUNDLE_WITHOUT": "test"}})
	if err == nil || !strings.Contains(rep.String(), "minitest") {
		t.Errorf("with BUNDLE_WITHOUT=test: err = %v\n%s", err, rep)
	}

	// A Gemfile the lock does not match: Bundler's own words, no
	// environment left behind.
	data, err := os.ReadFile(filepath.Join(dir2, "Gemfile"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir2, "Gemfile"), string(data)+"gem \"rake\"\n")
	rep = newRecorder(t)
	_, err = Build(testContext(t), Spec{App: "test", Dir: dir2, CacheDir: cache, EnvsDir: envs, HasProcfile: true, Report: rep})
	if err == nil || !strings.Contains(err.Error(), "bundle install failed") {
		t.Fatalf("err = %v, want bundle install to fail", err)
	}
	if !strings.Contains(rep.String(), "The dependencies in your gemfile changed") {
		t.Errorf("Bundler's message is not in the output:\n%s", rep)
	}
	if got := entries(t, envs); len(got) != 1 {
		t.Errorf("envs after the failed build = %v", got)
	}
}

// TestRubyKey: the environment's name changes with every input that changes
// what Bundler installs, and only with those.
func TestRubyKey(t *testing.T) {
	t.Parallel()
	tc := rubyToolchain{ruby: "/usr/bin/ruby", bundle: "/usr/bin/bundle", description: "ruby 3.1.2", abi: "3.1.0", bundlerVersion: "2.3.15"}
	base := rubyInputs{gemfile: []byte("gem 'rack'\n"), lock: []byte("GEM\n"), hasCache: true,
		cache: map[string]string{"rack-2.2.22.gem": "aa"}}
	baseKey := base.key(tc, defaultBundleWithout, map[string]string{"SECRET": "x"})
	tests := []struct {
		name    string
		change  func(*rubyInputs, *rubyToolchain, map[string]string) string
		changes bool
	}{
		{"same inputs", func(*rubyInputs, *rubyToolchain, map[string]string) string { return defaultBundleWithout }, false},
		{"other config var", func(_ *rubyInputs, _ *rubyToolchain, e map[string]string) string {
			e["SECRET"] = "y"
			return defaultBundleWithout
		}, false},
		{"lock", func(in *rubyInputs, _ *rubyToolchain, _ map[string]string) string {
			in.lock = []byte("GEM\n  specs:\n")
			return defaultBundleWithout
		}, true},
		{"no lock", func(in *rubyInputs, _ *rubyToolchain, _ map[string]string) string {
			in.lock = nil
			return defaultBundleWithout
		}, true},
		{"gemfile", func(in *rubyInputs, _ *rubyToolchain, _ map[string]string) string {
			in.gemfile = []byte("gem 'rack', '~> 2.2'\n")
			return defaultBundleWithout
		}, true},
		{"cached gem", func(in *rubyInputs, _ *rubyToolchain, _ map[string]string) string {
			in.cache = map[string]string{"rack-2.2.22.gem": "bb"}
			return defaultBundleWithout
		}, true},
		{"ruby", func(_ *rubyInputs, tc *rubyToolchain, _ map[string]string) string {
			tc.description = "ruby 3.3.0"
			return defaultBundleWithout
		}, true},
		{"bundler", func(_ *rubyInputs, tc *rubyToolchain, _ map[string]string) string {
			tc.bundlerVersion = "2.5.0"
			return defaultBundleWithout
		}, true},
		{"groups", func(*rubyInputs, *rubyToolchain, map[string]string) string { return "" }, true},
		{"bundle setting", func(_ *rubyInputs, _ *rubyToolchain, e map[string]string) string {
			e["BUNDLE_FORCE_RUBY_PLATFORM"] = "true"
			return defaultBundleWithout
		}, true},
	}
	for _, tt := range tests {
		in := base
		in.cache = map[string]string{"rack-2.2.22.gem": "aa"}
		tc := tc
		env := map[string]string{"SECRET": "x"}
		without := tt.change(&in, &tc, env)
		if changed := in.key(tc, without, env) != baseKey; changed != tt.changes {
			t.Errorf("%s: key changed = %v, want %v", tt.name, changed, tt.changes)
		}
	}
}

// TestReadRubyInputs: what goes into the gem environment is read from the
// pushed tree alone; a link in vendor/cache, which could name any file of
// the server, is refused.
func TestReadRubyInputs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		wantErr string
		check   func(t *testing.T, in rubyInputs)
	}{
		{"gemfile alone", func(t *testing.T, dir string) {}, "", func(t *testing.T, in rubyInputs) {
			if in.lock != nil || in.hasCache || in.config != nil {
				t.Errorf("inputs = %+v", in)
			}
		}},
		{"lock, config and cache", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "Gemfile.lock"), "GEM\n")
			writeFile(t, filepath.Join(dir, ".bundle", "config"), "BUNDLE_JOBS: \"2\"\n")
			writeFile(t, filepath.Join(dir, "vendor", "cache", "rack-2.2.22.gem"), "gem")
		}, "", func(t *testing.T, in rubyInputs) {
			if string(in.lock) != "GEM\n" || in.config == nil || !in.hasCache || len(in.cache) != 1 || in.cache["rack-2.2.22.gem"] == "" {
				t.Errorf("inputs = %+v", in)
			}
		}},
		{"link in vendor/cache", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, "vendor", "cache", "rack-2.2.22.gem"), "gem")
			if err := os.Symlink("/etc/shadow", filepath.Join(dir, "vendor", "cache", "evil.gem")); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file", nil},
		{"vendor/cache a link", func(t *testing.T, dir string) {
			if err := os.MkdirAll(filepath.Join(dir, "vendor"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc", filepath.Join(dir, "vendor", "cache")); err != nil {
				t.Fatal(err)
			}
		}, "vendor/cache is a link", nil},
		{"vendor a link", func(t *testing.T, dir string) {
			other := t.TempDir()
			writeFile(t, filepath.Join(other, "cache", "rack-2.2.22.gem"), "gem")
			if err := os.Symlink(other, filepath.Join(dir, "vendor")); err != nil {
				t.Fatal(err)
			}
		}, "vendor is a link", nil},
		{"lock a link", func(t *testing.T, dir string) {
			if err := os.Symlink("/etc/shadow", filepath.Join(dir, "Gemfile.lock")); err != nil {
				t.Fatal(err)
			}
		}, "read Gemfile.lock: Gemfile.lock is a link", nil},
		{".bundle a link", func(t *testing.T, dir string) {
			other := t.TempDir()
			writeFile(t, filepath.Join(other, "config"), "x")
			if err := os.Symlink(other, filepath.Join(dir, ".bundle")); err != nil {
				t.Fatal(err)
			}
		}, "read .bundle/config: .bundle is a link", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "Gemfile"), "gem 'rack'\n")
			tt.setup(t, dir)
			in, err := readRubyInputs(dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, in)
		})
	}
}

// TestRubyBuildVariants: without a Gemfile.lock Bundler resolves from
// vendor/cache (every group: those left out must be there too) and the
// environment keeps the lock it wrote; without an
// environment store the gems go into the release's vendor/bundle.
func TestRubyBuildVariants(t *testing.T) {
	t.Parallel()
	t.Run("no lock", func(t *testing.T) {
		t.Parallel()
		dir, versions := rubyFixture(t)
		if err := os.Remove(filepath.Join(dir, "Gemfile.lock")); err != nil {
			t.Fatal(err)
		}
		// Bundler resolves every group before it leaves any out, and
		// vendor/cache has no minitest.
		writeFile(t, filepath.Join(dir, "Gemfile"), "source \"https://rubygems.org\"\ngem \"rack\"\ngem \"webrick\"\n")
		rep := newRecorder(t)
		res := build(t, Spec{App: "test", Dir: dir, CacheDir: t.TempDir(), EnvsDir: filepath.Join(t.TempDir(), "envs"), HasProcfile: true, Report: rep})
		if !rep.hasStep("Installing gems with bundle install --local (Gemfile, no Gemfile.lock)") {
			t.Errorf("log:\n%s", rep)
		}
		lock, err := os.ReadFile(filepath.Join(res.Envs[0], "Gemfile.lock"))
		if err != nil || !strings.Contains(string(lock), "rack ("+versions["rack"]+")") {
			t.Errorf("the environment's lock: %v\n%s", err, lock)
		}
		if _, err := os.Stat(filepath.Join(dir, "Gemfile.lock")); err == nil {
			t.Errorf("a lock was written into the release")
		}
	})
	t.Run("no store", func(t *testing.T) {
		t.Parallel()
		dir, versions := rubyFixture(t)
		rep := newRecorder(t)
		res := build(t, Spec{App: "test", Dir: dir, CacheDir: t.TempDir(), HasProcfile: true, Report: rep})
		if got, want := res.Env["BUNDLE_PATH"], filepath.Join(dir, "vendor", "bundle"); got != want {
			t.Errorf("BUNDLE_PATH = %q, want %q", got, want)
		}
		if _, err := os.Stat(filepath.Join(res.Env["GEM_HOME"], "gems", "rack-"+versions["rack"])); err != nil || len(res.Envs) != 0 {
			t.Errorf("rack in the release: %v; Envs = %v", err, res.Envs)
		}
	})
}
