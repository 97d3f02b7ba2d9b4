package e2e

import (
	"strings"
	"testing"
)

// TestCommandsDeployFailureOnce: a `deploy` that fails tells why once, with
// the deploy's own failure line and the lines under it, over ssh and
// through the control socket, and exits 1; the live release serves on.
func TestCommandsDeployFailureOnce(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	files := staticSite("still v1")
	files["Procfile"] += "preflight: test -z \"$FAIL_PREFLIGHT\"\n"
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "site")
	wantBody(t, d, "site.localhost", "/", "still v1")
	d.mustCmd(alice, "config:set", "--no-restart", "site", "FAIL_PREFLIGHT=1")

	for name, r := range map[string]cmdResult{
		"ssh":            d.command(alice, "", "deploy", "site"),
		"control socket": d.local("", "deploy", "site"),
	} {
		if r.code != 1 {
			t.Errorf("%s: a failed deploy exits %d, want 1: %s", name, r.code, r)
		}
		if n := strings.Count(r.stderr, "preflight command failed"); n != 1 {
			t.Errorf("%s: the failure was told %d times, want once: %s", name, n, r)
		}
		if n := strings.Count(r.stderr, " !     "); n != 1 {
			t.Errorf("%s: %d failure lines, want 1: %s", name, n, r)
		}
		if !strings.Contains(r.stderr, "v1 serves on") {
			t.Errorf("%s: the failure does not say what serves: %s", name, r)
		}
	}
	wantBody(t, d, "site.localhost", "/", "still v1")
}
