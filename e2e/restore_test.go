package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRestoreStartsAppsTogether restarts hop3 with two apps whose
// processes must stay up for SETTLE_TIME before they count as started:
// the second app's processes run before the first app is back, so apps
// come back side by side rather than one settle time after another, and
// both serve again on the same URL.
func TestRestoreStartsAppsTogether(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	apps := []string{"alpha", "beta"}
	for _, app := range apps {
		files := envServer("hello " + app)
		files["ENV"] = "SETTLE_TIME=5\n"
		newWorkdir(t, files).mustPush(d, alice, app)
	}

	addr := d.httpAddr
	d.stop()
	before := len(d.log()) // the log is appended to: the restart's part follows
	d = startDaemon(t, root, addr)
	for _, app := range apps {
		eventually(t, 60*time.Second, func() error {
			if code, body := get(t, d, app+".localhost", "/"); code != 200 || body != "hello "+app {
				return fmt.Errorf("GET %s = %d %q", app, code, body)
			}
			return nil
		})
	}

	// The log's order, not its clock: one app after another would start
	// beta's web process only after alpha had settled and was restored.
	log := d.log()[before:]
	lines := strings.Split(log, "\n")
	at := func(parts ...string) int {
		for i, l := range lines {
			if containsAll(l, parts...) {
				return i
			}
		}
		t.Fatalf("the restart's log has no line with %q:\n%s", parts, log)
		return -1
	}
	restored := at(`msg="app restored"`, "app=alpha")
	running := at(`msg="process running"`, "name=beta/web.1@")
	if running > restored {
		t.Errorf("beta's web process started after alpha was restored (log lines %d, %d): apps are restored one after another", running, restored)
	}
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
