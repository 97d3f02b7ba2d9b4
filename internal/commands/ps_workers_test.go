package commands

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"hop3/runtime/supervisor"
)

// TestPsWorkers: ps shows a wsgi/asgi process's Granian workers and
// whether hop3 adjusts them (auto) or the app set them (pinned).
func TestPsWorkers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "wsgi: app:app\napi: x\nworker: y\n")
	e.be.procs["myapp"] = []supervisor.Status{
		{Labels: map[string]string{"app": "myapp", "kind": "wsgi", "index": "1", "release": "1", "workers": "2", "scaling": "auto"}, State: supervisor.Running},
		{Labels: map[string]string{"app": "myapp", "kind": "worker", "index": "1", "release": "1"}, State: supervisor.Running},
		{Labels: map[string]string{"app": "myapp", "kind": "api", "index": "1", "release": "1", "workers": "1", "scaling": "pinned"}, State: supervisor.Running},
	}
	var rows []processJSON
	if err := json.Unmarshal([]byte(e.ok("ps", "myapp", "--json").stdout), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("ps --json: %v %+v", err, rows)
	}
	got := map[string]string{}
	for _, r := range rows {
		got[r.Kind] = strings.TrimSpace(strings.Join([]string{strconv.Itoa(r.Workers), r.Scaling}, " "))
	}
	want := map[string]string{"wsgi": "2 auto", "api": "1 pinned", "worker": "0"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("ps --json %s: workers, scaling = %q, want %q", k, got[k], w)
		}
	}
	out := e.ok("ps", "myapp").stdout
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "PROCESS":
			if !strings.Contains(line, "WORKERS") {
				t.Errorf("ps header lacks WORKERS:\n%s", out)
			}
		case "wsgi.1":
			if !strings.Contains(line, "2 (auto)") {
				t.Errorf("wsgi row lacks 2 (auto):\n%s", out)
			}
		case "api.1":
			if !strings.Contains(line, "1 (pinned)") {
				t.Errorf("api row lacks 1 (pinned):\n%s", out)
			}
		case "worker.1":
			if strings.Contains(line, "(auto)") || strings.Contains(line, "(pinned)") {
				t.Errorf("worker row shows a worker count:\n%s", out)
			}
		}
	}
}
