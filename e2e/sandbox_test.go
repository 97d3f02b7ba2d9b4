package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// sandboxProbe tries, from inside an app, to reach what belongs to hop3
// and to another app, and prints one line per attempt: READ/WROTE when it
// got through, denied-... when it did not. Its arguments are the paths.
const sandboxProbe = `#!/bin/sh
mode=
for f in "$@"; do
  case "$f" in
    read|write|list) mode=$f; continue ;;
  esac
  case $mode in
    read)  if cat "$f" >/dev/null 2>&1; then echo "READ $f"; else echo "denied-read $f"; fi ;;
    list)  if ls "$f" >/dev/null 2>&1; then echo "LISTED $f"; else echo "denied-list $f"; fi ;;
    write) if (echo pwned > "$f") 2>/dev/null; then echo "WROTE $f"; else echo "denied-write $f"; fi ;;
  esac
done
echo "uid $(id -u)"
`

// TestSandboxAppsStayApart: app a, pushed by a deployer, runs code that
// tries to read and write what belongs to hop3 and to app b, an admin's,
// both through `run` and from a Procfile worker. Landlock stops every
// attempt while its own release, DATA_DIR and TMPDIR stay usable. With
// isolation off every app runs as hop3's user (root here, as in CI): this
// is Landlock alone holding.
func TestSandboxAppsStayApart(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--isolation", "off")
	if !strings.Contains(d.log(), "app processes confined with Landlock") {
		t.Skipf("hop3 does not confine apps on this kernel:\n%s", d.log())
	}
	alice := newUser(t, "alice")
	d.register(alice)
	bob := newUser(t, "bob")
	d.register(bob, "--role", "deployer", "--apps", "a")

	// b keeps a secret in its DATA_DIR, its release, its .env and its
	// process environment.
	newWorkdir(t, map[string]string{
		"Procfile":   "worker: echo b-data-secret > \"$DATA_DIR/secret\"; exec sleep 4242\n",
		"secret.txt": "b-release-secret\n",
		".env":       "B_DOTENV=b-dotenv-secret\n",
	}).mustPush(d, alice, "b")
	d.mustCmd(alice, "config:set", "b", "B_TOKEN=b-env-secret")
	bData := filepath.Join(root, "data", "b")
	eventually(t, 30*time.Second, func() error {
		if pgrep(t, root, "4242") == 0 {
			return fmt.Errorf("b's worker is not running")
		}
		_, err := os.Stat(filepath.Join(bData, "secret"))
		return err
	})
	bRelease := filepath.Join(root, "apps", "b", "releases", "1")
	bPID := pgrep(t, root, "4242")
	if env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", bPID)); !strings.Contains(string(env), "b-env-secret") {
		t.Fatalf("b's worker (pid %d) does not hold the secret the test looks for", bPID)
	}

	aData := filepath.Join(root, "data", "a")
	aRelease := filepath.Join(root, "apps", "a", "releases", "1")
	mustRead := []string{
		filepath.Join(root, "hop3.db"),
		filepath.Join(root, "ssh", "host_ed25519"),
		filepath.Join(bData, "secret"),
		filepath.Join(bRelease, "secret.txt"),
		filepath.Join(bRelease, ".env"),
		filepath.Join(root, "repos", "b.git", "config"),
		filepath.Join(root, "logs", "b", "worker.1.log"),
		fmt.Sprintf("/proc/%d/environ", bPID),
		"/etc/shadow",
	}
	for _, f := range mustRead {
		if _, err := os.ReadFile(f); err != nil {
			t.Fatalf("the host cannot read %s, so the probe would prove nothing: %v", f, err)
		}
	}
	mustList := []string{bData, bRelease, filepath.Join(root, "apps", "b"), root}
	mustWrite := []string{
		filepath.Join(bData, "pwned"),
		filepath.Join(bRelease, "pwned"),
		filepath.Join(root, "repos", "b.git", "hooks", "pre-receive"),
		filepath.Join(root, "pwned"),
		filepath.Join(root, "logs", "a", "pwned"),
		filepath.Join(os.TempDir(), "hop3-sandbox-pwned-"+strconv.Itoa(os.Getpid())),
	}
	probeArgs := slices.Concat([]string{"read"}, mustRead, []string{"list"}, mustList, []string{"write"}, mustWrite,
		// What a's code may do: its own release, DATA_DIR.
		[]string{"read", filepath.Join(aRelease, "probe.sh"), "write", filepath.Join(aRelease, "scratch"), filepath.Join(aData, "scratch")})

	quoted := make([]string, len(probeArgs))
	for i, a := range probeArgs {
		quoted[i] = shellQuote(a)
	}
	newWorkdir(t, map[string]string{
		"probe.sh": sandboxProbe,
		"Procfile": "worker: sh probe.sh " + strings.Join(quoted, " ") + " > \"$DATA_DIR/report.new\"; mv \"$DATA_DIR/report.new\" \"$DATA_DIR/report\"; exec sleep 4343\n",
	}).mustPush(d, bob, "a")

	check := func(t *testing.T, out string) {
		t.Helper()
		for _, f := range mustRead {
			if !strings.Contains(out, "denied-read "+f+"\n") {
				t.Errorf("a's code read %s", f)
			}
		}
		for _, f := range mustList {
			if !strings.Contains(out, "denied-list "+f+"\n") {
				t.Errorf("a's code listed %s", f)
			}
		}
		for _, f := range mustWrite {
			if !strings.Contains(out, "denied-write "+f+"\n") {
				t.Errorf("a's code wrote %s", f)
			}
			if _, err := os.Stat(f); err == nil {
				t.Errorf("%s exists", f)
			}
		}
		for _, want := range []string{"READ " + filepath.Join(aRelease, "probe.sh"), "WROTE " + filepath.Join(aRelease, "scratch"), "WROTE " + filepath.Join(aData, "scratch")} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("a's code could not do what it may: no %q", want)
			}
		}
		if t.Failed() {
			t.Logf("probe output:\n%s", out)
		}
	}

	t.Run("worker", func(t *testing.T) {
		report := filepath.Join(aData, "report")
		eventually(t, 30*time.Second, func() error { _, err := os.Stat(report); return err })
		out, _ := os.ReadFile(report)
		check(t, string(out))
		if !strings.Contains(string(out), "uid 0\n") {
			t.Errorf("the worker did not run as root, so this is not Landlock alone:\n%s", out)
		}
	})

	t.Run("run", func(t *testing.T) {
		r := d.command(bob, "", append([]string{"run", "a", "--", "sh", "probe.sh"}, probeArgs...)...)
		if r.code != 0 {
			t.Fatalf("run: %s", r)
		}
		check(t, r.stdout)
		// Signals do not cross sandboxes either.
		if r := d.command(bob, "", "run", "a", "--", "kill", "-TERM", strconv.Itoa(bPID)); r.code == 0 {
			t.Errorf("a's code signalled b's worker: %s", r)
		}
		if pgrep(t, root, "4242") != bPID {
			t.Error("b's worker died")
		}
	})

	t.Run("doctor", func(t *testing.T) {
		out, _ := opsRun(t, nil, "doctor", "--root", root, "--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off")
		if l := opsDoctorLines(t, out)["sandbox"]; l[0] != "ok" || !strings.HasPrefix(l[1], "Landlock ABI ") {
			t.Errorf("doctor's sandbox line: %q\n%s", l, out)
		}
	})
}

