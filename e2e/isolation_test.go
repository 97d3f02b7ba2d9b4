package e2e

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// isolationApp is a WSGI app that answers with body, with a worker that
// runs probe.sh once (when it exists) and then sleeps.
func isolationApp(body string) map[string]string {
	return map[string]string{
		"requirements.txt": "# granian only\n",
		"app.py": fmt.Sprintf(`def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [%q.encode()]
`, body),
		"Procfile": "wsgi: app:app\nworker: if [ -f probe.sh ]; then sh probe.sh > \"$DATA_DIR/probe.txt\" 2>&1; fi; exec sleep 100000\n",
	}
}

// uidOf reads the real uid of a process from /proc.
func uidOf(t *testing.T, pid int) int {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no Uid line for pid %d", pid)
	return -1
}

// TestIsolation: a deployer limited to app a pushes code that tries to
// reach hop3 and an admin's app b, the attacks of a server where every app
// ran as hop3's user. Run as root, hop3 runs each app as its own uid: every
// attempt is refused by the kernel, from a `run` session and from a
// Procfile process alike, and a's build sees none of hop3's environment.
func TestIsolation(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root (or CAP_SETUID and friends)")
	}
	t.Parallel()
	root := shortTemp(t)
	// Landlock off: each refusal below must come from the uids alone.
	d := startDaemonEnv(t, root, "127.0.0.1:0", []string{"HOP3_BUILD_CANARY=canary-from-hop3", "HOP3_SANDBOX=off"})
	if strings.Contains(d.log(), "WARNING") {
		t.Fatalf("hop3 warned that apps run as its user:\n%s", d.log())
	}
	alice := newUser(t, "alice")
	d.register(alice)
	bob := newUser(t, "bob")
	d.register(bob, "--role", "deployer", "--apps", "a")

	bFiles := isolationApp("b is fine")
	bFiles[".env"] = "B_DOTENV_SECRET=dotenv-of-b\n"
	newWorkdir(t, bFiles).mustPush(d, alice, "b")
	d.mustCmd(alice, "config:set", "b", "B_CONFIG_SECRET=config-of-b")
	d.mustCmd(alice, "run", "b", "--", "sh", "-c", `echo data-of-b > "$DATA_DIR/secret"`)
	wantBody(t, d, "b.localhost", "/", "b is fine")

	aFiles := isolationApp("a")
	// A front end whose install script records what the build sees.
	aFiles["package.json"] = `{"name": "a", "version": "1.0.0", "scripts": {"preinstall": "env > build-env.txt; id -u > build-uid.txt"}}` + "\n"
	wa := newWorkdir(t, aFiles)
	wa.mustPush(d, bob, "a")

	bGranian := granianPIDs(t, root, "b")
	aGranian := granianPIDs(t, root, "a")
	if len(aGranian) == 0 || len(bGranian) == 0 {
		t.Fatalf("granian processes: a %v, b %v", aGranian, bGranian)
	}
	aUID, bUID := uidOf(t, aGranian[0]), uidOf(t, bGranian[0])

	t.Run("each app its own uid, none hop3's", func(t *testing.T) {
		if aUID == bUID || aUID == 0 || bUID == 0 || aUID == os.Getuid() {
			t.Fatalf("a runs as uid %d, b as %d, hop3 as %d", aUID, bUID, os.Getuid())
		}
		for _, pid := range append(append([]int{}, aGranian...), bGranian...) {
			if u := uidOf(t, pid); u != aUID && u != bUID {
				t.Errorf("pid %d runs as %d", pid, u)
			}
		}
		r := d.mustCmd(bob, "run", "a", "--", "id", "-u")
		if got := strings.TrimSpace(r.stdout); got != strconv.Itoa(aUID) {
			t.Errorf("run a: id -u = %q, want %d", got, aUID)
		}
		ps := d.mustCmd(bob, "ps", "a")
		if !strings.Contains(ps.stdout, strconv.Itoa(aUID)) {
			t.Errorf("ps a does not show uid %d:\n%s", aUID, ps.stdout)
		}
	})

	secrets := []string{"dotenv-of-b", "config-of-b", "data-of-b", "canary-from-hop3", "OPENSSH PRIVATE KEY", "SQLite format"}
	targets := map[string]string{
		"hop3.db":        filepath.Join(root, "hop3.db"),
		"host key":       filepath.Join(root, "ssh", "host_ed25519"),
		"b's DATA_DIR":   filepath.Join(root, "data", "b", "secret"),
		"b's release":    filepath.Join(root, "apps", "b", "releases", "1", "app.py"),
		"b's .env":       filepath.Join(root, "apps", "b", "releases", "1", ".env"),
		"b's current":    filepath.Join(root, "apps", "b", "current", ".env"),
		"b's repository": filepath.Join(root, "repos", "b.git", "config"),
		"b's environ":    fmt.Sprintf("/proc/%d/environ", bGranian[0]),
		"b's log":        filepath.Join(root, "logs", "b", "wsgi.1.log"),
		"hop3's environ": fmt.Sprintf("/proc/%d/environ", d.cmd.Process.Pid),
	}

	t.Run("run session reads nothing of hop3 or b", func(t *testing.T) {
		for name, path := range targets {
			r := d.command(bob, "", "run", "a", "--", "cat", path)
			if r.code == 0 {
				t.Errorf("run a read %s (%s): %s", name, path, r)
			}
			for _, s := range secrets {
				if strings.Contains(r.stdout+r.stderr, s) {
					t.Errorf("run a got %q from %s", s, name)
				}
			}
		}
		for _, dir := range []string{"apps/b/releases/1", "apps/b/envs", "data/b", "repos", "logs", "apps", "data", root} {
			if r := d.command(bob, "", "run", "a", "--", "ls", filepath.Join(root, dir)); r.code == 0 {
				t.Errorf("run a listed %s: %s", dir, r)
			}
		}
	})

	t.Run("control socket refused", func(t *testing.T) {
		r := d.command(bob, "", "run", "a", "--", hop3Bin, "--root", root, "config", "b")
		if r.code == 0 || strings.Contains(r.stdout+r.stderr, "config-of-b") {
			t.Fatalf("run a reached the control socket: %s", r)
		}
		if !strings.Contains(strings.ToLower(r.stderr), "permission denied") {
			t.Errorf("refused for another reason than permissions: %s", r)
		}
	})

	t.Run("a Procfile process reads nothing either", func(t *testing.T) {
		var probe strings.Builder
		for name, path := range targets {
			fmt.Fprintf(&probe, "if cat %q >/dev/null 2>&1; then echo \"READ %s\"; else echo \"DENIED %s\"; fi\n", path, name, name)
		}
		fmt.Fprintf(&probe, "if %s --root %q config b >/dev/null 2>&1; then echo 'READ control socket'; else echo 'DENIED control socket'; fi\n", hop3Bin, root)
		probe.WriteString("id -u\n")
		wa.commit("probe", map[string]string{"probe.sh": probe.String()})
		wa.mustPush(d, bob, "a")
		var out string
		eventually(t, 60*time.Second, func() error {
			b, err := os.ReadFile(filepath.Join(root, "data", "a", "probe.txt"))
			out = string(b)
			if err != nil || !strings.Contains(out, "control socket") {
				return fmt.Errorf("probe not done: %v %q", err, out)
			}
			return nil
		})
		if strings.Contains(out, "READ") {
			t.Errorf("a's worker read what is not a's:\n%s", out)
		}
		if want := len(targets) + 1; strings.Count(out, "DENIED") != want {
			t.Errorf("want %d refusals:\n%s", want, out)
		}
		if !strings.Contains(out, strconv.Itoa(aUID)) {
			t.Errorf("a's worker did not run as %d:\n%s", aUID, out)
		}
	})

	t.Run("writing its own virtualenv cannot change b's", func(t *testing.T) {
		attack := `import os; open(os.environ.get("DATA_DIR", "/tmp") + "/pwned", "w").write(open("/proc/self/environ").read())`
		r := d.command(bob, "", "run", "a", "--", "sh", "-c",
			`f=$(ls -d "$VIRTUAL_ENV"/lib/python3*/site-packages/granian/__init__.py) && echo '`+attack+`' >> "$f"`)
		if r.code == 0 {
			t.Errorf("a wrote into its own virtualenv, which no app may change: %s", r)
		}
		d.mustCmd(alice, "restart", "b")
		wantBody(t, d, "b.localhost", "/", "b is fine")
		if _, err := os.Stat(filepath.Join(root, "data", "b", "pwned")); err == nil {
			t.Fatal("b ran code a appended to a virtualenv")
		}
		d.mustCmd(alice, "restart", "a")
		if _, err := os.Stat(filepath.Join(root, "data", "a", "pwned")); err == nil {
			t.Fatal("a's appended line ran")
		}
	})

	t.Run("the build sees none of hop3's environment", func(t *testing.T) {
		env := d.mustCmd(bob, "run", "a", "--", "cat", "build-env.txt").stdout
		if strings.Contains(env, "canary-from-hop3") || strings.Contains(env, "HOP3_BUILD_CANARY") {
			t.Errorf("a's build saw hop3's environment:\n%s", env)
		}
		if !strings.Contains(env, "HOME="+filepath.Join(sharedCache(), "uid-"+strconv.Itoa(aUID), "home")) {
			t.Errorf("a's build HOME is not its own build home:\n%s", env)
		}
		uid := strings.TrimSpace(d.mustCmd(bob, "run", "a", "--", "cat", "build-uid.txt").stdout)
		if uid != strconv.Itoa(aUID) {
			t.Errorf("a's build ran as uid %s, want %d", uid, aUID)
		}
	})

	t.Run("a link planted in its release does not bring b's secrets in", func(t *testing.T) {
		// a may write its release; hop3 reads the release's .env as itself
		// at each restart, and must not follow a's link to b's.
		d.mustCmd(bob, "run", "a", "--", "ln", "-sfn", filepath.Join(root, "apps", "b", "releases", "1", ".env"), ".env")
		r := d.command(alice, "", "restart", "a")
		if r.code == 0 || !strings.Contains(r.stderr, "leads out of the release") {
			t.Errorf("restart with a planted .env link: %s", r)
		}
		if env := d.command(bob, "", "run", "a", "--", "env"); strings.Contains(env.stdout+env.stderr, "dotenv-of-b") {
			t.Fatalf("a's environment holds b's .env:\n%s", env)
		}
		// The app can no longer run commands in that release; its next push
		// (or this) mends it.
		if err := os.Remove(filepath.Join(root, "apps", "a", "releases", "2", ".env")); err != nil {
			t.Fatal(err)
		}
		d.mustCmd(alice, "restart", "a")
	})

	t.Run("owners and modes", func(t *testing.T) {
		for _, c := range []struct {
			path     string
			uid, gid int
			mode     os.FileMode
		}{
			{"", 0, 0, 0o711},
			{"hop3.db", 0, 0, 0o600},
			{"repos", 0, 0, 0o700},
			{"logs", 0, 0, 0o700},
			{"apps", 0, 0, 0o711},
			{"apps/a", 0, 0, 0o711},
			{"apps/a/releases", 0, 0, 0o711},
			{"apps/a/envs", 0, aUID, 0o750},
			{"data/a", aUID, aUID, 0o700},
			{"tmp/a", aUID, aUID, 0o700},
			{"run/a", aUID, 62000, 0o750 | os.ModeSetgid},
			{"apps/a/releases/2", aUID, 62000, 0o750 | os.ModeSetgid},
			{"run/pids", 0, 0, 0o700},
		} {
			info, err := os.Lstat(filepath.Join(root, c.path))
			if err != nil {
				t.Error(err)
				continue
			}
			uid, gid := ownerOf(info)
			if uid != c.uid || gid != c.gid || info.Mode().Perm() != c.mode.Perm() || info.Mode()&os.ModeSetgid != c.mode&os.ModeSetgid {
				t.Errorf("%s/%s: %d:%d %o, want %d:%d %o", root, c.path, uid, gid, info.Mode().Perm(), c.uid, c.gid, c.mode)
			}
		}
	})
}

