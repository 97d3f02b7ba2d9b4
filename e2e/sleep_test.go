package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitAsleep waits until ps says app sleeps and no Granian of it runs.
func waitAsleep(t *testing.T, d *daemon, u user, app string) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, 90*time.Second, func() error {
		r := d.command(u, "", "ps", app)
		if !strings.Contains(r.stderr+r.stdout, app+" is sleeping") {
			return fmt.Errorf("ps does not say sleeping:\n%s", r)
		}
		if pids := granianPIDs(t, d.root, app); len(pids) > 0 {
			return fmt.Errorf("sleeping, yet Granian runs: %v", pids)
		}
		return nil
	})
	return time.Since(start)
}

// TestSleepWakesOnFirstRequest pushes a WSGI app with SLEEP_AFTER=2s and
// no request: it falls asleep (ps says so, apps too, no Granian runs, a
// waker socket owned like Granian's stands in), a push while it sleeps
// deploys it and wakes it, it falls asleep again and stays asleep through
// a restart of hop3, and the first requests through Caddy (five at once)
// then answer 200 from the new release within 2 s, static files too, after
// which ps shows it running. A bad SLEEP_AFTER is refused at config:set.
func TestSleepWakesOnFirstRequest(t *testing.T) {
	t.Parallel()
	d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_TEST_SLEEP_POLL=250ms"})
	alice := newUser(t, "alice")
	d.register(alice)
	files := slowApp("v1")
	files[".env"] = "SLEEP_AFTER=2s\nSTATIC_PATHS=/static:static\n"
	files["static/hello.txt"] = "hello static"
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "sleepy")

	wantFail(t, d.command(alice, "", "config:set", "sleepy", "SLEEP_AFTER=soon"), 1, `SLEEP_AFTER "soon": use a duration`)

	took := waitAsleep(t, d, alice, "sleepy")
	t.Logf("asleep %s after the push (SLEEP_AFTER=2s)", took.Round(100*time.Millisecond))
	if apps := d.mustCmd(alice, "apps").stdout; !strings.Contains(apps, "sleeping") {
		t.Errorf("apps does not show the app sleeping:\n%s", apps)
	}
	socks, _ := filepath.Glob(filepath.Join(d.root, "run", "sleepy", "waker-web.*.sock"))
	if len(socks) != 1 {
		t.Fatalf("waker sockets: %v, want one", socks)
	}
	if static, _ := filepath.Glob(filepath.Join(d.root, "run", "sleepy", "waker-static.*.sock")); len(static) != 1 {
		t.Errorf("static waker sockets: %v, want one", static)
	}
	if link, err := os.Readlink(filepath.Join(d.root, "run", "sleepy", "web.sock")); err != nil || link != filepath.Base(socks[0]) {
		t.Errorf("web.sock -> %q (%v), want the waker's %s", link, err, filepath.Base(socks[0]))
	}
	// Granian's socket is the app's (the run directory's owner), in Caddy's
	// group (the directory's, set-group-id), 0660.
	fi, err := os.Stat(socks[0])
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.Stat(filepath.Dir(socks[0]))
	if err != nil {
		t.Fatal(err)
	}
	st, dst := fi.Sys().(*syscall.Stat_t), dir.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Uid != dst.Uid || st.Gid != dst.Gid {
		t.Errorf("waker socket %v %d:%d, want 0660 %d:%d like Granian's", fi.Mode().Perm(), st.Uid, st.Gid, dst.Uid, dst.Gid)
	}

	// A push to the sleeping app deploys it, and wakes it.
	files = slowApp("v2")
	files[".env"] = "SLEEP_AFTER=2s\nSTATIC_PATHS=/static:static\n"
	files["static/hello.txt"] = "hello static"
	w.commit("v2", files)
	out := w.mustPush(d, alice, "sleepy")
	wantPushOutput(t, out, "sleepy v2 is live")
	if got := running(t, d, alice, "sleepy"); !slices.Contains(got, "wsgi.1") {
		t.Errorf("after a push to the sleeping app, running: %v, want wsgi.1", got)
	}
	eventually(t, 5*time.Second, func() error {
		if left, _ := filepath.Glob(filepath.Join(d.root, "run", "sleepy", "waker-*.sock")); len(left) > 0 {
			return fmt.Errorf("waker sockets left after the deploy: %v", left)
		}
		return nil
	})

	// Nothing asked: it falls asleep again, and stays asleep through a
	// restart of hop3.
	waitAsleep(t, d, alice, "sleepy")
	d.stop()
	d = startDaemonEnv(t, d.root, "127.0.0.1:0", []string{"HOP3_TEST_SLEEP_POLL=250ms"})
	waitAsleep(t, d, alice, "sleepy")

	// The first requests, five at once, are held and answered by the
	// woken app.
	type answer struct {
		code int
		body string
		err  error
		took time.Duration
	}
	// Two of them are for static files: the app's static file server
	// sleeps and wakes with it.
	paths := []string{"/", "/static/hello.txt", "/", "/static/hello.txt", "/"}
	want := map[string]string{"/": "v2", "/static/hello.txt": "hello static"}
	answers := make([]answer, len(paths))
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() {
			start := time.Now()
			code, body, err := tryGet(d.httpAddr, "sleepy.localhost", p)
			answers[i] = answer{code, body, err, time.Since(start)}
		})
	}
	wg.Wait()
	for i, a := range answers {
		t.Logf("request %d (%s) to the sleeping app answered in %s", i, paths[i], a.took.Round(time.Millisecond))
		if a.err != nil || a.code != 200 || a.body != want[paths[i]] {
			t.Errorf("request %d (%s) = %d %q %v, want 200 %q", i, paths[i], a.code, a.body, a.err, want[paths[i]])
		}
		if a.took > 2*time.Second {
			t.Errorf("request %d took %s, want within 2 s", i, a.took)
		}
	}
	if got := running(t, d, alice, "sleepy"); !slices.Contains(got, "wsgi.1") {
		t.Errorf("after the first request, running: %v, want wsgi.1", got)
	}
	if ps := d.mustCmd(alice, "ps", "sleepy"); strings.Contains(ps.stderr+ps.stdout, "sleeping") {
		t.Errorf("ps still says sleeping:\n%s", ps)
	}
	wantBody(t, d, "sleepy.localhost", "/", "v2")
}

