package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/internal/store"
)

// openStore opens a daemon's state database, as the hop3 CLI does beside a
// running daemon (SQLite in WAL mode allows it).
func openStore(t *testing.T, root string) *store.Store {
	t.Helper()
	st, err := store.Open(filepath.Join(root, "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// releasesOf lists an app's releases, newest first.
func releasesOf(t *testing.T, root, app string) []store.Release {
	t.Helper()
	rels, err := openStore(t, root).Releases(context.Background(), app)
	if err != nil {
		t.Fatalf("releases of %s: %v", app, err)
	}
	return rels
}

// appNames lists the apps the store knows.
func appNames(t *testing.T, root string) []string {
	t.Helper()
	apps, err := openStore(t, root).Apps(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	sort.Strings(names)
	return names
}

// dirNames lists the entries of dir ("" entries when it does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// remoteRef is the revision ref names in an app's bare repository ("" when
// it does not exist).
func remoteRef(t *testing.T, root, app, ref string) string {
	t.Helper()
	out, err := exec.Command("git", "--git-dir", filepath.Join(root, "repos", app+".git"), "rev-parse", "--verify", "-q", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// repoObjects describes what a bare repository stores: its object count and
// pack size, and any directory a push left in objects/ (quarantine,
// temporary packs).
func repoObjects(t *testing.T, root, app string) (string, []string) {
	t.Helper()
	gitDir := filepath.Join(root, "repos", app+".git")
	out, err := exec.Command("git", "--git-dir", gitDir, "count-objects", "-v").CombinedOutput()
	if err != nil {
		t.Fatalf("count-objects: %v\n%s", err, out)
	}
	var leftovers []string
	filepath.Walk(filepath.Join(gitDir, "objects"), func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		name := fi.Name()
		if strings.HasPrefix(name, "incoming-") || strings.HasPrefix(name, "tmp_") || strings.HasPrefix(name, "tmp-") {
			leftovers = append(leftovers, strings.TrimPrefix(p, gitDir+"/"))
		}
		return nil
	})
	return string(out), leftovers
}

// procsUnder lists live processes whose command line contains all of words.
func procsUnder(t *testing.T, words ...string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || isZombie(pid) {
			continue
		}
		cl := cmdline(pid)
		ok := cl != ""
		for _, w := range words {
			ok = ok && strings.Contains(cl, w)
		}
		if ok {
			pids = append(pids, pid)
		}
	}
	return pids
}

// caddyPID finds the Caddy a daemon on root runs.
func caddyPID(t *testing.T, root string) int {
	t.Helper()
	pids := procsUnder(t, "caddy", "run", filepath.Join(root, "caddy"))
	if len(pids) != 1 {
		t.Fatalf("want one Caddy for %s, found %v", root, pids)
	}
	return pids[0]
}

// granianPIDs lists the Granian processes serving app (main process and
// workers).
func granianPIDs(t *testing.T, root, app string) []int {
	t.Helper()
	var out []int
	for _, pid := range pgrepAll(t, root) {
		cl := cmdline(pid)
		if strings.Contains(cl, "granian") && strings.Contains(cl, filepath.Join(root, "run", app)+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// parentOf reads a process's parent pid.
func parentOf(pid int) int { return statField(pid, 1) }

// statField reads the number at index i of /proc/PID/stat's fields after
// the command name (0 is the state, 1 the parent, 2 the process group); 0
// when the process is gone.
func statField(pid, i int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	if j < 0 {
		return 0
	}
	f := strings.Fields(s[j+1:])
	if len(f) <= i {
		return 0
	}
	n, _ := strconv.Atoi(f[i])
	return n
}

// killPID sends SIGKILL.
func killPID(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
}

// fileMode is the permission bits of path (lstat: a socket or the file).
func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fi.Mode().Perm()
}

// tinyDisk mounts a tmpfs of size bytes for one test: a disk that can fill
// up without filling the machine's. It needs root (mount); otherwise the
// test is skipped with the reason.
func tinyDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("simulating a full disk needs a tmpfs mount, which needs root; not tested as this user")
	}
	dir, err := os.MkdirTemp("", "h3disk")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		t.Skipf("simulating a full disk needs a tmpfs mount, which failed here (%v: %s); not tested", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// The daemon is stopped by an earlier cleanup (registered later).
		for i := 0; i < 50; i++ {
			if exec.Command("umount", dir).Run() == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		os.Remove(dir)
	})
	return dir
}

// oneLineFailure checks a push's output has exactly one " !     " line, and
// that it holds want.
func oneLineFailure(t *testing.T, out, want string) {
	t.Helper()
	fails := failureLines(out)
	if len(fails) != 1 || !strings.Contains(fails[0], want) {
		t.Fatalf("want one failure line holding %q, got %q:\n%s", want, fails, out)
	}
}

// symlinkCommit commits a symbolic link name -> target in w.
func (w *workdir) symlinkCommit(name, target string) {
	w.t.Helper()
	if err := os.Symlink(target, filepath.Join(w.dir, name)); err != nil {
		w.t.Fatal(err)
	}
	w.git("add", "-A")
	w.git("commit", "-q", "-m", "link "+name)
}

// pushRef pushes refspec to app's remote.
func (w *workdir) pushRef(d *daemon, u user, app string, refspec ...string) (string, error) {
	return w.h().Push(context.Background(), d.Daemon, u.h(), app, nil, refspec...)
}

// dropLast forgets the last commit of w (the server refused it).
func (w *workdir) dropLast() {
	w.t.Helper()
	w.git("reset", "-q", "--hard", "HEAD~1")
}

func syscallKill(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }

// pushWatching pushes HEAD to app's main, closing seen when a line of the
// output contains marker; it returns the whole output.
func pushWatching(w *workdir, d *daemon, u user, app, marker string, seen chan<- struct{}) (string, error) {
	cmd := exec.Command("git", "push", d.remote(app), "HEAD:main")
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+d.sshCommand(u))
	pr, pw, err := os.Pipe()
	if err != nil {
		return "", err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return "", err
	}
	pw.Close()
	var out strings.Builder
	buf := make([]byte, 4096)
	closed := false
	for {
		n, err := pr.Read(buf)
		out.Write(buf[:n])
		if !closed && strings.Contains(out.String(), marker) {
			close(seen)
			closed = true
		}
		if err != nil {
			break
		}
	}
	pr.Close()
	return out.String(), cmd.Wait()
}

// rawCommand sends cmd as the SSH exec request, byte for byte, with the
// x/crypto client: it can carry what the OpenSSH client's argv can not
// (NUL bytes).
func (d *daemon) rawCommand(u user, cmd string) cmdResult {
	d.t.Helper()
	b, err := os.ReadFile(u.key)
	if err != nil {
		d.t.Fatal(err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		d.t.Fatal(err)
	}
	c, err := gossh.Dial("tcp", "127.0.0.1:"+d.sshPort, &gossh.ClientConfig{
		User:            "hop3",
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), // loopback, the daemon under test
		Timeout:         30 * time.Second,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		d.t.Fatal(err)
	}
	defer s.Close()
	var o, e strings.Builder
	s.Stdout, s.Stderr = &o, &e
	err = s.Run(cmd)
	code := 0
	if ee, ok := err.(*gossh.ExitError); ok {
		code = ee.ExitStatus()
	} else if err != nil {
		code = -1
	}
	return cmdResult{o.String(), e.String(), code}
}
