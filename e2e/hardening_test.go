package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"hop3/internal/store"
)

// TestHardeningSSH checks the SSH port and the files that guard the server
// with the real OpenSSH client: forwarding and sftp refused, the sockets
// and secrets owner-only, and 50 concurrent sessions served.
func TestHardeningSSH(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	base := append(strings.Fields(d.sshCommand(alice))[1:], "-o", "ExitOnForwardFailure=yes")

	t.Run("file modes", func(t *testing.T) {
		// Run as root (isolation on), Caddy has its own user, whose group
		// may enter its directory.
		caddyDir := os.FileMode(0o700)
		if os.Geteuid() == 0 {
			caddyDir = 0o750
		}
		for _, f := range []struct {
			path string
			want os.FileMode
		}{
			{"control.sock", 0o600},
			{"caddy", caddyDir},
			{"ssh/host_ed25519", 0o600},
			{"ssh", 0o700},
			{"hop3.db", 0o600},
			{"hop3.db-wal", 0o600},
			{"hop3.db-shm", 0o600},
		} {
			path := filepath.Join(root, f.path)
			if _, err := os.Lstat(path); os.IsNotExist(err) && strings.HasPrefix(f.path, "hop3.db-") {
				continue // SQLite creates these on demand
			}
			if got := fileMode(t, path); got != f.want {
				t.Errorf("%s has mode %v, want %v", f.path, got, f.want)
			}
		}
		if sock := caddyAdminSocket(root); fileMode(t, sock) != 0o600 {
			t.Errorf("%s has mode %v, want 0600", sock, fileMode(t, sock))
		}
	})

	t.Run("remote forwarding refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		args := append(append([]string{}, base...), "-N", "-R", "127.0.0.1:0:127.0.0.1:9", "hop3@127.0.0.1")
		out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
		if err == nil || ctx.Err() != nil {
			t.Fatalf("ssh -R: err=%v ctx=%v, want the forward refused\n%s", err, ctx.Err(), out)
		}
		if !strings.Contains(string(out), "remote port forwarding failed") {
			t.Fatalf("ssh -R did not report the refusal:\n%s", out)
		}
	})

	t.Run("local forwarding refused", func(t *testing.T) {
		target, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer target.Close()
		reached := make(chan struct{}, 1)
		go func() {
			if c, err := target.Accept(); err == nil {
				reached <- struct{}{}
				c.Close()
			}
		}()
		sock := filepath.Join(shortTemp(t), "fwd.sock")
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		args := append(append([]string{}, base...), "-N", "-L", sock+":"+target.Addr().String(), "hop3@127.0.0.1")
		cmd := exec.CommandContext(ctx, "ssh", args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		var conn net.Conn
		eventually(t, 30*time.Second, func() error {
			conn, err = net.Dial("unix", sock)
			return err
		})
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, _ := conn.Read(make([]byte, 1))
		conn.Close()
		if n != 0 {
			t.Fatal("data came through a refused forward")
		}
		cancel()
		cmd.Wait()
		select {
		case <-reached:
			t.Fatal("the forward reached its target")
		default:
		}
	})

	t.Run("sftp refused", func(t *testing.T) {
		args := append(append([]string{}, base...), "-s", "hop3@127.0.0.1", "sftp")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ssh", args...).CombinedOutput()
		if err == nil {
			t.Fatalf("ssh -s sftp succeeded:\n%s", out)
		}
		if !strings.Contains(string(out), "subsystem request failed") {
			t.Fatalf("ssh -s sftp: %v\n%s", err, out)
		}
	})

	t.Run("50 concurrent sessions", func(t *testing.T) {
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan string, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				cmd := "apps"
				if i%2 == 1 {
					cmd = "version"
				}
				if r := d.command(alice, "", cmd); r.code != 0 {
					errs <- fmt.Sprintf("session %d (%s): %s", i, cmd, r)
				}
			}(i)
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
	})
}

