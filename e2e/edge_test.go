package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// caddyUID is Caddy's uid and gid when hop3 runs as root (the default
// HOP3_UID_BASE); appLikeUID stands for an app's own user.
const (
	caddyUID   = 62000
	appLikeUID = 62001
)

// mkLinks is an app's script that points symlinks in a static directory at
// what it must never get served: hop3's database and host key, the
// system's passwd file, another app's release, hop3's ssh directory, by
// absolute and by climbing relative paths. It also makes an ordinary file
// and a link that stays in the directory.
const mkLinks = `#!/bin/sh
# usage: mk.sh DIR SUFFIX
set -e
root=$(dirname "$(dirname "$DATA_DIR")")
d=$1
s=$2
mkdir -p "$d"
ln -sfn "$root/hop3.db" "$d/db$s"
ln -sfn "$root/ssh/host_ed25519" "$d/key$s"
ln -sfn /etc/passwd "$d/passwd$s"
ln -sfn "$root/apps/other/current/public/secret.txt" "$d/other$s"
ln -sfn "$(realpath --relative-to="$d" "$root/hop3.db")" "$d/reldb$s"
ln -sfn "$root/ssh" "$d/sshdir$s"
echo "ordinary$s" > "$d/ok$s.txt"
ln -sfn "ok$s.txt" "$d/alias$s"
`

// TestEdgeStaticSymlinks: an app's code points symlinks in its DATA_DIR and
// in its release's static directory at hop3.db, the host key, /etc/passwd
// and another app's release, both before its route is made (release
// command) and after (a run session): through Caddy each answers 404 and
// never its contents, for STATIC_PATHS into DATA_DIR and into the release,
// and for a static: site. Ordinary files and a link that stays inside the
// served directory are served.
func TestEdgeStaticSymlinks(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)

	const otherSecret = "other-app-secret-7f3a"
	newWorkdir(t, map[string]string{
		"Procfile":          "static: public\n",
		"public/index.html": "other\n",
		"public/secret.txt": otherSecret + "\n",
	}).mustPush(d, alice, "other")

	pub := filepath.Join(root, "data", "a", "pub")
	newWorkdir(t, routerApp("a", map[string]string{
		".env":           "STATIC_PATHS=/pub:" + pub + ",/static:static\n",
		"static/app.css": "body{}\n",
		"mk.sh":          mkLinks,
		"Procfile":       "wsgi: app:app\nrelease: sh mk.sh \"$DATA_DIR/pub\" && sh mk.sh static\n",
	})).mustPush(d, alice, "a")
	newWorkdir(t, map[string]string{
		"Procfile":          "static: public\nrelease: sh mk.sh public\n",
		"public/index.html": "site\n",
		"mk.sh":             mkLinks,
	}).mustPush(d, alice, "site")

	// The same links again, made by the apps' code once their routes and
	// file servers are up.
	d.mustCmd(alice, "run", "a", "--", "sh", "-c", `sh mk.sh "$DATA_DIR/pub" -late && sh mk.sh static -late`)
	d.mustCmd(alice, "run", "site", "--", "sh", "mk.sh", "public", "-late")

	secrets := map[string]string{"hop3.db": "SQLite format 3", "host key": "PRIVATE KEY", "passwd": "root:x:0:0", "other app": otherSecret}
	for _, tc := range []struct{ host, dir string }{
		{"a.localhost", "/pub/"},
		{"a.localhost", "/static/"},
		{"site.localhost", "/"},
	} {
		for _, s := range []string{"", "-late"} {
			for _, name := range []string{"db", "key", "passwd", "other", "reldb", "sshdir" + s + "/host_ed25519"} {
				p := tc.dir + name
				if !strings.HasPrefix(name, "sshdir") {
					p += s
				}
				code, body := get(t, d, tc.host, p)
				if code != 404 && code != 403 {
					t.Errorf("GET %s%s = %d, want 404 or 403", tc.host, p, code)
				}
				for what, mark := range secrets {
					if strings.Contains(body, mark) {
						t.Errorf("GET %s%s served %s", tc.host, p, what)
					}
				}
			}
			wantBody(t, d, tc.host, tc.dir+"ok"+s+".txt", "ordinary"+s+"\n")
			wantBody(t, d, tc.host, tc.dir+"alias"+s, "ordinary"+s+"\n")
		}
	}
	wantBody(t, d, "a.localhost", "/static/app.css", "body{}\n")
	wantBody(t, d, "site.localhost", "/", "site\n")
	wantBody(t, d, "other.localhost", "/secret.txt", otherSecret+"\n")

	// The file server is one of the app's processes: with isolation on it
	// runs as the app's user, as its Granian does, neither hop3's nor
	// Caddy's.
	if os.Geteuid() == 0 {
		servers := procsUnder(t, "serve-static", filepath.Join(root, "run", "a")+"/")
		granians := granianPIDs(t, root, "a")
		if len(servers) != 1 || len(granians) == 0 {
			t.Fatalf("a's static server %v, Granian %v", servers, granians)
		}
		uid, appUID := uidOf(t, servers[0]), uidOf(t, granians[0])
		if uid != appUID || uid == 0 || uid == caddyUID {
			t.Errorf("a's static server runs as uid %d, its Granian as %d", uid, appUID)
		}
	}
}

