package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as hop3 sandbox-exec: Landlock
// confines the process that asks, so each confined command runs in a
// process of its own.
const helperEnv = "HOP3_SANDBOX_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		p, argv, err := ParseArgs(os.Args[1:])
		if err == nil {
			err = Exec(p, argv)
		}
		fmt.Fprintln(os.Stderr, "sandbox-exec:", err)
		os.Exit(126)
	}
	os.Exit(m.Run())
}

func needLandlock(t *testing.T) {
	t.Helper()
	if InForce() == 0 {
		t.Skip("the kernel has no Landlock")
	}
}

// confined returns a command that runs argv confined to the system's paths
// and p.
func confined(p Policy, argv ...string) *exec.Cmd {
	sys := System()
	p.ReadOnly = append(p.ReadOnly, sys.ReadOnly...)
	p.ReadExec = append(p.ReadExec, sys.ReadExec...)
	p.ReadWrite = append(p.ReadWrite, sys.ReadWrite...)
	cmd := exec.Command(os.Args[0], slices.Concat(p.Args(), []string{"--"}, argv)...)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	return cmd
}

func run(t *testing.T, cmd *exec.Cmd) (string, int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// TestFileAccess runs real programs confined: each may do what its paths
// grant and nothing else, even as root.
func TestFileAccess(t *testing.T) {
	needLandlock(t)
	base := t.TempDir()
	dir := func(name string) string {
		d := filepath.Join(base, name)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "file"), []byte(name+"\n"), 0o644)
		os.WriteFile(filepath.Join(d, "prog"), []byte("#!/bin/sh\necho ran "+name+"\n"), 0o755)
		return d
	}
	ro, rx, rw, outside := dir("ro"), dir("rx"), dir("rw"), dir("outside")
	shared := dir("shared")
	os.Symlink(rw+"/file", shared+"/link")
	os.Symlink("/etc/hostname", rw+"/planted")
	p := Policy{ReadOnly: []string{ro}, ReadExec: []string{rx}, ReadWrite: []string{rw, filepath.Join(base, "missing")}, Shared: []string{shared}}
	bind := `import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1]); print("bound")`

	cases := []struct {
		name   string
		argv   []string
		code   int
		output string
	}{
		{"read inside ro", []string{"cat", ro + "/file"}, 0, "ro\n"},
		{"read inside rw", []string{"cat", rw + "/file"}, 0, "rw\n"},
		{"read outside", []string{"cat", outside + "/file"}, 1, "Permission denied"},
		{"list outside", []string{"ls", outside}, 2, "Permission denied"},
		{"read hop3-like secret", []string{"cat", "/etc/shadow"}, 1, "Permission denied"},
		{"write inside rw", []string{"sh", "-c", "echo x > " + rw + "/new && cat " + rw + "/new"}, 0, "x\n"},
		{"remove inside rw", []string{"rm", rw + "/file"}, 0, ""},
		{"write inside ro", []string{"sh", "-c", "echo x > " + ro + "/new"}, 2, "Permission denied"},
		{"overwrite inside rx", []string{"sh", "-c", "echo x > " + rx + "/file"}, 2, "Permission denied"},
		{"write outside", []string{"sh", "-c", "echo x > " + outside + "/new"}, 2, "Permission denied"},
		{"write /tmp", []string{"sh", "-c", "echo x > /tmp/hop3-sandbox-test-" + strconv.Itoa(os.Getpid())}, 2, "Permission denied"},
		{"exec from rx", []string{rx + "/prog"}, 0, "ran rx\n"},
		{"exec from rw", []string{rw + "/prog"}, 0, "ran rw\n"},
		{"exec from ro", []string{"sh", "-c", ro + "/prog"}, 126, "Permission denied"},
		{"device node in rw", []string{"mknod", rw + "/disk", "b", "8", "0"}, 1, "Permission denied"},
		{"bind in shared", []string{"/usr/bin/python3", "-c", bind, shared + "/s.sock"}, 0, "bound"},
		{"bind outside", []string{"/usr/bin/python3", "-c", bind, outside + "/s.sock"}, 1, "PermissionError"},
		{"file in shared", []string{"sh", "-c", "echo x > " + shared + "/f.tmp && mv " + shared + "/f.tmp " + shared + "/f && cat " + shared + "/f"}, 0, "x\n"},
		{"remove in shared", []string{"rm", shared + "/file"}, 0, ""},
		{"link in shared", []string{"ln", "-s", "/etc/hostname", shared + "/new-link"}, 1, "Permission denied"},
		{"replace a link in shared", []string{"ln", "-sfn", "/etc/hostname", shared + "/link"}, 1, "Permission denied"},
		{"rename a link in shared", []string{"mv", shared + "/link", shared + "/moved"}, 1, "Permission denied"},
		{"move a link into shared", []string{"mv", rw + "/planted", shared + "/link"}, 1, ""},
		{"directory in shared", []string{"mkdir", shared + "/d"}, 1, "Permission denied"},
		{"exec from shared", []string{"sh", "-c", shared + "/prog"}, 126, "Permission denied"},
		{"rename between rw dirs", []string{"sh", "-c", "mkdir " + rw + "/a " + rw + "/b && echo m > " + rw + "/a/m && mv " + rw + "/a/m " + rw + "/b/m && cat " + rw + "/b/m"}, 0, "m\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.argv[0]); strings.HasPrefix(tc.argv[0], "/") && err != nil {
				t.Skipf("no %s", tc.argv[0])
			}
			out, code := run(t, confined(p, tc.argv...))
			if code != tc.code || !strings.Contains(out, tc.output) {
				t.Fatalf("%v: exit %d %q, want exit %d and %q", tc.argv, code, out, tc.code, tc.output)
			}
		})
	}
	if _, err := os.Stat("/tmp/hop3-sandbox-test-" + strconv.Itoa(os.Getpid())); err == nil {
		t.Error("a confined process wrote /tmp")
	}
	if _, err := os.Stat(outside + "/new"); err == nil {
		t.Error("a confined process wrote outside its paths")
	}
}

