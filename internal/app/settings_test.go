package app

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// duringRun is a fakeSupervisor whose one-off commands (the preflight)
// call during first, as the app's own code would run there.
type duringRun struct {
	*fakeSupervisor
	during func(spec supervisor.Spec)
}

func (s duringRun) Run(ctx context.Context, spec supervisor.Spec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	s.during(spec)
	return s.fakeSupervisor.Run(ctx, spec, stdin, stdout, stderr)
}

// TestDeployReadsSettingsOnce: a deploy reads the app's config and the
// release's ENV and .env once, before its build. The build runs the app's
// code, which may rewrite .env, and config:set may change the config
// meanwhile, but the processes get what the build was given and the
// checks saw (ENV expanded for each as it should be: as written for the
// build, against hop3's values for the processes).
func TestDeployReadsSettingsOnce(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	u.commit(t, "shop", map[string]string{
		"Procfile": "worker: exec sleep 60\npreflight: rewrite the settings\n",
		".env":     "FROM_DOTENV=committed\n",
		"ENV":      "FROM_ENV=$DATA_ROOT/up\n",
	})
	if err := u.st.SetConfig(ctx, "shop", map[string]string{"GREETING": "before"}); err != nil {
		t.Fatal(err)
	}
	var preflight map[string]string
	u.m.cfg.Supervisor = duringRun{u.sup, func(spec supervisor.Spec) {
		preflight = envMap(spec.Env)
		for name, content := range map[string]string{".env": "FROM_DOTENV=rewritten\n", "ENV": "FROM_ENV=rewritten\n"} {
			if err := os.WriteFile(filepath.Join(spec.Dir, name), []byte(content), 0o644); err != nil {
				t.Error(err)
			}
		}
		if err := u.st.SetConfig(ctx, "shop", map[string]string{"GREETING": "after"}); err != nil {
			t.Error(err)
		}
	}}
	var out bytes.Buffer
	if err := u.m.Deploy(ctx, "shop", false, "alice", false, ui.New(&out, false)); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out.String())
	}
	if preflight == nil {
		t.Fatalf("the preflight command did not run:\n%s", out.String())
	}
	for k, v := range map[string]string{"FROM_DOTENV": "committed", "FROM_ENV": "$DATA_ROOT/up", "GREETING": "before"} {
		if preflight[k] != v {
			t.Errorf("preflight %s = %q, want %q", k, preflight[k], v)
		}
	}
	specs := u.sup.runningSpecs("shop")
	if len(specs) != 1 {
		t.Fatalf("running %d processes, want the worker", len(specs))
	}
	got := envMap(specs[0].Env)
	for k, v := range map[string]string{"FROM_DOTENV": "committed", "FROM_ENV": u.m.paths.Data("shop") + "/up", "GREETING": "before"} {
		if got[k] != v {
			t.Errorf("worker %s = %q, want %q", k, got[k], v)
		}
	}
}

func envMap(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}