func ownerOf(info os.FileInfo) (int, int) {
	st := info.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// TestIsolationOffThenOn: with --isolation off every app runs as hop3's
// user, and ps and doctor say so; started again with isolation on, the
// same root's apps come back under their own uid, their releases and
// DATA_DIR handed to them and closed to others.
func TestIsolationOffThenOn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("isolation needs root")
	}
	t.Parallel()
	root := shortTemp(t)
	// The system's Python: one under root's home (pyenv) would serve while
	// apps run as root and be out of reach of the app's user later.
	d := startDaemonEnv(t, root, "127.0.0.1:0", []string{"HOP3_ISOLATION=off", "PATH=/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin"})
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, isolationApp("served")).mustPush(d, alice, "app")
	d.mustCmd(alice, "run", "app", "--", "sh", "-c", `echo kept > "$DATA_DIR/file"`)
	if ps := d.mustCmd(alice, "ps", "app").stdout; !strings.Contains(ps, "hop3 (uid 0)") {
		t.Errorf("ps does not say the app runs as hop3's user:\n%s", ps)
	}
	doctor := []string{"doctor", "--root", root, "--http-addr", d.httpAddr, "--ssh-addr", "127.0.0.1:" + d.sshPort,
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off"}
	out, code := opsRun(t, nil, doctor...)
	if l := opsDoctorLines(t, out)["isolation"]; code == 0 || l[0] != "fail" || !strings.Contains(l[1], "fix:") {
		t.Errorf("doctor with isolation off: exit %d, isolation = %q\n%s", code, l, out)
	}
	if info, err := os.Stat(root); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("root with isolation off: %v %v, want 0700", info.Mode(), err)
	}
	d.stop()

	d = startDaemon(t, root, "127.0.0.1:0")
	wantBody(t, d, "app.localhost", "/", "served")
	pids := granianPIDs(t, root, "app")
	if len(pids) == 0 {
		t.Fatal("no granian for app")
	}
	uid := uidOf(t, pids[0])
	if uid == 0 {
		t.Fatal("app still runs as root after isolation came on")
	}
	for _, p := range []string{"apps/app/releases/1", "apps/app/releases/1/app.py", "data/app", "data/app/file"} {
		info, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := ownerOf(info); u != uid {
			t.Errorf("%s belongs to %d, want %d", p, u, uid)
		}
	}
	if r := d.mustCmd(alice, "run", "app", "--", "cat", filepath.Join(root, "data", "app", "file")); strings.TrimSpace(r.stdout) != "kept" {
		t.Errorf("DATA_DIR lost its file: %s", r)
	}
	out, _ = opsRun(t, nil, doctor...)
	if l := opsDoctorLines(t, out)["isolation"]; l[0] != "ok" {
		t.Errorf("doctor with isolation on: isolation = %q\n%s", l, out)
	}
	if l := opsDoctorLines(t, out)["state-root"]; l[0] != "ok" {
		t.Errorf("doctor: state-root = %q\n%s", l, out)
	}
}