// TestExecKeepsProcess: the wrapper execs in place, so the command has the
// wrapper's pid, environment and working directory, and its exit status
// and death by a signal are seen by the parent as its own.
func TestExecKeepsProcess(t *testing.T) {
	needLandlock(t)
	wd := t.TempDir()

	cmd := confined(Policy{ReadWrite: []string{wd}}, "sh", "-c", `echo "$$ $HOP3_TEST_VAR $(pwd)"`)
	cmd.Env = append(cmd.Env, "HOP3_TEST_VAR=kept value")
	cmd.Dir = wd
	out, code := run(t, cmd)
	if want := fmt.Sprintf("%d kept value %s\n", cmd.Process.Pid, wd); code != 0 || out != want {
		t.Errorf("got exit %d %q, want %q", code, out, want)
	}

	for _, c := range []int{0, 1, 3, 42, 255} {
		if _, code := run(t, confined(Policy{}, "sh", "-c", "exit "+strconv.Itoa(c))); code != c {
			t.Errorf("exit %d came back as %d", c, code)
		}
	}

	err := confined(Policy{}, "sh", "-c", "kill -TERM $$; sleep 5").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("self-killed command: %v", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("self-killed command ended with %v, want signal TERM", ee)
	}

	// A signal from outside reaches the command itself.
	cmd = confined(Policy{}, "sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	err = cmd.Wait()
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGINT {
		t.Errorf("SIGINT to the command: %v", err)
	}

	out, code = run(t, confined(Policy{}, "no-such-command-hop3"))
	if code != 126 || !strings.Contains(out, "not found") {
		t.Errorf("missing command: exit %d %q", code, out)
	}
}

// TestOtherSandboxes: a confined process cannot read the environment of a
// process in another sandbox (another app's secrets) nor signal a process
// outside its own.
func TestOtherSandboxes(t *testing.T) {
	needLandlock(t)
	other := confined(Policy{}, "sleep", "30")
	other.Env = append(other.Env, "HOP3_TEST_SECRET=s3cret")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	plain := exec.Command("sleep", "30")
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { plain.Process.Kill(); plain.Wait() }()
	time.Sleep(200 * time.Millisecond)

	for _, pid := range []int{other.Process.Pid, plain.Process.Pid} {
		out, code := run(t, confined(Policy{}, "cat", fmt.Sprintf("/proc/%d/environ", pid)))
		if code == 0 || strings.Contains(out, "s3cret") {
			t.Errorf("read /proc/%d/environ: exit %d %q", pid, code, out)
		}
		if _, code := run(t, confined(Policy{}, "kill", "-0", strconv.Itoa(pid))); code == 0 {
			t.Errorf("signalled pid %d outside the sandbox", pid)
		}
	}
	// Its own /proc/self stays readable (runtimes read their status there).
	if out, code := run(t, confined(Policy{}, "sh", "-c", "exec cat /proc/self/status")); code != 0 || !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("own /proc/self/status: exit %d %q", code, out)
	}
}

func TestArgs(t *testing.T) {
	p := Policy{ReadOnly: []string{"/a", "/b"}, ReadExec: []string{"/c"}, ReadWrite: []string{"/d e"}, Shared: []string{"/f"}}
	args := p.Args()
	want := []string{"--ro", "/a", "--ro", "/b", "--rx", "/c", "--rw", "/d e", "--shared", "/f"}
	if !reflect.DeepEqual(args, want) {
		t.Fatalf("Args = %q, want %q", args, want)
	}
	got, argv, err := ParseArgs(append(args, "--", "sh", "-c", "--ro"))
	if err != nil || !reflect.DeepEqual(got, p) || !reflect.DeepEqual(argv, []string{"sh", "-c", "--ro"}) {
		t.Fatalf("ParseArgs = %+v %q %v", got, argv, err)
	}
	for _, bad := range [][]string{
		nil,
		{"--ro", "/a"},
		{"--ro"},
		{"--ro", "--", "x"},
		{"--ro", "relative", "--", "x"},
		{"--rw", "", "--", "x"},
		{"--bogus", "/a", "--", "x"},
		{"--ro", "/a", "--"},
	} {
		if _, _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q) succeeded", bad)
		}
	}
}

// TestUnixSocketsNotGuarded records a limit: a confined process can still
// connect to a unix socket outside its paths (hop3's control socket, Caddy's
// admin socket), since hop3 asks for no ABI 9 right. Their owner and mode
// are what guard them.
func TestUnixSocketsNotGuarded(t *testing.T) {
	needLandlock(t)
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 to connect with")
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hello\n"))
			c.Close()
		}
	}()
	out, code := run(t, confined(Policy{}, "/usr/bin/python3", "-c",
		`import socket, sys; c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); print(c.recv(6).decode(), end="")`, sock))
	if code != 0 || out != "hello\n" {
		t.Fatalf("connect from the sandbox: exit %d %q (if this is now refused, update README's limits)", code, out)
	}
}