// TestEdgeCaddyUser: run as root, hop3 starts Caddy as uid and gid 62000
// with no other group. That user can not read hop3.db, the host key, an
// app's DATA_DIR or connect to the control socket; a process of another
// uid (as an app's) can connect neither to the control socket nor to
// Caddy's admin socket. hop3 still reconfigures Caddy (domains:add), and
// serves the app through it.
func TestEdgeCaddyUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("Caddy runs as its own user only when hop3 can switch users (root)")
	}
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("a", nil)).mustPush(d, alice, "a")
	wantBody(t, d, "a.localhost", "/", "a /")
	data := filepath.Join(root, "data", "a")
	if err := os.WriteFile(filepath.Join(data, "private.txt"), []byte("private"), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("caddy's credentials", func(t *testing.T) {
		wantCaddyCredentials(t, caddyPID(t, root))
	})

	t.Run("caddy's Go settings", func(t *testing.T) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", caddyPID(t, root)))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, kv := range strings.Split(string(env), "\x00") {
			got[kv] = true
		}
		for _, want := range []string{"GOGC=400", fmt.Sprintf("GOMAXPROCS=%d", max(1, runtime.NumCPU()/2))} {
			if !got[want] {
				t.Errorf("caddy's environment lacks %s", want)
			}
		}
	})

	t.Run("caddy's files", func(t *testing.T) {
		for _, f := range []struct {
			path     string
			uid, gid int
			mode     os.FileMode
		}{
			{"caddy", 0, caddyUID, 0o750},
			{"caddy/boot.json", 0, caddyUID, 0o640},
			{"caddy/data", caddyUID, caddyUID, 0o700},
			{"caddy/config", caddyUID, caddyUID, 0o700},
			// hop3 binds Caddy's admin socket where Caddy itself can not
			// reach it by its path.
			{"admin", 0, 0, 0o700},
			{"admin/caddy.sock", 0, 0, 0o600},
			{"run/a", -1, caddyUID, 0o750 | os.ModeSetgid}, // the app's
		} {
			fi, err := os.Lstat(filepath.Join(root, f.path))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			mode := fi.Mode() & (os.ModePerm | os.ModeSetgid)
			if (f.uid >= 0 && int(st.Uid) != f.uid) || int(st.Gid) != f.gid || mode != f.mode {
				t.Errorf("%s: %d:%d %v, want %d:%d %v", f.path, st.Uid, st.Gid, mode, f.uid, f.gid, f.mode)
			}
		}
		// Caddy is handed the socket hop3 holds: it needs no admin
		// directory of its own.
		if _, err := os.Lstat(filepath.Join(root, "caddy", "admin")); !os.IsNotExist(err) {
			t.Errorf("caddy/admin exists beside the admin socket hop3 holds (%v)", err)
		}
	})

	t.Run("caddy can not read hop3's secrets or an app's data", func(t *testing.T) {
		for _, p := range []string{"hop3.db", "ssh/host_ed25519", "data/a/private.txt", "data/a"} {
			path := filepath.Join(root, p)
			cmd := "cat"
			if fi, err := os.Stat(path); err == nil && fi.IsDir() {
				cmd = "ls"
			}
			out, err := asUser(caddyUID, "/bin/"+cmd, path)
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("%s %s as caddy's user: err=%v, want Permission denied\n%s", cmd, p, err, out)
			}
		}
	})

	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		t.Skip("no " + py + " to connect to sockets as another user")
	}
	connect := func(uid int, sock string) string {
		out, _ := asUser(uid, py, "-c", `import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
    print("connected")
except OSError as e:
    print(errno.errorcode[e.errno])`, sock)
		return strings.TrimSpace(out)
	}
	control := filepath.Join(root, "control.sock")
	admin := caddyAdminSocket(root)
	t.Run("sockets refuse other users", func(t *testing.T) {
		for _, tc := range []struct {
			uid  int
			sock string
		}{{appLikeUID, control}, {appLikeUID, admin}, {caddyUID, control}, {caddyUID, admin}} {
			if got := connect(tc.uid, tc.sock); got != "EACCES" && got != "ECONNREFUSED" {
				t.Errorf("uid %d connect %s: %s, want EACCES or ECONNREFUSED", tc.uid, tc.sock, got)
			}
		}
		// The check itself works: root connects to both.
		for _, sock := range []string{control, admin} {
			if got := connect(0, sock); got != "connected" {
				t.Errorf("root connect %s: %s", sock, got)
			}
		}
	})

	t.Run("hop3 still reconfigures caddy", func(t *testing.T) {
		d.mustCmd(alice, "domains:add", "a", "www.a.test")
		wantBody(t, d, "www.a.test", "/x", "a /x")
	})
}

