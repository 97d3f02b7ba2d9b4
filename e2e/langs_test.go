package e2e

import (
	"strings"
	"testing"
)

// TestLangsPoetryLock pushes a Flask app whose poetry.lock pins flask 2.1.3
// and setuptools 65.3.0 (which still ships pkg_resources): the locked
// versions are installed, not the newest ones pyproject.toml would allow,
// and the dev group is left out. A pyproject.toml naming a dependency the
// lock lacks fails the push and leaves the app serving; an unchanged lock
// reuses the virtualenv.
func TestLangsPoetryLock(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "poetry.localhost"
	files := testdataApp(t, "poetry-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "poetry")
	wantPushOutput(t, out, "Python app detected", "Installing dependencies from poetry.lock")
	wantBody(t, d, host, "/", "flask 2.1.3 setuptools 65.3.0\n")

	r := d.command(alice, "", "run", "poetry", "--", "python", "-c",
		"import importlib.metadata as m, importlib.util as u; print(m.version('werkzeug'), m.version('click'), u.find_spec('pytest') is None)")
	if r.code != 0 || r.stdout != "2.1.2 8.1.3 True\n" {
		t.Fatalf("run = %d %q %q, want the locked werkzeug and click and no pytest", r.code, r.stdout, r.stderr)
	}

	project := strings.Replace(files["pyproject.toml"], `setuptools = "65.3.0"`, "setuptools = \"65.3.0\"\nrequests = \"^2.28\"", 1)
	w.commit("stale lock", map[string]string{"pyproject.toml": project})
	wantBuildFails(t, d, alice, w, "poetry",
		"pyproject.toml changed significantly since poetry.lock was last generated (requests not locked)", "build failed")
	wantBody(t, d, host, "/", "flask 2.1.3 setuptools 65.3.0\n")

	app := strings.Replace(files["app.py"], `"flask %s`, `"v2 flask %s`, 1)
	w.commit("v2", map[string]string{"app.py": app})
	out = w.mustPush(d, alice, "poetry")
	wantPushOutput(t, out, "Reusing virtualenv")
	wantNoPushOutput(t, out, "Installing dependencies")
	wantBody(t, d, host, "/", "v2 flask 2.1.3 setuptools 65.3.0\n")
}
