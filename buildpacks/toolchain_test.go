package buildpacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeTools writes scripts standing in for the named tools into a directory
// and returns it. javac, mvn, gradle and php answer their version; mvn and
// gradle write their arguments and the variables a Java build sets into
// <release>/called. The others only exist.
func fakeTools(t *testing.T, names ...string) string {
	t.Helper()
	bin := t.TempDir()
	scripts := map[string]string{
		"javac": "#!/bin/sh\necho javac 17.0.99\n",
		"mvn": "#!/bin/sh\ncase \"$*\" in *--version*) printf '\\033[0mApache Maven 3.8.99\\n'; echo 'Maven home: /x'; exit 0;; esac\n" +
			"echo \"mvn $*|MAVEN_OPTS=$MAVEN_OPTS\" > called\n",
		"gradle": "#!/bin/sh\ncase \"$*\" in *--version*) printf '\\n------\\nGradle 8.99\\n------\\n'; exit 0;; esac\n" +
			"echo \"gradle $*|GRADLE_USER_HOME=$GRADLE_USER_HOME|GRADLE_OPTS=$GRADLE_OPTS\" > called\n",
		"php": "#!/bin/sh\necho 'PHP 8.2.99'\n",
	}
	for _, name := range names {
		script, ok := scripts[name]
		if !ok {
			script = "#!/bin/sh\nexit 1\n"
		}
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// TestMissingTools: a build without a tool its pack needs fails with one
// line naming the Debian package to install, then what the lookup found.
// The lines are pinned whole: users and the end-to-end tests read them.
func TestMissingTools(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// fixture is the testdata app pushed, or "" for a tree of files.
		fixture string
		files   map[string]string
		// tools are faked on PATH, the build's only PATH directory.
		tools []string
		// cargo is Tools.Cargo; {BIN} in it and in want is the PATH
		// directory.
		cargo string
		want  string
	}{
		{
			name: "rust without cargo", fixture: "rust-app",
			want: "build rust app: cargo is not installed for the build: install Debian's cargo package (apt-get install cargo) or a rustup toolchain on PATH (tool not found: cargo is not on PATH)",
		},
		{
			name: "rust with a configured cargo that is not there", fixture: "rust-app", cargo: "{BIN}/cargo",
			want: "build rust app: cargo is not installed for the build: install Debian's cargo package (apt-get install cargo) or a rustup toolchain on PATH (tool not found: {BIN}/cargo is missing or not executable)",
		},
		{
			name: "php without php", fixture: "php-app",
			want: "build php app: php is not installed for the build: install Debian's php-cli package (apt-get install php-cli) (tool not found: php is not on PATH)",
		},
		{
			name: "php without composer", fixture: "php-composer-app", tools: []string{"php", "php-fpm"},
			want: "build php app: composer is not installed for the build: install Debian's composer package (apt-get install composer) (tool not found: composer is not on PATH)",
		},
		{
			name: "ruby without ruby", fixture: "ruby-app",
			want: "build ruby app: ruby and bundler are not installed for the build: install Debian's ruby-bundler package (apt-get install ruby-bundler) (tool not found: ruby is not on PATH)",
		},
		{
			name: "ruby without bundler", fixture: "ruby-app", tools: []string{"ruby"},
			want: "build ruby app: ruby and bundler are not installed for the build: install Debian's ruby-bundler package (apt-get install ruby-bundler) (tool not found: bundle is not on PATH)",
		},
		{
			name: "maven without mvn", files: map[string]string{"pom.xml": ""}, tools: []string{"javac", "gradle"},
			want: "build java app: mvn is not installed for the build: install Debian's maven package (apt-get install maven) (tool not found: mvn is not on PATH)",
		},
		{
			// Debian's maven brings a JRE only.
			name: "maven without javac", files: map[string]string{"pom.xml": ""}, tools: []string{"mvn"},
			want: "build java app: javac is not installed for the build: install Debian's default-jdk-headless package (apt-get install default-jdk-headless) (tool not found: javac is not on PATH)",
		},
		{
			name: "gradle without gradle or gradlew", files: map[string]string{"build.gradle": ""}, tools: []string{"javac", "mvn"},
			want: "build java app: gradle is not installed for the build: commit the project's gradlew, or install Debian's gradle package (apt-get install gradle) (tool not found: gradle is not on PATH)",
		},
		{
			name: "gradlew without javac", files: map[string]string{"build.gradle.kts": "", "gradlew": "#!/bin/sh\n"}, tools: []string{"gradle"},
			want: "build java app: javac is not installed for the build: install Debian's default-jdk-headless package (apt-get install default-jdk-headless) (tool not found: javac is not on PATH)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var dir string
			if tt.fixture != "" {
				dir = fixture(t, tt.fixture)
			} else {
				dir = t.TempDir()
			}
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			bin := fakeTools(t, tt.tools...)
			spec := Spec{App: "test", Dir: dir, CacheDir: t.TempDir(), HasProcfile: true, Report: newRecorder(t),
				Env: map[string]string{"PATH": bin}, Tools: Tools{Cargo: strings.ReplaceAll(tt.cargo, "{BIN}", bin)}}
			_, err := Build(testContext(t), spec)
			if err == nil {
				t.Fatal("Build succeeded")
			}
			if want := strings.ReplaceAll(tt.want, "{BIN}", bin); err.Error() != want {
				t.Errorf("error = %q\nwant    %q", err, want)
			}
		})
	}
}

// TestToolEnv: the caches a pack names go into CacheDir, as absolute paths
// (the tools run in the release, not where hop3 was started); a build
// without a CacheDir leaves the tools their defaults.
func TestToolEnv(t *testing.T) {
	t.Chdir(t.TempDir())
	abs, err := filepath.Abs("cache")
	if err != nil {
		t.Fatal(err)
	}
	// Names no server sets: without a cache, a tool's variable is unset.
	caches := map[string]string{"HOP3T_TOOL_HOME": "tool-home", "HOP3T_TOOL_CACHE": "tool-cache"}
	tests := []struct {
		name       string
		cacheDir   string
		wantCached bool
		want       map[string]string
	}{
		{"no cache", "", false, map[string]string{"HOP3T_TOOL_HOME": "", "HOP3T_TOOL_CACHE": ""}},
		{"relative cache", "cache", true, map[string]string{"HOP3T_TOOL_HOME": abs + "/tool-home", "HOP3T_TOOL_CACHE": abs + "/tool-cache"}},
		{"absolute cache", "/srv/cache", true, map[string]string{"HOP3T_TOOL_HOME": "/srv/cache/tool-home", "HOP3T_TOOL_CACHE": "/srv/cache/tool-cache"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuilder(Spec{Dir: "/srv/release", CacheDir: tt.cacheDir, Env: map[string]string{"APP": "1"}}, "/srv/release")
			env, cached, err := b.toolEnv(caches)
			if err != nil || cached != tt.wantCached {
				t.Fatalf("toolEnv = cached %v, %v; want %v", cached, err, tt.wantCached)
			}
			for name, want := range tt.want {
				if env[name] != want {
					t.Errorf("%s = %q, want %q", name, env[name], want)
				}
			}
			if env["APP"] != "1" {
				t.Errorf("the app's config is not in the tools' environment")
			}
			if _, set := b.env["HOP3T_TOOL_HOME"]; set {
				t.Errorf("toolEnv changed the build's own environment")
			}
		})
	}
}