// crashApp is a WSGI app that refuses to start while DATA_DIR/crash exists.
func crashApp() map[string]string {
	return map[string]string{
		"app.py": `import os
if os.path.exists(os.path.join(os.environ["DATA_DIR"], "crash")):
    raise SystemExit("crash requested")
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"up"]
`,
		"requirements.txt": "# no dependencies\n",
		"Procfile":         "wsgi: app:app\n",
		".env":             "SLEEP_AFTER=2s\n",
	}
}

// TestSleepWakeFailure: a sleeping app that crashes when its first request
// wakes it answers that request 503, with no hang, and stays asleep; once
// it can start again, a request after the retry pause wakes it.
func TestSleepWakeFailure(t *testing.T) {
	t.Parallel()
	d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_TEST_SLEEP_POLL=250ms"})
	alice := newUser(t, "alice")
	d.register(alice)
	w := newWorkdir(t, crashApp())
	w.mustPush(d, alice, "crashy")
	waitAsleep(t, d, alice, "crashy")
	crash := filepath.Join(d.root, "data", "crashy", "crash")
	if err := os.WriteFile(crash, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	code, body, err := tryGet(d.httpAddr, "crashy.localhost", "/")
	took := time.Since(start)
	t.Logf("request to a sleeping app that crashes at start: %d %q %v in %s", code, body, err, took.Round(time.Millisecond))
	if err != nil || code != 503 || !strings.Contains(body, "could not be started") {
		t.Fatalf("request = %d %q %v, want 503", code, body, err)
	}
	waitAsleep(t, d, alice, "crashy")
	if err := os.Remove(crash); err != nil {
		t.Fatal(err)
	}
	time.Sleep(11 * time.Second) // the waker's pause after a failed start
	start = time.Now()
	wantBody(t, d, "crashy.localhost", "/", "up")
	t.Logf("woken after the failure in %s", time.Since(start).Round(time.Millisecond))
}