// TestHardeningBadInput pushes and types bad values at a running app: each
// is refused with one line, and the app keeps serving the same release from
// the same ref.
func TestHardeningBadInput(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "good", "good.localhost"
	w := newWorkdir(t, wsgiApp("good v1"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "good v1")
	liveRev := remoteRef(t, root, app, "refs/heads/main")
	st := openStore(t, root)

	// unchanged checks that nothing about the app moved.
	unchanged := func(t *testing.T) {
		t.Helper()
		wantBody(t, d, host, "/", "good v1")
		if got := remoteRef(t, root, app, "refs/heads/main"); got != liveRev {
			t.Fatalf("main moved from %s to %s", liveRev, got)
		}
		a, err := st.App(context.Background(), app)
		if err != nil {
			t.Fatal(err)
		}
		if a.Release != 1 {
			t.Fatalf("live release is v%d, want v1", a.Release)
		}
		if got := appNames(t, root); len(got) != 1 || got[0] != app {
			t.Fatalf("apps are %q, want only %s", got, app)
		}
	}

	t.Run("app names", func(t *testing.T) {
		reposBefore := dirNames(t, filepath.Join(root, "repos"))
		for _, name := range []string{"../x", "A_B", "a/b", strings.Repeat("a", 41), "-x", "x.git/../../y", "%2e%2e"} {
			out, err := w.push(d, alice, name)
			if err == nil {
				t.Fatalf("push to %q succeeded:\n%s", name, out)
			}
			fails := failureLines(out)
			if len(fails) != 1 || !strings.Contains(fails[0], "app name") {
				t.Errorf("push to %q: want one line giving the reason, got %q:\n%s", name, fails, out)
			}
		}
		if got := dirNames(t, filepath.Join(root, "repos")); strings.Join(got, ",") != strings.Join(reposBefore, ",") {
			t.Fatalf("repositories changed from %q to %q", reposBefore, got)
		}
		unchanged(t)
	})

	t.Run("refs that do not deploy", func(t *testing.T) {
		w.commit("not for main", wsgiApp("feature"))
		w.git("tag", "v-feature")
		out, err := w.pushRef(d, alice, app, "v-feature")
		if err != nil {
			t.Fatalf("push of a tag: %v\n%s", err, out)
		}
		if strings.Contains(out, "Deploying") {
			t.Fatalf("a tag deployed:\n%s", out)
		}
		out, err = w.pushRef(d, alice, app, "HEAD:refs/heads/feature")
		if err != nil {
			t.Fatalf("push of a branch: %v\n%s", err, out)
		}
		if strings.Contains(out, "Deploying") || !strings.Contains(out, "branch feature stored, not deployed") {
			t.Fatalf("push of a non-deploy branch:\n%s", out)
		}
		if n := len(releasesOf(t, root, app)); n != 1 {
			t.Fatalf("%d releases after pushes of a tag and a branch, want 1", n)
		}
		w.dropLast()
		unchanged(t)

		// git itself refuses to delete the branch HEAD names.
		out, err = w.pushRef(d, alice, app, ":main")
		if err == nil || !strings.Contains(out, "deletion of the current branch prohibited") {
			t.Fatalf("push deleting main: %v\n%s", err, out)
		}
		unchanged(t)
	})

	// Each of these commits is pushed to main and must fail the push with
	// one line holding want, leaving v1 serving.
	badPushes := []struct {
		name  string
		files map[string]string
		link  [2]string   // a symlink to commit instead of files
		chain [][2]string // symlinks to commit together
		want  string
	}{
		{name: "Procfile without a colon", files: map[string]string{"Procfile": "wsgi app:app\n"}, want: "Procfile line 1"},
		{name: "Procfile with an unknown kind and two web entries", files: map[string]string{"Procfile": "wsgi: app:app\nweb: python3 -m http.server\n"}, want: "Procfile"},
		{name: "cron minute out of range", files: map[string]string{"Procfile": "wsgi: app:app\ncron: 61 * * * * true\n"}, want: "cron"},
		{name: "cron with too few fields", files: map[string]string{"Procfile": "wsgi: app:app\ncron: * * * true\n"}, want: "cron"},
		{name: ".env line without a value", files: map[string]string{".env": "A=1\nDEBUG"}, want: ".env: an entry has no name"},
		{name: ".env bad variable name", files: map[string]string{".env": "A=1\nMY-VAR=2\n"}, want: ".env: line 2"},
		{name: ".env unterminated quote", files: map[string]string{".env": "A=\"open\nB=2\n"}, want: ".env: unterminated quoted value"},
		{name: "STATIC_PATHS leaving the app", files: map[string]string{".env": "STATIC_PATHS=/x:../../\n"}, want: "STATIC_PATHS"},
		{name: "STATIC_PATHS to /etc", files: map[string]string{".env": "STATIC_PATHS=/x:/etc\n"}, want: "STATIC_PATHS"},
		{name: "HOST_NAME not a host name", files: map[string]string{".env": "HOST_NAME=bad_host!\n"}, want: "invalid host name"},
		{name: "MAX_BODY_SIZE not a size", files: map[string]string{".env": "MAX_BODY_SIZE=lots\n"}, want: "MAX_BODY_SIZE"},
		{name: "GRANIAN_BACKPRESSURE that starves connections", files: map[string]string{".env": "GRANIAN_BACKPRESSURE=4\n"}, want: "GRANIAN_BACKPRESSURE=4 would starve connections"},
		{name: "symlink to /etc/passwd", link: [2]string{"leak", "/etc/passwd"}, want: "symlink leak points outside the app"},
		{name: "symlink up the tree", link: [2]string{"up", "../../.."}, want: "symlink up points outside the app"},
		{name: "symlink inside a directory leaving it", link: [2]string{"sub/esc", "../../x"}, want: "points outside the app"},
		// Each link looks confined on its own; together they reach hop3.db.
		{name: "chain of symlinks to hop3.db", chain: [][2]string{
			{"l1", "."}, {"l2", "l1/.."}, {"l3", "l2/.."}, {"l4", "l3/.."}, {"l5", "l4/.."}, {"public/db", "../l5/hop3.db"},
		}, want: "points outside the app"},
	}
	for _, tc := range badPushes {
		t.Run(tc.name, func(t *testing.T) {
			if tc.chain != nil {
				os.MkdirAll(filepath.Join(w.dir, "public"), 0o755)
				for _, l := range tc.chain {
					if err := os.Symlink(l[1], filepath.Join(w.dir, l[0])); err != nil {
						t.Fatal(err)
					}
				}
				w.git("add", "-A")
				w.git("commit", "-q", "-m", tc.name)
			} else if tc.link[0] != "" {
				os.MkdirAll(filepath.Join(w.dir, filepath.Dir(tc.link[0])), 0o755)
				w.symlinkCommit(tc.link[0], tc.link[1])
			} else {
				w.commit(tc.name, tc.files)
			}
			defer w.dropLast()
			out, err := w.push(d, alice, app)
			if err == nil {
				t.Fatalf("push succeeded:\n%s", out)
			}
			oneLineFailure(t, out, tc.want)
			unchanged(t)
		})
	}

	// wantRefused runs a command that must fail with one " !     " line
	// holding want.
	wantRefused := func(t *testing.T, want string, args ...string) bool {
		t.Helper()
		r := d.command(alice, "", args...)
		if r.code == 0 {
			t.Errorf("%q succeeded: %s", args, r)
			return false
		}
		lines := strings.Split(strings.TrimRight(r.stderr, "\r\n"), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], " !     ") || !strings.Contains(lines[0], want) {
			t.Errorf("%q: want one failure line holding %q, got:\n%s", args, want, r.stderr)
		}
		return true
	}
	t.Run("commands", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"ps:scale", app, "wsgi=-1"}, "between 0 and 32"},
			{[]string{"ps:scale", app, "wsgi=abc"}, "not a whole number"},
			{[]string{"ps:scale", app, "wsgi=1000"}, "between 0 and 32"},
			{[]string{"ps:scale", app, "wsgi=1", "wsgi=99"}, "between 0 and 32"},
			{[]string{"ps:scale", app, "nosuch=1"}, `no process "nosuch"`},
			{[]string{"ps:scale", app, "wsgi"}, "not KIND=N"},
			{[]string{"config:set", app, "1BAD=x"}, "invalid config key"},
			{[]string{"config:set", app, "A;B=x"}, "invalid config key"},
			{[]string{"config:set", app, "APP=other"}, "APP is set by hop3"},
			{[]string{"config:set", app, "NOEQUALS"}, "not KEY=VALUE"},
			{[]string{"domains:add", app, "../etc"}, "host name alone"},
			{[]string{"domains:add", app, "a b"}, "a b"},
			{[]string{"config:set", "../x", "A=1"}, "invalid app name"},
			{[]string{"ps:scale", "A_B", "wsgi=1"}, "invalid app name"},
			{[]string{"logs", "../../etc", "-n", "1"}, "invalid app name"},
		} {
			wantRefused(t, tc.want, tc.args...)
		}
		// A NUL byte in a value: no process could start with it.
		if r := d.rawCommand(alice, "config:set --no-restart "+app+" 'X=a\x00b'"); r.code == 0 || !strings.Contains(r.stderr, "NUL") {
			t.Errorf("config:set of a value with a NUL byte: %s", r)
		}
		cfg, err := st.Config(context.Background(), app)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg) != 0 {
			t.Errorf("refused config:set stored %q", cfg)
		}
		scale, err := st.Scale(context.Background(), app)
		if err != nil {
			t.Fatal(err)
		}
		if len(scale) != 0 {
			t.Errorf("refused ps:scale stored %v", scale)
		}
		unchanged(t)
	})

	t.Run("config:set of route values", func(t *testing.T) {
		for _, tc := range []struct{ kv, want string }{
			{"STATIC_PATHS=/x:../../", "STATIC_PATHS"},
			{"STATIC_PATHS=/x:/etc", "STATIC_PATHS"},
			{"HOST_NAME=a b;rm -rf /", "host name"},
			{"MAX_BODY_SIZE=lots", "MAX_BODY_SIZE"},
			{"GRANIAN_BACKPRESSURE=4", "would starve connections"},
		} {
			wantRefused(t, tc.want, "config:set", "--no-restart", app, tc.kv)
		}
		d.command(alice, "", "config:unset", "--no-restart", app, "STATIC_PATHS", "HOST_NAME", "MAX_BODY_SIZE", "GRANIAN_BACKPRESSURE")
		unchanged(t)
	})

	// Every refused push recorded a failed release; none succeeded.
	for _, r := range releasesOf(t, root, app) {
		if r.Number != 1 && r.Status != store.Failed {
			t.Errorf("release v%d is %s, want failed", r.Number, r.Status)
		}
	}
}

