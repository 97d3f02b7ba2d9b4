package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// viteAsset fetches the page of the Vite fixture and the script it loads,
// and returns the script.
func viteAsset(t *testing.T, d *daemon, host string) string {
	t.Helper()
	code, page := get(t, d, host, "/")
	m := regexp.MustCompile(`src="(/assets/[^"]+\.js)"`).FindStringSubmatch(page)
	if code != 200 || m == nil {
		t.Fatalf("GET / = %d %q, want the page vite build wrote", code, page)
	}
	code, js := get(t, d, host, m[1])
	if code != 200 {
		t.Fatalf("GET %s = %d", m[1], code)
	}
	return js
}

// releaseModules resolves the node_modules of release n of app.
func releaseModules(t *testing.T, d *daemon, app string, n int) (string, os.FileInfo) {
	t.Helper()
	link := filepath.Join(d.root, "apps", app, "releases", fmt.Sprint(n), "node_modules")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("node_modules of v%d is not a link: %v", n, err)
	}
	target, err := filepath.EvalSymlinks(link)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	return target, fi
}

// TestBuildsNodeShared pushes a Vite app (npm ci, vite build, a runtime
// dependency served by node): its releases link one shared node_modules, a
// push of an empty commit reuses the build without running npm, and a
// changed source builds again on the same node_modules.
func TestBuildsNodeShared(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	const app, host = "vite", "vite.localhost"
	files := testdataApp(t, "vite-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, app)
	wantPushOutput(t, out, "Installing dependencies with npm ci (package-lock.json)", "Running npm run build", "web.1 ready")
	v1 := releaseNumberOf(t, out)
	if js := viteAsset(t, d, host); !strings.Contains(js, "Built by Vite on hop3") {
		t.Fatalf("the page's script lacks the message:\n%s", js)
	}

	w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
	out = w.mustPush(d, alice, app)
	wantPushOutput(t, out, "Reusing the build of an unchanged tree", "which has stayed up: no settle wait", "web.1 ready")
	wantNoPushOutput(t, out, "npm ci", "npm run build", "Installing dependencies")
	v2 := releaseNumberOf(t, out)
	wantLive(t, d, app, v2)
	if js := viteAsset(t, d, host); !strings.Contains(js, "Built by Vite on hop3") {
		t.Fatalf("the reused build lacks the message:\n%s", js)
	}

	w.commit("new message", map[string]string{"src/message.js": "export const message = \"Rebuilt by Vite on hop3\";\n"})
	out = w.mustPush(d, alice, app)
	wantPushOutput(t, out, "Reusing node_modules (package-lock.json unchanged)", "Running npm run build")
	wantNoPushOutput(t, out, "npm ci", "Reusing the build")
	v3 := releaseNumberOf(t, out)
	if js := viteAsset(t, d, host); !strings.Contains(js, "Rebuilt by Vite on hop3") {
		t.Fatalf("the rebuilt page lacks the new message:\n%s", js)
	}

	// One tree for the three releases, outside them, without the dev
	// dependency (vite) the build needed.
	first, fi := releaseModules(t, d, app, v1)
	for _, n := range []int{v2, v3} {
		path, other := releaseModules(t, d, app, n)
		if path != first || !os.SameFile(fi, other) {
			t.Errorf("node_modules of v%d is %s, of v%d %s", n, path, v1, first)
		}
	}
	if !strings.HasPrefix(first, filepath.Join(d.root, "apps", app, "envs")+string(os.PathSeparator)) {
		t.Errorf("node_modules is %s, not in the app's environment store", first)
	}
	if _, err := os.Stat(filepath.Join(first, "sirv")); err != nil {
		t.Errorf("the runtime dependency is missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(first, "vite")); err == nil {
		t.Error("the dev dependency vite is in the runtime tree")
	}
}

// logLineRe matches a line of `logs`: time, process, generation, text.
var logLineRe = regexp.MustCompile(`^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (v\d+\.\d+) \| (.*)$`)

// TestLogsGenerations deploys two releases of a worker that prints its
// release's version: `logs` shows both generations' lines, stamped, in time
// order, each with the generation that wrote it.
func TestLogsGenerations(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	const app = "gens"
	w := newWorkdir(t, map[string]string{
		"VERSION":  "one\n",
		"Procfile": "worker: echo \"worker says $(cat VERSION)\"; exec sleep 600\n",
	})
	v1 := releaseNumberOf(t, w.mustPush(d, alice, app))
	w.commit("two", map[string]string{"VERSION": "two\n"})
	v2 := releaseNumberOf(t, w.mustPush(d, alice, app))

	var lines []string
	eventually(t, 20*time.Second, func() error {
		r := d.mustCmd(alice, "logs", app)
		lines = strings.Split(strings.TrimSpace(r.stdout), "\n")
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "| worker says ") {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("logs shows %d worker lines:\n%s", n, r.stdout)
		}
		return nil
	})
	said := map[string]string{}
	prev := ""
	for _, l := range lines {
		m := logLineRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("logs line without time and generation: %q", l)
		}
		if m[1] < prev {
			t.Errorf("logs lines out of time order at %q", l)
		}
		prev = m[1]
		if m[2] != "worker.1" {
			t.Errorf("line of %s: %q", m[2], l)
		}
		if v, ok := strings.CutPrefix(m[4], "worker says "); ok {
			said[v] = m[3]
		}
	}
	if !strings.HasPrefix(said["one"], fmt.Sprintf("v%d.", v1)) || !strings.HasPrefix(said["two"], fmt.Sprintf("v%d.", v2)) {
		t.Errorf("generations of the lines = %v, want v%d.* for one and v%d.* for two:\n%s", said, v1, v2, strings.Join(lines, "\n"))
	}
}

// TestLogsAccessLog: with ACCESS_LOG=1 Granian logs each request of a WSGI
// app, and `logs` shows it; without it, requests are not logged.
func TestLogsAccessLog(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	const app, host = "acc", "acc.localhost"
	w := newWorkdir(t, map[string]string{
		"requirements.txt": "# nothing but granian\n",
		"app.py": `def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hi\n"]
`,
		"Procfile": "wsgi: app:app\n",
	})
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/quiet-path", "hi\n")
	d.mustCmd(alice, "config:set", app, "ACCESS_LOG=1")
	wantBody(t, d, host, "/logged-path?x=1", "hi\n")
	eventually(t, 20*time.Second, func() error {
		r := d.mustCmd(alice, "logs", app)
		if !strings.Contains(r.stdout, "/logged-path") {
			return fmt.Errorf("no request in logs:\n%s", r.stdout)
		}
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.Contains(l, "/logged-path") && (!strings.Contains(l, " 200") || !strings.Contains(l, "GET")) {
				return fmt.Errorf("request line without method and status: %q", l)
			}
		}
		return nil
	})
	if r := d.mustCmd(alice, "logs", app); strings.Contains(r.stdout, "/quiet-path") {
		t.Errorf("a request before ACCESS_LOG=1 was logged:\n%s", r.stdout)
	}
}