// asUser runs a command as uid (and gid uid), with no other group, and
// returns its combined output.
func asUser(uid int, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestEdgeCaddyUserUnderTheUnit runs hop3 as the installed service does:
// root limited to the capabilities isolation needs (a bounding set) and no
// new privileges. Caddy still runs as its own user, holding no capability,
// comes back after kill -9 (hop3 removes the socket it left) and stops
// with hop3.
func TestEdgeCaddyUserUnderTheUnit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runs hop3 as root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv to narrow hop3's capabilities")
	}
	t.Parallel()
	root := shortTemp(t)
	logf, err := os.Create(filepath.Join(root, "hop3-test.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(setpriv, "--bounding-set=-all,+setuid,+setgid,+chown,+fowner,+dac_override,+kill,+net_bind_service", "--no-new-privs",
		hop3Bin, "serve", "--root", root, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--caddy-bin", tool(t, "caddy"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("hop3 log:\n%s", b)
		}
	}()
	log := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	eventually(t, 60*time.Second, func() error {
		if !strings.Contains(log(), "hop3 ready") {
			return errors.New("hop3 not ready")
		}
		return nil
	})
	first := caddyPID(t, root)
	wantCaddyCredentials(t, first)
	killPID(t, first)
	eventually(t, 30*time.Second, func() error {
		if !strings.Contains(log(), "caddy restarted; routes restored") {
			return errors.New("caddy not restarted")
		}
		return nil
	})
	second := caddyPID(t, root)
	if second == first {
		t.Fatalf("caddy %d was not restarted", first)
	}
	wantCaddyCredentials(t, second)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("hop3 did not stop within 30s")
	}
	if pids := procsUnder(t, "caddy", "run", filepath.Join(root, "caddy")); len(pids) != 0 {
		t.Errorf("caddy still runs after hop3 stopped: %v", pids)
	}
}

// wantCaddyCredentials checks that a Caddy runs as uid and gid 62000, with
// no other group and no capability (the kernel drops root's when no uid
// is 0 any more).
func wantCaddyCredentials(t *testing.T, pid int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Uid": "62000 62000 62000 62000", "Gid": "62000 62000 62000 62000", "Groups": "",
		"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000", "CapAmb": "0000000000000000"}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		if w, ok := want[k]; ok {
			if got := strings.Join(strings.Fields(v), " "); got != w {
				t.Errorf("caddy %d's %s: %q, want %q", pid, k, got, w)
			}
		}
	}
}

// TestEdgeSocketLinkToAdmin: an app owns its socket directory, so without
// Landlock it can point web.sock, the link Caddy dials, at Caddy's admin
// socket. Caddy must not then serve its admin API to anyone who asks the
// app's host: hop3 binds that socket in a directory Caddy's user can not
// enter, and Caddy only inherits it.
func TestEdgeSocketLinkToAdmin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("apps and Caddy have users of their own only when hop3 can switch users (root)")
	}
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--sandbox", "off")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, isolationApp("w serves")).mustPush(d, alice, "w")
	wantBody(t, d, "w.localhost", "/", "w serves")
	sock := filepath.Join(root, "run", "w", "web.sock")
	admin := caddyAdminSocket(root)
	if r := d.command(alice, "", "run", "w", "--", "ln", "-sfn", admin, sock); r.code != 0 {
		t.Fatalf("the app could not replace its own socket link (the attack this test needs): %s", r)
	}
	if got, _ := os.Readlink(sock); got != admin {
		t.Fatalf("web.sock -> %q, want %q", got, admin)
	}
	// Many requests at once, so Caddy dials afresh instead of reusing a
	// connection to the app.
	bodies := make(chan string, 20)
	for range cap(bodies) {
		go func() {
			_, b, _ := tryGet(d.httpAddr, "w.localhost", "/config/")
			bodies <- b
		}()
	}
	for range cap(bodies) {
		if b := <-bodies; strings.Contains(b, `"apps"`) || strings.Contains(b, `"admin"`) {
			t.Fatalf("GET w.localhost/config/ through a link to the admin socket answered Caddy's config: %.200q", b)
		}
	}
	// hop3 itself still reaches the admin API: the route change is made.
	d.mustCmd(alice, "domains:add", "w", "www.w.test")
	if cfg := adminGet(t, caddyAdmin(root), "/config/"); !bytes.Contains(cfg, []byte("www.w.test")) {
		t.Fatalf("caddy's config lacks the host just added")
	}
}
