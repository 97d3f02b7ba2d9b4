package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pikuUID owns the piku tree the tests build: a user other than the
// importer, as on a real piku server, where git refuses root a repository
// it does not own unless told it is safe.
const pikuUID = 61999

const pikuCommand = `command="FINGERPRINT=%s NAME=default /usr/bin/python3 /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding `

// pikuNotes is a Flask app that keeps its notes in $DATA_ROOT, as piku's
// apps do (a KeyError without it).
var pikuNotes = map[string]string{
	"requirements.txt": "flask>=3.0\n",
	"Procfile":         "wsgi: app:app\n",
	"app.py": `import os
from flask import Flask

app = Flask(__name__)
DATA = os.environ["DATA_ROOT"]


@app.route("/")
def index():
    with open(os.path.join(DATA, "notes.txt")) as f:
        return os.environ.get("GREETING", "") + ": " + f.read()


@app.route("/write/<word>")
def write(word):
    with open(os.path.join(DATA, "notes.txt"), "a") as f:
        f.write(word + "\n")
    return "ok"


@app.route("/env/<name>")
def env(name):
    return os.environ.get(name, "<unset>")
`,
	"ENV": "NGINX_SERVER_NAME=notes.example.test\n",
}

// pikuCounter has a worker that appends to $DATA_ROOT/ticks and a web
// process that counts the lines.
var pikuCounter = map[string]string{
	"Procfile": "web: exec python3 server.py\nworker: while true; do echo \"hop3 tick $PROC_TYPE\" >> \"$DATA_ROOT/ticks\"; sleep 0.3; done\n",
	"server.py": `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/env/"):
            out = os.environ.get(self.path[5:], "<unset>")
        else:
            with open(os.path.join(os.environ["DATA_ROOT"], "ticks")) as f:
                out = f.read()
        b = out.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`,
}

