package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// needAddonServers skips when PostgreSQL 15 or Redis are not installed;
// scripts/setup.sh (so `make test` and .ci/run) installs them.
func needAddonServers(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/usr/lib/postgresql/15/bin/postgres", "/usr/bin/redis-server", "/usr/bin/redis-cli"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is missing: run scripts/setup.sh (it installs postgresql-15 and redis-server)", p)
		}
	}
}

// ownCache gives a daemon build caches of its own: destroying an app
// removes its uid's cache, and the shared test cache is keyed by uids that
// other tests' daemons use too.
func ownCache(root string) []string {
	return []string{"--cache-dir", filepath.Join(root, "cache")}
}

// notesApp is a minimal Django project keeping notes in its DATABASE_URL
// (through dj-database-url): /add/X, /del/X, and any other path lists them,
// comma separated. Its release command, manage.py migrate, creates the
// table from the migration committed with the app.
func notesApp(version string) map[string]string {
	return map[string]string{
		"requirements.txt": "Django>=4.2,<4.3\ndj-database-url>=2.1,<3\npsycopg[binary]>=3.1,<4\n",
		"Procfile":         "wsgi: project.wsgi:application\nrelease: python manage.py migrate --noinput\n",
		"manage.py": `import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
`,
		"project/__init__.py": "# package\n",
		"project/settings.py": `import os
import dj_database_url
VERSION = "` + version + `"
DEBUG = False
SECRET_KEY = os.environ.get("SECRET_KEY", "hop3-e2e-not-a-secret")
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "project.urls"
INSTALLED_APPS = ["notes"]
MIDDLEWARE = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=0)}
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
`,
		"project/urls.py": `from django.urls import re_path
from notes.views import notes
urlpatterns = [re_path(r"^(?P<path>.*)$", notes)]
`,
		"project/wsgi.py": `import os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
`,
		"notes/__init__.py": "# package\n",
		"notes/models.py": `from django.db import models
class Note(models.Model):
    body = models.TextField()
    class Meta:
        db_table = "notes"
`,
		"notes/migrations/__init__.py": "# package\n",
		"notes/migrations/0001_initial.py": `from django.db import migrations, models
class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="Note",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("body", models.TextField()),
            ],
            options={"db_table": "notes"},
        ),
    ]
`,
		"notes/views.py": `from django.db import DatabaseError
from django.http import HttpResponse
from .models import Note
def notes(request, path):
    path = "/" + path
    try:
        if path.startswith("/add/"):
            Note.objects.create(body=path[5:])
        elif path.startswith("/del/"):
            Note.objects.filter(body=path[5:]).delete()
        body, status = ",".join(Note.objects.order_by("id").values_list("body", flat=True)), 200
    except DatabaseError as e:
        body, status = "database error: %s" % e, 503
    return HttpResponse(body, status=status, content_type="text/plain")
`,
	}
}

// crossApp tries the URL given as its argument as it is, and through the
// running app's own database socket; it prints what happened and exits
// with 10 plus the number of connections that worked.
const crossApp = `import os, sys, psycopg
from urllib.parse import urlsplit
def host(u): return urlsplit(u).netloc.rsplit("@", 1)[1]
theirs = sys.argv[1]
via_mine = theirs.replace(host(theirs), host(os.environ["DATABASE_URL"]))
ok = 0
for u in (theirs, via_mine):
    try:
        psycopg.connect(u, connect_timeout=5).close()
        print("CONNECTED", u.split("@")[1]); ok += 1
    except Exception as e:
        print("REFUSED", " ".join(str(e).split()))
sys.exit(10 + ok)
`

