package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"hop3/buildpacks"
	"hop3/procfile"
)

// TestGranianOneProcessSpec: a wsgi entry with one worker runs hop3's
// launcher with the venv's python and Granian's own flags; two workers, an
// asgi entry or GRANIAN_ONE_PROCESS=0 run Granian's CLI (a manager and its
// workers).
func TestGranianOneProcessSpec(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	if err := os.MkdirAll(u.m.paths.Run("a"), 0o755); err != nil {
		t.Fatal(err)
	}
	launcher := filepath.Join(u.m.paths.Run("a"), "hop3_granian.py")
	tests := []struct {
		name    string
		kind    procfile.Kind
		workers int
		env     map[string]string
		one     bool
	}{
		{"wsgi one worker", procfile.KindWSGI, 1, map[string]string{}, true},
		{"wsgi one worker, var on", procfile.KindWSGI, 1, map[string]string{oneProcessVar: "1"}, true},
		{"wsgi two workers", procfile.KindWSGI, 2, map[string]string{}, false},
		{"wsgi opted out", procfile.KindWSGI, 1, map[string]string{oneProcessVar: "0"}, false},
		{"wsgi opted out, off", procfile.KindWSGI, 1, map[string]string{oneProcessVar: "off"}, false},
		{"asgi one worker", procfile.KindASGI, 1, map[string]string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := release{app: "a", number: 1, gen: 1, dir: t.TempDir(), meta: releaseMeta{Venv: "/venv"}, env: tt.env}
			spec, err := u.m.granianSpec(r, procfile.Entry{Name: tt.kind.String(), Kind: tt.kind, Command: "app:app"}, tt.workers)
			if err != nil {
				t.Fatal(err)
			}
			wantHead := []string{"/venv/bin/granian"}
			if tt.one {
				wantHead = []string{"/venv/bin/python", launcher}
			}
			if got := spec.Command[:len(wantHead)]; !slices.Equal(got, wantHead) {
				t.Fatalf("command starts %q, want %q", got, wantHead)
			}
			// The same Granian flags either way.
			rest := spec.Command[len(wantHead):]
			if rest[0] != "--interface" || rest[slices.Index(rest, "--workers")+1] != strconv.Itoa(tt.workers) {
				t.Errorf("flags %q", rest)
			}
			env := strings.Join(spec.Env, "\n")
			hasVersion := slices.Contains(spec.Env, "HOP3_GRANIAN_VERSION="+buildpacks.DefaultGranianVersion)
			if hasVersion != tt.one {
				t.Errorf("HOP3_GRANIAN_VERSION set = %v, want %v", hasVersion, tt.one)
			}
			if strings.Contains(env, oneProcessVar+"=") {
				t.Errorf("%s passed on to Granian, which reads GRANIAN_* as flags", oneProcessVar)
			}
			if tt.one {
				b, err := os.ReadFile(launcher)
				if err != nil || string(b) != string(granianLauncher) {
					t.Fatalf("launcher not written: %v", err)
				}
			}
		})
	}
}

// TestGranianLauncherFallback runs the embedded launcher against stand-in
// Granian packages: the version hop3 installs with the internals it relies
// on serves in one process; another version, or one lacking an internal,
// runs Granian's own command line and says why once.
func TestGranianLauncherFallback(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	const cli = `import sys
from .server import Server
def cli(auto_envvar_prefix=None):
    print("cli", Server.__name__, auto_envvar_prefix)
`
	mpFull := `class MPServer:
    def _init_shared_socket(self): pass
    def _start_ipc(self): pass
    def _call_hooks(self, hooks): pass
    def _spawn_worker(self, idx, target, callback_loader): pass
    def _serve(self, spawn_target, target_loader): pass
`
	mpShort := "class MPServer:\n    def _serve(self, spawn_target, target_loader): pass\n"
	tests := []struct {
		name, version, mp string
		stdout, stderr    string
	}{
		{"the installed version", buildpacks.DefaultGranianVersion, mpFull, "cli OneProcess GRANIAN", ""},
		{"another version", "0.1.0", mpFull, "cli MPServer GRANIAN",
			"hop3: running Granian's manager and workers: Granian 0.1.0 is not " + buildpacks.DefaultGranianVersion},
		{"an internal missing", buildpacks.DefaultGranianVersion, mpShort, "cli MPServer GRANIAN",
			"hop3: running Granian's manager and workers: Granian lacks _init_shared_socket, _start_ipc, _call_hooks, _spawn_worker"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			files := map[string]string{
				"granian/__init__.py":        "__version__ = " + strconv.Quote(tt.version) + "\n",
				"granian/server/__init__.py": "from .mp import MPServer as MPServer\nServer = MPServer\n",
				"granian/server/mp.py":       tt.mp,
				"granian/cli.py":             cli,
				"hop3_granian.py":            string(granianLauncher),
			}
			for name, body := range files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(python, "-S", filepath.Join(dir, "hop3_granian.py"))
			cmd.Dir = dir
			cmd.Env = []string{"PYTHONPATH=" + dir, "HOP3_GRANIAN_VERSION=" + buildpacks.DefaultGranianVersion}
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("launcher: %v\n%s", err, stderr.String())
			}
			if got := strings.TrimSpace(stdout.String()); got != tt.stdout {
				t.Errorf("stdout %q, want %q", got, tt.stdout)
			}
			if got := strings.TrimSpace(stderr.String()); got != tt.stderr {
				t.Errorf("stderr %q, want %q", got, tt.stderr)
			}
		})
	}
}