// pikuTree builds ~piku/.piku as piku leaves it after `git push`es: bare
// repositories with their hooks' checkouts in apps/, config:set values in
// envs/<app>/ENV, LIVE_ENV and SCALING, data, logs, the uWSGI vassal
// configs of the running processes, nginx configs, and the keys piku's
// setup:ssh wrote. It returns PIKU_ROOT.
func pikuTree(t *testing.T, home string, keys ...user) string {
	t.Helper()
	root := filepath.Join(home, ".piku")
	for _, d := range []string{"repos", "apps", "data", "envs", "logs", "uwsgi", "uwsgi-available", "uwsgi-enabled", "nginx", "cache", "acme"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var lines []string
	for _, u := range keys {
		lines = append(lines, fmt.Sprintf(pikuCommand, "SHA256:x")+strings.TrimSpace(u.pub(t)))
	}
	opsWriteFile(t, filepath.Join(home, ".ssh", "authorized_keys"), strings.Join(lines, "\n")+"\n")
	return root
}

// pikuDeploy adds an app to a piku tree as a push to piku does.
func pikuDeploy(t *testing.T, root, app, branch string, files map[string]string, config, data string, kinds ...string) {
	t.Helper()
	opsPikuApp(t, root, app, branch, files)
	opsGit(t, root, "clone", "-q", filepath.Join(root, "repos", app), filepath.Join(root, "apps", app))
	if config != "" {
		opsWriteFile(t, filepath.Join(root, "envs", app, "ENV"), config)
	}
	live := "APP=" + app + "\nDATA_ROOT=" + filepath.Join(root, "data", app) + "\nPORT=5000\n" + files["ENV"] + config
	opsWriteFile(t, filepath.Join(root, "envs", app, "LIVE_ENV"), live)
	var scaling []string
	for _, k := range kinds {
		scaling = append(scaling, k+":1")
		opsWriteFile(t, filepath.Join(root, "uwsgi-enabled", app+"_"+k+".1.ini"), "[uwsgi]\nchdir = "+filepath.Join(root, "apps", app)+"\n")
		opsWriteFile(t, filepath.Join(root, "logs", app, k+".1.log"), "started\n")
	}
	opsWriteFile(t, filepath.Join(root, "envs", app, "SCALING"), strings.Join(scaling, "\n")+"\n")
	if data != "" {
		opsWriteFile(t, filepath.Join(root, "data", app, "notes.txt"), data)
	}
	if strings.Contains(files["ENV"]+config, "NGINX_SERVER_NAME") {
		opsWriteFile(t, filepath.Join(root, "nginx", app+".conf"), "server { }\n")
	}
}

// chownTree gives a tree to uid, as piku's files belong to the piku user.
func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// pikuVassal stands in for piku's uWSGI emperor running one process of
// app: it works in the app's directory and appends to its data while its
// vassal config is in uwsgi-enabled, and exits once it is not.
func pikuVassal(t *testing.T, root, app, kind string) <-chan struct{} {
	t.Helper()
	ini := filepath.Join(root, "uwsgi-enabled", app+"_"+kind+".1.ini")
	cmd := exec.Command("sh", "-c", `while [ -e "$1" ]; do echo "piku tick" >> "$2"; sleep 0.1; done`, "sh",
		ini, filepath.Join(root, "data", app, "ticks"))
	cmd.Dir = filepath.Join(root, "apps", app)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return done
}

func appReleases(t *testing.T, d *daemon) map[string]int {
	t.Helper()
	out, err := d.hop3("", "apps", "--json")
	if err != nil {
		t.Fatalf("apps: %v\n%s", err, out)
	}
	var rows []struct {
		Name    string `json:"name"`
		Release int    `json:"release"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	m := map[string]int{}
	for _, r := range rows {
		m[r.Name] = r.Release
	}
	return m
}

func wantOutput(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// TestPikuImport moves a piku server into hop3 as docs/production.md
// says: a piku tree owned by another user (a Flask app reading DATA_ROOT,
// a static site, a worker writing to DATA_ROOT; ENV files, LIVE_ENV,
// SCALING, two keys with piku's command= prefix), imported as root with
// --data. Then the apps serve on their piku host names and their own,
// their data is theirs, their workers run, a push that edits ENV takes
// effect, both keys push, a second import changes nothing, and an app whose
// import fails midway is removed and imported by the next run.
func TestPikuImport(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds a piku tree owned by another user: needs root")
	}
	t.Parallel()
	root := shortTemp(t)
	d, _ := startOpsDaemon(t, root, nil)
	alice, bob := newUser(t, "alice@laptop"), newUser(t, "bob")
	home := t.TempDir()
	piku := pikuTree(t, home, alice, bob)
	// A third key restricted to an address keeps its restriction.
	carol := newUser(t, "carol")
	f, err := os.OpenFile(filepath.Join(home, ".ssh", "authorized_keys"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `from="127.0.0.1",`+pikuCommand+"%s\n", "SHA256:x", strings.TrimSpace(carol.pub(t)))
	f.Close()
	pikuDeploy(t, piku, "notes", "master", pikuNotes, "GREETING=hello\n", "kept by piku\n", "wsgi")
	pikuDeploy(t, piku, "site", "trunk", map[string]string{"public/index.html": "the site, moved", "Procfile": "static: public\n",
		"ENV": "NGINX_SERVER_NAME=site.example.test,www.site.example.test\n"}, "", "")
	pikuDeploy(t, piku, "counter", "master", pikuCounter, "NGINX_SERVER_NAME=counter.example.test\n", "", "web", "worker")
	opsWriteFile(t, filepath.Join(piku, "data", "counter", "ticks"), "piku tick\n")
	chownTree(t, home, pikuUID)
	vassalDone := pikuVassal(t, piku, "counter", "worker")

	// The dry run checks everything the import needs and finds nothing.
	out, code := opsRun(t, nil, "--root", root, "import-piku", piku, "--dry-run", "--data")
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	wantOutput(t, "dry run", out, "Would import notes", "Would import counter", "with trunk also as main",
		"stop piku's counter (renaming uwsgi-enabled/counter_*.ini", "serves notes.example.test",
		"Would add piku's keys", "piku-alice@laptop (deployer of", "piku-bob (deployer of",
		"dry run: no problem found")
	if strings.Contains(out, "hello") || strings.Contains(out, "problem:") {
		t.Errorf("the dry run shows a config value or a problem:\n%s", out)
	}
	if apps := appReleases(t, d); len(apps) != 0 {
		t.Fatalf("the dry run created apps: %v", apps)
	}
	if _, err := os.Stat(filepath.Join(piku, "uwsgi-enabled", "counter_worker.1.ini")); err != nil {
		t.Fatalf("the dry run stopped piku's app: %v", err)
	}

	out, code = opsRun(t, nil, "import-piku", piku, "--data", "--root", root)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s", code, out)
	}
	wantOutput(t, "import", out, "counter: imported", "notes: imported", "site: imported",
		"stopped piku's counter: renamed 2 uwsgi-enabled/counter_*.ini", "Next steps", "systemctl disable --now uwsgi-piku")

	// piku's processes of counter stopped before its data was copied.
	select {
	case <-vassalDone:
	case <-time.After(10 * time.Second):
		t.Fatal("piku's worker of counter still runs after the import")
	}

	// Every app answers at its piku host names and at <app>.<domain>.
	wantBody(t, d, "notes.example.test", "/", "hello: kept by piku\n")
	wantBody(t, d, "notes.localhost", "/", "hello: kept by piku\n")
	wantBody(t, d, "site.example.test", "/", "the site, moved")
	wantBody(t, d, "www.site.example.test", "/", "the site, moved")
	wantBody(t, d, "site.localhost", "/", "the site, moved")
	for _, host := range []string{"counter.example.test", "counter.localhost"} {
		if code, body := get(t, d, host, "/"); code != 200 || !strings.HasPrefix(body, "piku tick\n") {
			t.Errorf("GET %s/ = %d %.200q, want piku's ticks first", host, code, body)
		}
	}
	// Its data is its own: readable, writable, and it keeps growing.
	wantBody(t, d, "notes.localhost", "/write/fresh", "ok")
	wantBody(t, d, "notes.localhost", "/", "hello: kept by piku\nfresh\n")
	eventually(t, 30*time.Second, func() error {
		_, body := get(t, d, "counter.localhost", "/")
		if n := strings.Count(body, "hop3 tick worker"); n < 3 {
			return fmt.Errorf("%d ticks of hop3's worker in %q", n, body)
		}
		return nil
	})
	wantBody(t, d, "counter.localhost", "/env/DATA_ROOT", filepath.Join(root, "data", "counter"))
	wantBody(t, d, "counter.localhost", "/env/DATA_DIR", filepath.Join(root, "data", "counter"))
	// The copy belongs to whom hop3 gave the app's DATA_DIR (the app's own
	// user with isolation, else hop3's), not to piku.
	var dirSt, dataSt syscall.Stat_t
	syscall.Stat(filepath.Join(root, "data", "notes"), &dirSt)
	if err := syscall.Stat(filepath.Join(root, "data", "notes", "notes.txt"), &dataSt); err != nil || dataSt.Uid != dirSt.Uid || dataSt.Gid != dirSt.Gid || dataSt.Uid == pikuUID {
		t.Errorf("notes' data belongs to %d:%d, want its DATA_DIR's owner %d:%d: %v", dataSt.Uid, dataSt.Gid, dirSt.Uid, dirSt.Gid, err)
	}
	// The repository's ENV is read at deploy, not copied into config.
	if cfg, err := d.hop3("", "config", "notes", "--json"); err != nil || strings.Contains(cfg, "NGINX_SERVER_NAME") || !strings.Contains(cfg, "GREETING") {
		t.Errorf("config of notes: %v\n%s", err, cfg)
	}
	if doms, err := d.hop3("", "domains", "notes"); err != nil || !strings.Contains(doms, "notes.example.test (NGINX_SERVER_NAME)") {
		t.Errorf("domains notes: %v\n%s", err, doms)
	}
	if keys, err := d.hop3("", "keys", "list"); err != nil || !strings.Contains(keys, "piku-alice@laptop") || !strings.Contains(keys, "counter,notes,site") ||
		!strings.Contains(keys, `from="127.0.0.1"`) {
		t.Errorf("keys: %v\n%s", err, keys)
	}

	// alice clones notes from hop3 and pushes an ENV that adds a host and
	// a greeting: the host is served; config:set's GREETING stays over
	// the ENV's until unset.
	w := &workdir{t: t, dir: t.TempDir()}
	if out, err := w.gitErr([]string{"GIT_SSH_COMMAND=" + d.sshCommand(alice)}, "clone", "-q", d.remote("notes"), "."); err != nil {
		t.Fatalf("clone notes as alice: %v\n%s", err, out)
	}
	w.commit("another host", map[string]string{"ENV": "NGINX_SERVER_NAME=notes.example.test notes2.example.test\nGREETING=from ENV\n"})
	if out, err := w.gitErr([]string{"GIT_SSH_COMMAND=" + d.sshCommand(alice)}, "push", d.remote("notes"), "HEAD:master"); err != nil {
		t.Fatalf("push as alice: %v\n%s", err, out)
	}
	wantBody(t, d, "notes2.example.test", "/", "hello: kept by piku\nfresh\n")
	if out, err := d.hop3("", "config:unset", "notes", "GREETING"); err != nil {
		t.Fatalf("config:unset: %v\n%s", err, out)
	}
	eventually(t, 30*time.Second, func() error {
		if _, body := get(t, d, "notes2.example.test", "/"); !strings.HasPrefix(body, "from ENV: ") {
			return fmt.Errorf("after config:unset GREETING: %q", body)
		}
		return nil
	})
	// bob pushes to the site.
	b := &workdir{t: t, dir: t.TempDir()}
	if out, err := b.gitErr([]string{"GIT_SSH_COMMAND=" + d.sshCommand(bob)}, "clone", "-q", d.remote("site"), "."); err != nil {
		t.Fatalf("clone site as bob: %v\n%s", err, out)
	}
	b.commit("new page", map[string]string{"public/index.html": "the site, by bob"})
	b.mustPush(d, bob, "site")
	wantBody(t, d, "www.site.example.test", "/", "the site, by bob")
	before := appReleases(t, d)

	// A second import changes nothing.
	out, code = opsRun(t, nil, "--root", root, "import-piku", piku, "--data")
	if code != 0 {
		t.Fatalf("second import: exit %d\n%s", code, out)
	}
	wantOutput(t, "second import", out, "counter: unchanged", "notes: unchanged", "site: unchanged", "already allowed as piku-alice@laptop (deployer), unchanged")
	if after := appReleases(t, d); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("releases after a second import: %v, want %v", after, before)
	}

	// A new piku app whose import fails midway (its worker crashes under
	// hop3, after the app was created, its repository copied and its data
	// copied) fails with the worker's log lines, leaves nothing behind, and
	// piku's app runs again.
	brokenApp := map[string]string{"index.html": "broken, fixed", "Procfile": "static: .\nworker: echo \"KeyError: 'SCHEMA_URL'\" >&2; exit 3\n"}
	chownTree(t, home, 0)
	pikuDeploy(t, piku, "broken", "master", brokenApp, "", "broken data\n", "worker")
	chownTree(t, home, pikuUID)
	out, code = opsRun(t, nil, "--root", root, "import-piku", piku, "--data")
	if code == 0 {
		t.Fatalf("import of a failing app: exit 0\n%s", out)
	}
	wantOutput(t, "failed import", out, "broken: failed; it was removed from hop3: run the import again once fixed; piku's broken runs again",
		"deploy failed: worker.1 did not start", "KeyError: 'SCHEMA_URL'", "counter: unchanged")
	if _, ok := appReleases(t, d)["broken"]; ok {
		t.Error("the failed import left the app in hop3")
	}
	for _, p := range []string{filepath.Join(root, "repos", "broken.git"), filepath.Join(root, "data", "broken"), filepath.Join(root, "apps", "broken")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the failed import left %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(piku, "uwsgi-enabled", "broken_worker.1.ini")); err != nil {
		t.Errorf("piku's broken was not started again: %v", err)
	}

	// Fixed in piku (a new push there), the next run imports it.
	fix := t.TempDir()
	chownTree(t, home, 0)
	opsGit(t, fix, "clone", "-q", filepath.Join(piku, "repos", "broken"), ".")
	opsWriteFile(t, filepath.Join(fix, "Procfile"), "static: .\nworker: exec sleep 1000\n")
	opsGit(t, fix, "commit", "-q", "-am", "fix the migration")
	opsGit(t, fix, "push", "-q", "origin", "master")
	chownTree(t, home, pikuUID)
	out, code = opsRun(t, nil, "--root", root, "import-piku", piku, "--data")
	if code != 0 {
		t.Fatalf("import after the fix: exit %d\n%s", code, out)
	}
	wantOutput(t, "import after the fix", out, "broken: imported", "notes: unchanged", "may now also use broken")
	wantBody(t, d, "broken.localhost", "/", "broken, fixed")
	if b, err := os.ReadFile(filepath.Join(root, "data", "broken", "notes.txt")); err != nil || string(b) != "broken data\n" {
		t.Errorf("broken's data: %q, %v", b, err)
	}

	// And once more: nothing to do.
	before = appReleases(t, d)
	out, code = opsRun(t, nil, "--root", root, "import-piku", piku, "--data")
	if code != 0 || strings.Contains(out, ": imported") || strings.Contains(out, "may now also use") {
		t.Errorf("last import: exit %d\n%s", code, out)
	}
	if after := appReleases(t, d); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("releases after the last import: %v, want %v", after, before)
	}
}