// TestAddonsPostgres: a database add-on for a Django project using
// DATABASE_URL (through dj-database-url and psycopg), migrated by its
// release command, through deploys, a restart of hop3, a backup and restore,
// psql with and without a terminal, another app holding its URL, a kill -9
// of PostgreSQL under load, a destroy without --confirm, and the add-on kept
// when its app is destroyed.
func TestAddonsPostgres(t *testing.T) {
	needAddonServers(t)
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", ownCache(root)...)
	u := newUser(t, "alice")
	d.register(u)
	host := "notes.localhost"

	d.mustCmd(u, "create", "notes")
	r := d.mustCmd(u, "addons:create", "notes", "postgres")
	if !strings.Contains(r.stderr, "DATABASE_URL is set") {
		t.Fatalf("addons:create: %s", r)
	}
	dbURL := strings.TrimSpace(d.mustCmd(u, "config:get", "notes", "DATABASE_URL").stdout)
	if !strings.HasPrefix(dbURL, "postgresql://notes_db:") {
		t.Fatalf("DATABASE_URL = %q", dbURL)
	}
	if r := d.command(u, "", "addons:create", "notes", "postgres"); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("a second add-on of the same name: %s", r)
	}

	w := newWorkdir(t, notesApp("1"))
	out := w.mustPush(d, u, "notes")
	if !strings.Contains(out, "Applying notes.0001_initial... OK") {
		t.Fatalf("release command output missing:\n%s", out)
	}
	wantBody(t, d, host, "/add/first", "first")
	for i := 2; i <= 3; i++ {
		w.commit(fmt.Sprintf("v%d", i), notesApp(fmt.Sprint(i)))
		w.mustPush(d, u, "notes")
		wantBody(t, d, host, "/", "first")
	}

	// ps and addons show the database; its size and state.
	if ps := d.mustCmd(u, "ps", "notes").stdout; !strings.Contains(ps, "notes-db.1") {
		t.Fatalf("ps does not show the database:\n%s", ps)
	}
	type addonRow struct {
		Name, Kind, Var, URL, State string
		Size                        int64 `json:"size_bytes"`
	}
	rows := decode[[]addonRow](t, d.mustCmd(u, "addons", "notes", "--json"))
	if len(rows) != 1 || rows[0].Name != "notes-db" || rows[0].State != "running" || rows[0].Var != "DATABASE_URL" || rows[0].Size == 0 || strings.Contains(rows[0].URL, dbURL[strings.Index(dbURL, ":")+3:strings.Index(dbURL, "@")]) {
		t.Fatalf("addons --json = %+v", rows)
	}

	// A restart of hop3 brings the database back before the app.
	d.stop()
	d = startDaemon(t, root, "127.0.0.1:0", ownCache(root)...)
	wantBody(t, d, host, "/", "first")

	// Backup, delete, restore.
	if r := d.command(u, "", "addons:restore", "notes", "notes-db", "nonsense"); r.code == 0 {
		t.Fatalf("restore without --confirm: %s", r)
	}
	backup := strings.TrimSpace(d.mustCmd(u, "addons:backup", "notes", "notes-db").stdout)
	if !strings.HasPrefix(backup, "notes-db-") || !strings.HasSuffix(backup, ".dump") {
		t.Fatalf("backup name %q", backup)
	}
	if info, err := os.Stat(filepath.Join(root, "backups", "notes", backup)); err != nil || info.Size() == 0 {
		t.Fatalf("backup file: %v", err)
	}
	if l := d.mustCmd(u, "addons:backups", "notes", "notes-db").stdout; !strings.Contains(l, backup) {
		t.Fatalf("addons:backups does not list %s:\n%s", backup, l)
	}
	wantBody(t, d, host, "/del/first", "")
	wantBody(t, d, host, "/add/second", "second")
	if r := d.command(u, "", "addons:restore", "notes", "notes-db", backup); r.code == 0 || !strings.Contains(r.stderr, "nothing restored") {
		t.Fatalf("restore without --confirm: %s", r)
	}
	wantBody(t, d, host, "/", "second")
	d.mustCmd(u, "addons:restore", "notes", "notes-db", backup, "--confirm", "notes")
	wantBody(t, d, host, "/", "first")

	// psql as the app, on stdin.
	r = d.command(u, "SELECT 'psql:' || count(*) FROM notes;\n", "addons:psql", "notes", "notes-db")
	if r.code != 0 || !strings.Contains(r.stdout, "psql:1") {
		t.Fatalf("addons:psql: %s", r)
	}

	// psql on a terminal (ssh -t), as an operator would use it.
	args := append(strings.Fields(d.sshCommand(u))[1:], "-tt", "hop3@127.0.0.1", "addons:psql", "notes", "notes-db")
	ttyCtx, cancelTTY := context.WithTimeout(context.Background(), time.Minute)
	defer cancelTTY()
	tty := exec.CommandContext(ttyCtx, "ssh", args...)
	tty.Stdin = strings.NewReader("\\pset pager off\nSELECT 'on a ' || 'terminal' AS x, current_user;\n\\q\n")
	if out, err := tty.CombinedOutput(); err != nil || !strings.Contains(string(out), "on a terminal | notes_db") {
		t.Fatalf("ssh -tt addons:psql: %v\n%s", err, out)
	}

	// Another app, holding notes' URL, cannot use it: not on notes' socket
	// (its directory is notes' user's), nor through its own (hop3 lets
	// through only its own roles).
	other := newWorkdir(t, map[string]string{
		"requirements.txt": "psycopg[binary]>=3.1,<4\n",
		"Procfile":         "wsgi: app:app\n",
		"app.py":           "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'other']\n",
	})
	d.mustCmd(u, "create", "other")
	d.mustCmd(u, "addons:create", "other", "postgres")
	other.mustPush(d, u, "other")
	r = d.command(u, "", "run", "other", "--", "python", "-c", crossApp, dbURL)
	if r.code != 10 || strings.Count(r.stdout, "REFUSED") != 2 {
		t.Fatalf("other app with notes' URL: %s", r)
	}
	if !strings.Contains(r.stdout, "ermission denied") || !strings.Contains(r.stdout, "not an add-on of this app") {
		t.Fatalf("refused for other reasons than expected: %s", r)
	}
	// The same attempt with its own URL connects: the refusals above are
	// about the URL, not the script.
	ownURL := strings.TrimSpace(d.mustCmd(u, "config:get", "other", "DATABASE_URL").stdout)
	if r := d.command(u, "", "run", "other", "--", "python", "-c", crossApp, ownURL); r.code != 12 {
		t.Fatalf("other app with its own URL: %s", r)
	}

	// kill -9 of PostgreSQL under load: hop3 starts it again and the app
	// answers without a deploy.
	pgPID := 0
	for _, p := range decode[[]psRow](t, d.mustCmd(u, "ps", "notes", "--json")) {
		if p.Kind == "notes-db" {
			pgPID = p.PID
		}
	}
	if pgPID <= 0 {
		t.Fatal("no PostgreSQL pid in ps")
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var okBefore, okAfter atomic.Int64
	killed := make(chan struct{})
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				// Counted by when the request was sent.
				after := false
				select {
				case <-killed:
					after = true
				default:
				}
				code, body, err := tryGet(d.httpAddr, host, "/")
				if err == nil && code == 200 && body == "first" {
					if after {
						okAfter.Add(1)
					} else {
						okBefore.Add(1)
					}
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(time.Second)
	if err := syscall.Kill(pgPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	close(killed)
	eventually(t, 60*time.Second, func() error {
		if okAfter.Load() < 5 {
			return errors.New("the app does not answer from its database since the kill")
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	if okBefore.Load() == 0 {
		t.Fatal("no answer under load before the kill")
	}
	for _, p := range decode[[]psRow](t, d.mustCmd(u, "ps", "notes", "--json")) {
		if p.Kind == "notes-db" && (p.PID == pgPID || p.State != "running") {
			t.Fatalf("PostgreSQL after kill -9: %+v", p)
		}
	}

	// addons:destroy without --confirm changes nothing.
	r = d.command(u, "", "addons:destroy", "notes", "notes-db")
	if r.code != 1 || !strings.Contains(r.stderr, "nothing destroyed") {
		t.Fatalf("addons:destroy without --confirm: %s", r)
	}
	if got := strings.TrimSpace(d.mustCmd(u, "config:get", "notes", "DATABASE_URL").stdout); got != dbURL {
		t.Fatalf("DATABASE_URL changed to %q", got)
	}
	wantBody(t, d, host, "/", "first")

	// With --confirm: the variable goes, the database too; the backup stays.
	d.mustCmd(u, "addons:destroy", "other", "other-db", "--confirm", "other-db")
	if r := d.command(u, "", "config:get", "other", "DATABASE_URL"); r.code == 0 {
		t.Fatalf("DATABASE_URL still set after addons:destroy: %s", r)
	}
	if rows := decode[[]addonRow](t, d.mustCmd(u, "addons", "other", "--json")); len(rows) != 0 {
		t.Fatalf("add-ons after destroy: %+v", rows)
	}

	// destroy of the app keeps its add-on unless --purge, and says so.
	r = d.mustCmd(u, "destroy", "notes", "--confirm", "notes")
	if !strings.Contains(r.stderr, "add-ons are kept: notes-db") {
		t.Fatalf("destroy: %s", r)
	}
	// A restart of hop3 leaves the kept add-on alone, without complaint;
	// an app made again under the name finds it, with its data.
	d.stop()
	d = startDaemon(t, root, "127.0.0.1:0", ownCache(root)...)
	if strings.Contains(d.log(), "did not come back") {
		t.Fatalf("a kept add-on is reported as failing:\n%s", d.log())
	}
	d.mustCmd(u, "create", "notes")
	if rows := decode[[]addonRow](t, d.mustCmd(u, "addons", "notes", "--json")); len(rows) != 1 || rows[0].Name != "notes-db" || rows[0].Size == 0 {
		t.Fatalf("the kept add-on: %+v", rows)
	}
	d.mustCmd(u, "addons:backup", "notes", "notes-db")
}

// counterApp counts its hits in Redis (REDIS_URL, through redis-py).
func counterApp(version string) map[string]string {
	return map[string]string{
		"requirements.txt": "redis>=4,<6\n",
		"Procfile":         "wsgi: app:app\n",
		"app.py": `import os, redis
VERSION = "` + version + `"
r = redis.Redis.from_url(os.environ["REDIS_URL"])
def app(environ, start_response):
    n = r.incr("hits")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(n).encode()]
`,
	}
}

// TestAddonsRedis: a Redis add-on keeps a counter across a deploy, is
// reachable by its app's user only, and is backed up and restored.
func TestAddonsRedis(t *testing.T) {
	needAddonServers(t)
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", ownCache(root)...)
	u := newUser(t, "alice")
	d.register(u)
	host := "counter.localhost"

	d.mustCmd(u, "create", "counter")
	d.mustCmd(u, "addons:create", "counter", "redis", "--maxmemory", "32mb")
	w := newWorkdir(t, counterApp("1"))
	w.mustPush(d, u, "counter")
	for i := 1; i <= 3; i++ {
		wantBody(t, d, host, "/", fmt.Sprint(i))
	}
	w.commit("v2", counterApp("2"))
	w.mustPush(d, u, "counter")
	wantBody(t, d, host, "/", "4")

	// ps and doctor show it.
	if ps := d.mustCmd(u, "ps", "counter").stdout; !strings.Contains(ps, "counter-redis.1") {
		t.Fatalf("ps does not show Redis:\n%s", ps)
	}
	out, _ := opsRun(t, nil, "doctor", "--root", root, "--http-addr", d.httpAddr, "--ssh-addr", "127.0.0.1:"+d.sshPort,
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off")
	if lines := opsDoctorLines(t, out); lines["addon:counter-redis"][0] != "ok" || lines["addon-servers"][0] != "ok" {
		t.Fatalf("doctor:\n%s", out)
	}

	// The socket's directory is the app's user's alone, so another user
	// cannot open the socket.
	sockDir := filepath.Join(root, "addons", "redis", "counter", "counter-redis")
	info, err := os.Stat(sockDir)
	if err != nil {
		t.Fatal(err)
	}
	st := info.Sys().(*syscall.Stat_t)
	if info.Mode().Perm() != 0o700 || st.Uid == 0 {
		t.Fatalf("%s: mode %v uid %d", sockDir, info.Mode().Perm(), st.Uid)
	}
	cli := exec.Command("redis-cli", "-s", filepath.Join(sockDir, "redis.sock"), "ping")
	cli.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid + 1, Gid: st.Gid + 1}}
	if out, err := cli.CombinedOutput(); err == nil || strings.Contains(string(out), "PONG") {
		t.Fatalf("another user reached the Redis socket: %s", out)
	}

	// The server runs with the add-on's maxmemory and password.
	redisURL := strings.TrimSpace(d.mustCmd(u, "config:get", "counter", "REDIS_URL").stdout)
	pass := strings.TrimPrefix(redisURL[:strings.Index(redisURL, "@")], "unix://:")
	cfg := exec.Command("redis-cli", "-s", filepath.Join(sockDir, "redis.sock"), "config", "get", "maxmemory")
	cfg.Env = append(os.Environ(), "REDISCLI_AUTH="+pass)
	if out, err := cfg.CombinedOutput(); err != nil || !strings.Contains(string(out), "33554432") {
		t.Fatalf("maxmemory: %v %s", err, out)
	}

	// Backup at 4, count on, restore: back to 4.
	backup := strings.TrimSpace(d.mustCmd(u, "addons:backup", "counter", "counter-redis").stdout)
	if !strings.HasSuffix(backup, ".rdb") {
		t.Fatalf("backup %q", backup)
	}
	wantBody(t, d, host, "/", "5")
	d.mustCmd(u, "addons:restore", "counter", "counter-redis", backup, "--confirm", "counter")
	eventually(t, 30*time.Second, func() error {
		code, body, err := tryGet(d.httpAddr, host, "/")
		if err != nil || code != 200 {
			return fmt.Errorf("GET: %d %v", code, err)
		}
		if body != "5" {
			return fmt.Errorf("count after restore %q, want 5", body)
		}
		return nil
	})

	// destroy --purge takes the add-on with the app.
	r := d.mustCmd(u, "destroy", "counter", "--confirm", "counter", "--purge")
	if !strings.Contains(r.stderr, "add-ons were destroyed too: counter-redis") {
		t.Fatalf("destroy --purge: %s", r)
	}
	if _, err := os.Stat(sockDir); !os.IsNotExist(err) {
		t.Fatalf("Redis data left after destroy --purge: %v", err)
	}
}

// TestAddonsBackupSchedule: with a schedule, add-ons are backed up by
// hop3's own cron (every minute here, on a clock running 30 times faster),
// and the backups are listed like those taken by hand.
func TestAddonsBackupSchedule(t *testing.T) {
	needAddonServers(t)
	root := shortTemp(t)
	d := startDaemonEnv(t, root, "127.0.0.1:0", []string{"HOP3_TEST_CLOCK_SCALE=30"}, "--addon-backups", "* * * * *")
	u := newUser(t, "alice")
	d.register(u)
	d.mustCmd(u, "create", "cache")
	d.mustCmd(u, "addons:create", "cache", "redis")
	eventually(t, 30*time.Second, func() error {
		l := d.mustCmd(u, "addons:backups", "cache", "cache-redis").stdout
		if n := strings.Count(l, ".rdb"); n < 2 {
			return fmt.Errorf("%d scheduled backups:\n%s", n, l)
		}
		return nil
	})
}