// TestHardeningPushSizeLimit pushes more than --max-push-size: the push is
// cut off with one line, and neither the ref nor any object of it is kept.
func TestHardeningPushSizeLimit(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--max-push-size", "1MiB")
	alice := newUser(t, "alice")
	d.register(alice)
	const app = "sized"
	w := newWorkdir(t, staticSite("<h1>small</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, app+".localhost", "/", "<h1>small</h1>\n")
	rev := remoteRef(t, root, app, "refs/heads/main")
	objectsBefore, leftovers := repoObjects(t, root, app)
	if len(leftovers) != 0 {
		t.Fatalf("leftovers before the test: %q", leftovers)
	}

	big := make([]byte, 3<<20) // random: git can not compress it below the limit
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "public", "big.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	w.commit("3 MiB", map[string]string{"public/index.html": "<h1>big</h1>\n"})
	out, err := w.push(d, alice, app)
	if err == nil {
		t.Fatalf("a 3 MiB push went through a 1 MiB limit:\n%s", out)
	}
	t.Logf("push over the limit:\n%s", out)
	fails := failureLines(out)
	if len(fails) != 1 || !strings.Contains(fails[0], "more than 1 MiB") || !strings.Contains(fails[0], "--max-push-size") {
		t.Fatalf("want one line naming the limit, got %q:\n%s", fails, out)
	}
	if got := remoteRef(t, root, app, "refs/heads/main"); got != rev {
		t.Fatalf("main moved to %s", got)
	}
	// git removes its quarantine when the pack ends early.
	eventually(t, 20*time.Second, func() error {
		objects, leftovers := repoObjects(t, root, app)
		if len(leftovers) != 0 {
			return fmt.Errorf("the cut-off push left %q", leftovers)
		}
		if objects != objectsBefore {
			return fmt.Errorf("objects changed:\n%s\nwas:\n%s", objects, objectsBefore)
		}
		return nil
	})
	if n := len(releasesOf(t, root, app)); n != 1 {
		t.Fatalf("%d releases, want 1", n)
	}
	wantBody(t, d, app+".localhost", "/", "<h1>small</h1>\n")

	// Below the limit, pushes still work.
	w.dropLast()
	w.commit("small change", staticSite("<h1>small v2</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, app+".localhost", "/", "<h1>small v2</h1>\n")
}

// TestHardeningKill9 kills, with SIGKILL, each process an app depends on:
// Granian (it comes back by itself), Caddy (routes answer again), and hop3
// in the middle of a deploy (after a restart the last good release serves,
// the interrupted one is recorded failed, no process or socket of the dead
// daemon remains, and the database is sound).
func TestHardeningKill9(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "crash", "crash.localhost"
	w := newWorkdir(t, wsgiApp("crash v1"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "crash v1")

	serves := func(d *daemon, want string) func() error {
		return func() error {
			code, body, err := tryGet(d.httpAddr, host, "/")
			if err != nil || code != 200 || body != want {
				return fmt.Errorf("GET = %d %q %v", code, body, err)
			}
			return nil
		}
	}

	t.Run("granian", func(t *testing.T) {
		before := granianPIDs(t, root, app)
		if len(before) == 0 {
			t.Fatal("no Granian process found")
		}
		// The main process: the one whose parent is not a Granian.
		main := 0
		for _, p := range before {
			isChild := false
			for _, q := range before {
				if parentOf(p) == q {
					isChild = true
				}
			}
			if !isChild {
				main = p
			}
		}
		killPID(t, main)
		eventually(t, 60*time.Second, func() error {
			// Its workers go with it: no orphan keeps the old socket.
			for _, p := range before {
				if syscallKill0(p) == nil && !isZombie(p) {
					return fmt.Errorf("Granian process %d (of the killed %d) still runs: %s", p, main, cmdline(p))
				}
			}
			if len(granianPIDs(t, root, app)) == 0 {
				return fmt.Errorf("no Granian running")
			}
			return serves(d, "crash v1")()
		})
	})

	t.Run("caddy", func(t *testing.T) {
		old := caddyPID(t, root)
		killPID(t, old)
		eventually(t, 60*time.Second, func() error {
			if pids := procsUnder(t, "caddy", "run", filepath.Join(root, "caddy")); len(pids) != 1 || pids[0] == old {
				return fmt.Errorf("caddy processes %v (killed %d)", pids, old)
			}
			return serves(d, "crash v1")()
		})
	})

	t.Run("hop3 during a deploy", func(t *testing.T) {
		files := wsgiApp("crash v2")
		files["Procfile"] = "wsgi: app:app\npreflight: sleep 97\n"
		w.commit("slow build", files)
		pushed := make(chan string, 1)
		go func() {
			out, _ := w.push(d, alice, app)
			pushed <- out
		}()
		// The build is running once its preflight command is.
		var sleeper int
		eventually(t, 60*time.Second, func() error {
			if sleeper = pgrep(t, root, "sleep 97"); sleeper == 0 {
				return fmt.Errorf("the preflight command has not started")
			}
			return nil
		})
		old := pgrepAll(t, root)
		oldCaddy := caddyPID(t, root)
		addr := d.httpAddr
		d.kill()
		out := <-pushed
		if strings.Contains(out, "is live") {
			t.Fatalf("the interrupted push claims success:\n%s", out)
		}

		// The old Caddy dies with hop3 (Pdeathsig); until it has, its admin
		// socket answers and a new daemon refuses to start beside it.
		eventually(t, 10*time.Second, func() error {
			if syscallKill0(oldCaddy) == nil && !isZombie(oldCaddy) {
				return fmt.Errorf("caddy %d of the killed daemon still runs", oldCaddy)
			}
			return nil
		})
		d2 := startDaemon(t, root, addr)
		eventually(t, 60*time.Second, serves(d2, "crash v1"))

		// Nothing of the killed daemon runs: app processes, its build, Caddy.
		for _, pid := range append(old, oldCaddy, sleeper) {
			if err := syscallKill0(pid); err == nil && !isZombie(pid) {
				t.Errorf("process %d of the killed daemon still runs: %s", pid, cmdline(pid))
			}
		}
		// The interrupted release is recorded as failed; v1 is live.
		st := openStore(t, root)
		a, err := st.App(context.Background(), app)
		if err != nil {
			t.Fatal(err)
		}
		if a.Release != 1 {
			t.Errorf("live release is v%d, want v1", a.Release)
		}
		rels := releasesOf(t, root, app)
		if len(rels) != 2 || rels[0].Attempt != 2 || rels[0].Number != 0 || rels[0].Status != store.Failed || !strings.Contains(rels[0].Detail, "interrupted") {
			t.Errorf("releases after the kill: %+v; want d2 failed as interrupted, with no release number", rels)
		}
		if err := st.Check(context.Background()); err != nil {
			t.Errorf("database after kill -9: %v", err)
		}
		// No stale socket: the app's run directory holds the stable link and
		// the socket it points at, the control socket answers.
		runDir := filepath.Join(root, "run", app)
		target, err := os.Readlink(filepath.Join(runDir, "web.sock"))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range dirNames(t, runDir) {
			if strings.HasSuffix(name, ".sock") && name != "web.sock" && name != target {
				t.Errorf("stale socket %s left in %s (live: %s)", name, runDir, target)
			}
		}
		if r := d2.local("", "apps"); r.code != 0 {
			t.Errorf("control socket after a kill -9: %s", r)
		}
		// The deploy ran inside git's pre-receive step: the hook lost hop3
		// and refused the push, so main never left the live release.
		if got, live := remoteRef(t, root, app, "refs/heads/main"), rels[len(rels)-1].Revision; got != live {
			t.Errorf("main is %.7s (the interrupted d2), not the live %.7s", got, live)
		}
		w.commit("fast build", wsgiApp("crash v3"))
		out = w.mustPush(d2, alice, app)
		wantBody(t, d2, host, "/", "crash v3")
		// The interrupted attempt took no number: this is v2.
		wantPushOutput(t, out, "crash v2 is live")
	})
}

func syscallKill0(pid int) error { return syscallKill(pid, 0) }

// TestHardeningUnreachableRegistry builds against package indexes that do
// not answer (a closed port on loopback): the push fails saying which
// index, and the running release keeps serving.
func TestHardeningUnreachableRegistry(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "offline", "offline.localhost"
	w := newWorkdir(t, staticSite("<h1>offline v1</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "<h1>offline v1</h1>\n")

	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{
			name: "python through UV_INDEX_URL",
			files: map[string]string{
				"Procfile":          "wsgi: app:app\n",
				"app.py":            "def app(e, s):\n    s('200 OK', [])\n    return [b'never']\n",
				"requirements.txt":  "six==1.16.0\n",
				".env":              "UV_INDEX_URL=http://127.0.0.1:9/simple\n",
				"public/index.html": "",
			},
			want: "127.0.0.1:9",
		},
		{
			name: "node through npm_config_registry",
			files: map[string]string{
				"Procfile":     "web: node server.js\n",
				"server.js":    "require('left-pad');\n",
				"package.json": `{"name": "offline", "version": "1.0.0", "dependencies": {"left-pad": "1.3.0"}}` + "\n",
				// No retries with growing pauses: the failure is the point.
				".env":              "npm_config_registry=http://127.0.0.1:9/\nnpm_config_fetch_retries=0\n",
				"public/index.html": "",
			},
			want: "127.0.0.1:9",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.commit(tc.name, tc.files)
			defer w.dropLast()
			out, err := w.push(d, alice, app)
			if err == nil {
				t.Fatalf("push succeeded with an unreachable index:\n%s", out)
			}
			t.Logf("push:\n%s", out)
			fails := failureLines(out)
			if len(fails) != 1 || !strings.Contains(fails[0], "build failed") {
				t.Errorf("want one failure line saying the build failed, got %q", fails)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("the output does not name the unreachable index %s:\n%s", tc.want, out)
			}
			wantBody(t, d, host, "/", "<h1>offline v1</h1>\n")
		})
	}
	if a, err := openStore(t, root).App(context.Background(), app); err != nil || a.Release != 1 {
		t.Fatalf("live release %d, %v; want v1", a.Release, err)
	}
}

// TestHardeningDiskFull fills the disk hop3's root is on during a build (a
// small tmpfs; needs root, skipped otherwise): the push fails with one
// line and the running release keeps serving. Failed releases are kept on
// disk by design, so the disk stays full until the operator removes the
// failed release's directory; then the next push deploys, and a restart
// records the release whose result could not be written as failed.
func TestHardeningDiskFull(t *testing.T) {
	t.Parallel()
	disk := tinyDisk(t, "48m")
	root := filepath.Join(disk, "r")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "full", "full.localhost"
	w := newWorkdir(t, staticSite("<h1>full v1</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "<h1>full v1</h1>\n")

	files := staticSite("<h1>full v2</h1>\n")
	files["Procfile"] = "static: public\npreflight: head -c 200000000 /dev/zero > filler\n"
	w.commit("fill the disk", files)
	out, err := w.push(d, alice, app)
	if err == nil {
		t.Fatalf("a build that filled the disk deployed:\n%s", out)
	}
	t.Logf("push:\n%s", out)
	oneLineFailure(t, out, "preflight command failed")
	if !strings.Contains(out, "No space left on device") {
		t.Errorf("the output does not say the disk is full:\n%s", out)
	}
	wantBody(t, d, host, "/", "<h1>full v1</h1>\n")
	if rels := releasesOf(t, root, app); rels[0].Status != store.Failed {
		t.Logf("with the disk full, d%d could not be recorded failed: it reads %s", rels[0].Attempt, rels[0].Status)
	}
	w.dropLast()

	// While the disk is full, pushes fail and the app keeps serving.
	w.commit("v3", staticSite("<h1>full v3</h1>\n"))
	if out, err := w.push(d, alice, app); err == nil {
		t.Logf("a push on a full disk deployed:\n%s", out)
	} else {
		t.Logf("push on a full disk:\n%s", out)
		wantBody(t, d, host, "/", "<h1>full v1</h1>\n")
		// The operator frees the space the failed build took.
		if err := os.RemoveAll(filepath.Join(root, "apps", app, "releases", "2")); err != nil {
			t.Fatal(err)
		}
		w.mustPush(d, alice, app)
	}
	wantBody(t, d, host, "/", "<h1>full v3</h1>\n")

	// A restart records what the full disk kept from being recorded.
	addr := d.httpAddr
	d.stop()
	d2 := startDaemon(t, root, addr)
	eventually(t, 60*time.Second, func() error {
		code, body, err := tryGet(d2.httpAddr, host, "/")
		if err != nil || code != 200 || body != "<h1>full v3</h1>\n" {
			return fmt.Errorf("GET = %d %q %v", code, body, err)
		}
		return nil
	})
	for _, r := range releasesOf(t, root, app) {
		if r.Status == store.Building {
			t.Errorf("d%d still reads building after a restart", r.Attempt)
		}
		if r.Attempt == 2 && r.Status != store.Failed {
			t.Errorf("d2 reads %s, want failed", r.Status)
		}
	}
	if err := openStore(t, root).Check(context.Background()); err != nil {
		t.Errorf("database after a full disk: %v", err)
	}
}

// gatePreflight is a preflight command that waits (up to a minute) until
// the file at path exists, then succeeds; it fails if it never does.
func gatePreflight(path string) string {
	return fmt.Sprintf(`i=0; while [ ! -e %s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; [ -e %s ]`, path, path)
}

// TestHardeningConcurrentPushes checks that pushes to one app are
// serialised (the second waits and says so), pushes to different apps run
// at the same time, and ten pushes to ten apps at once all deploy.
func TestHardeningConcurrentPushes(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	gates := openTemp(t)
	// The apps' preflights meet through a directory of the test's, which
	// Landlock would close to them.
	d := startDaemon(t, root, "127.0.0.1:0", "--sandbox", "off")
	alice := newUser(t, "alice")
	d.register(alice)

	t.Run("same app waits", func(t *testing.T) {
		const app, host = "same", "same.localhost"
		w := newWorkdir(t, staticSite("<h1>same v1</h1>\n"))
		w.mustPush(d, alice, app)
		gate := filepath.Join(gates, "same")
		files := staticSite("<h1>same v2</h1>\n")
		files["Procfile"] = "static: public\npreflight: " + gatePreflight(gate) + "\n"
		w.commit("v2 waits for the gate", files)
		first := make(chan string, 1)
		go func() {
			out, _ := w.push(d, alice, app)
			first <- out
		}()
		// The first deploy is under way once its preflight runs.
		eventually(t, 60*time.Second, func() error {
			if pgrep(t, root, gate) == 0 {
				return fmt.Errorf("the first push's build has not started")
			}
			return nil
		})
		w.commit("v3", staticSite("<h1>same v3</h1>\n"))
		waiting := make(chan struct{})
		second := make(chan string, 1)
		go func() {
			out, _ := pushWatching(w, d, alice, app, "is being deployed; waiting", waiting)
			second <- out
		}()
		select {
		case <-waiting:
		case out := <-second:
			os.WriteFile(gate, nil, 0o644)
			t.Fatalf("the second push finished while the first was deploying:\n%s", out)
		case <-time.After(60 * time.Second):
			os.WriteFile(gate, nil, 0o644)
			t.Fatal("the second push never said it waits")
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		out1, out2 := <-first, <-second
		if !strings.Contains(out1, "same v2 is live") {
			t.Fatalf("first push:\n%s", out1)
		}
		if !strings.Contains(out2, "another push to same is being deployed; waiting") || !strings.Contains(out2, "same v3 is live") {
			t.Fatalf("second push:\n%s", out2)
		}
		wantBody(t, d, host, "/", "<h1>same v3</h1>\n")
		rels := releasesOf(t, root, app)
		if len(rels) != 3 || rels[0].Status != store.Succeeded || rels[1].Status != store.Succeeded {
			t.Fatalf("releases: %+v", rels)
		}
	})

	t.Run("different apps run at once", func(t *testing.T) {
		// Each build waits for the other's mark: both can succeed only if
		// they run at the same time.
		var wg sync.WaitGroup
		outs := make([]string, 2)
		errs := make([]error, 2)
		for i, name := range []string{"para-a", "para-b"} {
			mine, other := filepath.Join(gates, name), filepath.Join(gates, []string{"para-b", "para-a"}[i])
			files := staticSite("<h1>" + name + "</h1>\n")
			files["Procfile"] = "static: public\npreflight: touch " + mine + "; " + gatePreflight(other) + "\n"
			w := newWorkdir(t, files)
			wg.Add(1)
			go func(i int, name string) {
				defer wg.Done()
				outs[i], errs[i] = w.push(d, alice, name)
			}(i, name)
		}
		wg.Wait()
		for i, name := range []string{"para-a", "para-b"} {
			if errs[i] != nil {
				t.Fatalf("push to %s: %v\n%s", name, errs[i], outs[i])
			}
			wantBody(t, d, name+".localhost", "/", "<h1>"+name+"</h1>\n")
		}
	})

	t.Run("ten apps at once", func(t *testing.T) {
		const n = 10
		var wg sync.WaitGroup
		outs := make([]string, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			w := newWorkdir(t, staticSite(fmt.Sprintf("<h1>load %d</h1>\n", i)))
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				outs[i], errs[i] = w.push(d, alice, fmt.Sprintf("load-%d", i))
			}(i)
		}
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Errorf("push to load-%d: %v\n%s", i, errs[i], outs[i])
				continue
			}
			wantBody(t, d, fmt.Sprintf("load-%d.localhost", i), "/", fmt.Sprintf("<h1>load %d</h1>\n", i))
		}
		if err := openStore(t, root).Check(context.Background()); err != nil {
			t.Error(err)
		}
	})
}

// TestHardeningDeployerStaysDeployer: a deployer key may push only its own
// apps, and the code it pushes runs as the app's own user, which may not
// open the control socket (an admin session). A preflight command that runs
// `hop3 keys` through it is refused by the kernel. Landlock is off: it would
// refuse to run the hop3 binary at all, and hide what the socket does.
func TestHardeningDeployerStaysDeployer(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--sandbox", "off")
	alice := newUser(t, "alice")
	d.register(alice)
	bob := newUser(t, "bob")
	d.register(bob, "--role", "deployer", "--apps", "mine")
	if r := d.command(bob, "", "keys"); r.code == 0 {
		t.Fatalf("a deployer listed keys over ssh: %s", r)
	}
	files := staticSite("<h1>mine</h1>\n")
	files["Procfile"] = "static: public\npreflight: " + hop3Bin + ` --root "$(dirname "$(dirname "$DATA_DIR")")" keys || true` + "\n"
	out, err := newWorkdir(t, files).push(d, bob, "mine")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if strings.Contains(out, "alice  admin") {
		t.Fatalf("a deployer's preflight command ran `hop3 keys` as admin through the control socket:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "permission denied") {
		t.Fatalf("the preflight's hop3 was not refused by the control socket's permissions:\n%s", out)
	}
}

// mktree writes a tree object from ls-tree style lines ("MODE TYPE OID\tNAME")
// with git mktree, which, unlike git's other commands, accepts a tree that
// names one entry twice: what a crafted push carries.
func (w *workdir) mktree(lines ...string) string {
	w.t.Helper()
	cmd := exec.Command("git", "mktree")
	cmd.Dir = w.dir
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("git mktree: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// blob stores content in w's repository and returns its id.
func (w *workdir) blob(content string) string {
	w.t.Helper()
	cmd := exec.Command("git", "hash-object", "-w", "--stdin")
	cmd.Dir = w.dir
	cmd.Stdin = strings.NewReader(content)
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("git hash-object: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestHardeningSymlinkChainWithDuplicateEntry pushes the tree of a known
// attack: links l1 -> ., l2 -> l1/.., ... l5 -> l4/.. (each confined on its
// own; l5 is hop3's root), then a directory entry also named l5 whose files
// aim at another app's repository hooks, environments and data. A checkout
// that follows l5 while writing them plants a hook the next push of the
// other app runs. The push must be refused with nothing written outside its
// release, and the running release must serve on. Hooks written into an
// app's repository are never run either: git runs only hop3's.
func TestHardeningSymlinkChainWithDuplicateEntry(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host, other = "attacker", "attacker.localhost", "victim"
	newWorkdir(t, staticSite("<h1>victim</h1>\n")).mustPush(d, alice, other)
	w := newWorkdir(t, staticSite("<h1>attacker v1</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "<h1>attacker v1</h1>\n")
	liveRev := remoteRef(t, root, app, "refs/heads/main")

	targets := map[string]string{ // path under l5 (hop3's root) -> what lands there
		"repos/" + other + ".git/hooks/pre-receive": "#!/bin/sh\ntouch " + filepath.Join(root, "pwned") + "\n",
		"apps/" + other + "/envs/evil.pth":          "import os; os.system('touch " + filepath.Join(root, "pwned") + "')\n",
		"data/" + other + "/evil.txt":               "planted\n",
	}
	// Build the l5 directory bottom-up, one tree per directory.
	var dirTree func(prefix string) string
	dirTree = func(prefix string) string {
		var lines []string
		subdirs := map[string]bool{}
		for p, content := range targets {
			rest, ok := strings.CutPrefix(p, prefix)
			if !ok {
				continue
			}
			if name, _, isDir := strings.Cut(rest, "/"); isDir {
				subdirs[name] = true
			} else {
				lines = append(lines, "100755 blob "+w.blob(content)+"\t"+rest)
			}
		}
		for name := range subdirs {
			lines = append(lines, "040000 tree "+dirTree(prefix+name+"/")+"\t"+name)
		}
		return w.mktree(lines...)
	}
	top := strings.Split(strings.TrimSpace(w.git("ls-tree", "HEAD")), "\n")
	for i, target := range []string{".", "l1/..", "l2/..", "l3/..", "l4/.."} {
		top = append(top, fmt.Sprintf("120000 blob %s\tl%d", w.blob(target), i+1))
	}
	top = append(top, "040000 tree "+dirTree("")+"\tl5")
	commit := strings.TrimSpace(w.git("commit-tree", w.mktree(top...), "-p", "HEAD", "-m", "crafted"))

	out, err := w.pushRef(d, alice, app, commit+":refs/heads/main")
	t.Logf("crafted push:\n%s", out)
	if err == nil {
		t.Fatalf("the crafted push was accepted:\n%s", out)
	}
	if !strings.Contains(out, "[remote rejected]") {
		t.Errorf("git does not report the push rejected:\n%s", out)
	}
	for p := range targets {
		if _, err := os.Lstat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("the crafted push wrote %s outside its release (%v)", p, err)
		}
	}
	if got := remoteRef(t, root, app, "refs/heads/main"); got != liveRev {
		t.Errorf("main moved from %s to %s", liveRev, got)
	}
	wantBody(t, d, host, "/", "<h1>attacker v1</h1>\n")

	// A hook written straight into a repository is never run by git.
	hook := filepath.Join(root, "repos", other+".git", "hooks", "pre-receive")
	os.MkdirAll(filepath.Dir(hook), 0o755)
	if err := os.WriteFile(hook, []byte("#!/bin/sh\ntouch "+filepath.Join(root, "pwned")+"\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wv := newWorkdir(t, staticSite("<h1>victim v2</h1>\n"))
	if out, err := wv.pushRef(d, alice, other, "HEAD:refs/heads/main", "--force"); err != nil {
		t.Fatalf("push to %s with a hook in its repository: %v\n%s", other, err, out)
	}
	wantBody(t, d, other+".localhost", "/", "<h1>victim v2</h1>\n")
	if _, err := os.Lstat(filepath.Join(root, "pwned")); !os.IsNotExist(err) {
		t.Errorf("a hook from a repository ran (%v)", err)
	}
}
