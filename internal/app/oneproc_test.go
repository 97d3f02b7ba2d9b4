package app

import (
	"os"
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