// TestSandboxOff: with --sandbox off, hop3 says so at start, and app
// processes run unconfined, as they did before Landlock.
func TestSandboxOff(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--sandbox", "off", "--isolation", "off")
	if !strings.Contains(d.log(), "sandbox off") {
		t.Errorf("hop3 did not say the sandbox is off:\n%s", d.log())
	}
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, map[string]string{"Procfile": "worker: exec sleep 4444\n"}).mustPush(d, alice, "c")
	r := d.command(alice, "", "run", "c", "--", "cat", filepath.Join(root, "hop3.db"))
	if r.code != 0 {
		t.Errorf("unconfined run could not read hop3.db: %s", r)
	}
	out, _ := opsRun(t, []string{"HOP3_SANDBOX=off"}, "doctor", "--root", root, "--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off")
	if l := opsDoctorLines(t, out)["sandbox"]; l[0] != "warn" || !strings.Contains(l[1], "Landlock off") {
		t.Errorf("doctor's sandbox line: %q\n%s", l, out)
	}
}

// TestSandboxSocketLink: an app's socket directory holds web.sock, the
// link Caddy dials. The app owns that directory (its uid binds its socket
// there), so only Landlock stops it from pointing the link at Caddy's admin
// socket, which would open Caddy's admin API to anyone who asks its host.
// It may keep files and sockets there, but make or move in no link.
func TestSandboxSocketLink(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	if !strings.Contains(d.log(), "app processes confined with Landlock") {
		t.Skipf("hop3 does not confine apps on this kernel:\n%s", d.log())
	}
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, isolationApp("w serves")).mustPush(d, alice, "w")
	wantBody(t, d, "w.localhost", "/", "w serves")
	sock := filepath.Join(root, "run", "w", "web.sock")
	before, err := os.Readlink(sock)
	if err != nil {
		t.Fatal(err)
	}
	admin := filepath.Join(root, "caddy", "admin.sock")
	for _, argv := range [][]string{
		{"ln", "-sfn", admin, sock},
		{"ln", "-s", admin, sock + ".new"},
		{"mv", sock, sock + ".old"},
		// A link made in its release, then moved in.
		{"sh", "-c", "ln -s " + admin + " planted && mv -f planted " + sock},
	} {
		if r := d.command(alice, "", append([]string{"run", "w", "--"}, argv...)...); r.code == 0 {
			t.Errorf("%v in the socket directory succeeded: %s", argv, r)
		}
	}
	if after, err := os.Readlink(sock); err != nil || after != before {
		t.Fatalf("web.sock now %q (%v), was %q", after, err, before)
	}
	// Many requests at once, so Caddy dials afresh rather than reusing a
	// connection: all reach the app.
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	for i := range bodies {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, bodies[i], _ = tryGet(d.httpAddr, "w.localhost", "/config/")
		}(i)
	}
	wg.Wait()
	for _, b := range bodies {
		if b != "w serves" {
			t.Fatalf("GET w.localhost/config/ = %.200q", b)
		}
	}
}
