package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"hop3/runtime/sandbox"
)

// TestSandboxExecHelper is `hop3 sandbox-exec ARGS` for the tests below:
// Landlock confines the process that asks, so it runs in one of its own.
func TestSandboxExecHelper(t *testing.T) {
	if os.Getenv("HOP3_SANDBOX_EXEC_HELPER") != "1" {
		t.Skip("helper process only")
	}
	os.Exit(run(context.Background(), append([]string{"sandbox-exec"}, flag.Args()...), os.Stdin, os.Stdout, os.Stderr))
}

func sandboxExecCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestSandboxExecHelper$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), "HOP3_SANDBOX_EXEC_HELPER=1")
	return cmd
}

// systemArgs are the options for the system's paths.
func systemArgs() []string { return sandbox.System().Args() }

func runSandboxExec(t *testing.T, cmd *exec.Cmd) (string, int, syscall.WaitStatus) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%v: %v", cmd.Args, err)
	}
	return out.String(), cmd.ProcessState.ExitCode(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestSandboxExec(t *testing.T) {
	if sandbox.InForce() == 0 {
		t.Skip("the kernel has no Landlock")
	}
	base := t.TempDir()
	mine, other := filepath.Join(base, "mine"), filepath.Join(base, "other")
	for _, d := range []string{mine, other} {
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "file"), []byte(filepath.Base(d)+"\n"), 0o644)
	}
	opts := append(systemArgs(), "--rw", mine)
	cases := []struct {
		name   string
		argv   []string
		code   int
		output string
	}{
		{"read inside", []string{"cat", mine + "/file"}, 0, "mine\n"},
		{"read outside", []string{"cat", other + "/file"}, 1, "Permission denied"},
		{"write inside", []string{"sh", "-c", "echo w > " + mine + "/w && cat " + mine + "/w"}, 0, "w\n"},
		{"write outside", []string{"sh", "-c", "echo w > " + other + "/w"}, 2, "Permission denied"},
		{"exit status", []string{"sh", "-c", "exit 3"}, 3, ""},
		{"command not found", []string{"no-such-command-hop3"}, 127, "hop3: sandbox-exec: exec: \"no-such-command-hop3\": executable file not found"},
		{"not executable", []string{other + "/file"}, 126, "hop3: sandbox-exec: "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, code, _ := runSandboxExec(t, sandboxExecCmd(append(append(opts, "--"), tc.argv...)...))
			if code != tc.code || !strings.Contains(out, tc.output) {
				t.Fatalf("%v: exit %d %q, want %d and %q", tc.argv, code, out, tc.code, tc.output)
			}
		})
	}
	if _, err := os.Stat(other + "/w"); err == nil {
		t.Error("sandbox-exec let a command write outside its paths")
	}

	t.Run("process kept", func(t *testing.T) {
		cmd := sandboxExecCmd(append(append(opts, "--"), "sh", "-c", `echo "$$ $HOP3_TEST_VAR $(pwd)"; read line; echo "in: $line"`)...)
		cmd.Env = append(cmd.Env, "HOP3_TEST_VAR=kept")
		cmd.Dir = mine
		cmd.Stdin = strings.NewReader("typed\n")
		out, code, _ := runSandboxExec(t, cmd)
		if want := strconv.Itoa(cmd.Process.Pid) + " kept " + mine + "\nin: typed\n"; code != 0 || out != want {
			t.Errorf("exit %d %q, want %q", code, out, want)
		}
	})
	t.Run("signal", func(t *testing.T) {
		_, _, ws := runSandboxExec(t, sandboxExecCmd(append(append(opts, "--"), "sh", "-c", "kill -KILL $$")...))
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Errorf("wait status %v, want killed", ws)
		}
	})
}

func TestSandboxExecUsage(t *testing.T) {
	for _, args := range [][]string{{}, {"--ro", "/usr"}, {"--bogus", "/x", "--", "true"}, {"--ro", "usr", "--", "true"}} {
		var stderr bytes.Buffer
		code := run(context.Background(), append([]string{"sandbox-exec"}, args...), nil, io.Discard, &stderr)
		if code != 2 || !strings.HasPrefix(stderr.String(), "hop3: sandbox-exec: ") || strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("sandbox-exec %q: exit %d %q, want 2 and one line", args, code, stderr.String())
		}
	}
}

func TestSandboxWrapper(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if got, err := sandboxWrapper("off", logger); got != nil || err != nil {
		t.Errorf("off: %q, %v", got, err)
	}
	if _, err := sandboxWrapper("on", logger); err == nil {
		t.Error("a bad mode was accepted")
	}
	got, err := sandboxWrapper("auto", logger)
	want := sandboxExecArgv
	if sandbox.InForce() == 0 {
		want = nil
	}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("auto: %q, %v; want %q", got, err, want)
	}
}

// TestSandboxExecAsAppUser: the wrapper works for a process already
// switched to another user, as app processes are. /proc/self/exe reaches
// the hop3 binary without a search right on the directory it is in (here
// the test's private build directory: naming the binary by its path fails
// with "permission denied"), and paths the user cannot reach are skipped,
// not fatal.
func TestSandboxExecAsAppUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	if sandbox.InForce() == 0 {
		t.Skip("the kernel has no Landlock")
	}
	dir, err := os.MkdirTemp("", "hop3-sandbox-user")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte("world-readable\n"), 0o644)
	private := filepath.Join(t.TempDir(), "private")
	os.MkdirAll(private, 0o700)

	asNobody := func(args ...string) *exec.Cmd {
		cmd := exec.Command(sandboxExecArgv[0], append([]string{"-test.run=^TestSandboxExecHelper$", "--"}, args...)...)
		cmd.Env = append(os.Environ(), "HOP3_SANDBOX_EXEC_HELPER=1")
		cmd.Dir = "/"
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		return cmd
	}
	cmd := asNobody(append(systemArgs(), "--rw", dir, "--ro", private, "--", "sh", "-c", "id -u; cat "+open+"; echo w > "+dir+"/w && echo wrote")...)
	if out, code, _ := runSandboxExec(t, cmd); code != 0 || out != "65534\nworld-readable\nwrote\n" {
		t.Fatalf("as uid 65534: exit %d %q", code, out)
	}
	// Confined all the same: a world-readable file outside is closed.
	if out, code, _ := runSandboxExec(t, asNobody(append(systemArgs(), "--", "cat", open)...)); code != 1 || !strings.Contains(out, "Permission denied") {
		t.Fatalf("as uid 65534, outside: exit %d %q", code, out)
	}
}
