package supervisor

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hop3/runtime/sandbox"
)

// recordingWrapper writes a stand-in for hop3 sandbox-exec that records
// its arguments, one per line, and execs the command after "--".
func recordingWrapper(t *testing.T) (wrapper, record string) {
	dir := t.TempDir()
	wrapper, record = filepath.Join(dir, "wrap"), filepath.Join(dir, "args")
	script := "#!/bin/sh\nfor a in \"$@\"; do echo \"$a\"; done >> " + record + "\necho --- >> " + record +
		"\nwhile [ \"$1\" != -- ]; do shift; done\nshift\nexec \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, record
}

// TestSandboxWrapping: a Spec with a Sandbox runs through the wrapper, with
// its paths and the resolved command, when the supervisor has one; without
// either it runs directly. The wrapper execs in place, so the supervisor's
// pid, exit status and terminal are the command's.
func TestSandboxWrapping(t *testing.T) {
	t.Parallel()
	sb := &Sandbox{ReadOnly: []string{"/ro"}, ReadWrite: []string{"/rw1", "/rw2"}, ReadExec: []string{"/rx"}, Shared: []string{"/shared"}}
	wantArgs := func(cmd ...string) string {
		return strings.Join(append([]string{"--ro", "/ro", "--rx", "/rx", "--rw", "/rw1", "--rw", "/rw2", "--shared", "/shared", "--"}, cmd...), "\n") + "\n---\n"
	}
	cases := []struct {
		name    string
		wrapper bool
		sandbox *Sandbox
		wrapped bool
	}{
		{"sandbox and wrapper", true, sb, true},
		{"no sandbox", true, nil, false},
		{"no wrapper", false, sb, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wrapper, record := recordingWrapper(t)
			opts := Options{}
			if tc.wrapper {
				opts.SandboxExec = []string{wrapper}
			}
			s, _ := newTestSupervisor(t, opts)
			dir := t.TempDir()
			var want strings.Builder

			// Supervised: the pid the supervisor knows is the command's.
			pidFile := filepath.Join(dir, "pid")
			spec := Spec{Name: "w", Command: []string{"sh", "-c", "echo $$ > " + pidFile + "; exec sleep 100"}, Restart: true, Sandbox: tc.sandbox}
			if err := s.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "pid file", func() bool { return strings.HasSuffix(readFile(t, pidFile), "\n") })
			st, _ := s.Status("w")
			if got := strings.TrimSpace(readFile(t, pidFile)); got != strconv.Itoa(st.PID) {
				t.Errorf("command pid %s, supervisor's %d", got, st.PID)
			}
			sh, err := resolveCommand("sh", "", nil)
			if err != nil {
				t.Fatal(err)
			}
			want.WriteString(wantArgs(sh, "-c", spec.Command[2]))

			// One-off: the exit status is the command's.
			code, err := s.Run(context.Background(), Spec{Name: "r", Command: []string{"/bin/sh", "-c", "exit 9"}, Sandbox: tc.sandbox}, nil, io.Discard, io.Discard)
			if err != nil || code != 9 {
				t.Errorf("run = %d, %v; want 9", code, err)
			}
			want.WriteString(wantArgs("/bin/sh", "-c", "exit 9"))

			// Terminal: the command still has the terminal.
			term := &fakeTerm{in: strings.NewReader("")}
			code, err = s.RunTerminal(context.Background(), Spec{Name: "t", Command: []string{"/bin/sh", "-c", "test -t 0 && echo tty yes"}, Sandbox: tc.sandbox}, term, WinSize{Cols: 80, Rows: 24}, nil)
			if err != nil || code != 0 || !strings.Contains(term.String(), "tty yes") {
				t.Errorf("terminal = %d, %v, %q", code, err, term.String())
			}
			want.WriteString(wantArgs("/bin/sh", "-c", "test -t 0 && echo tty yes"))

			got, _ := os.ReadFile(record)
			if !tc.wrapped {
				want.Reset()
			}
			if string(got) != want.String() {
				t.Errorf("wrapper got:\n%s\nwant:\n%s", got, want.String())
			}
		})
	}
}

// TestSandboxExecHelper is hop3 sandbox-exec for TestSandboxConfines: the
// test binary confines itself and execs the command.
func TestSandboxExecHelper(t *testing.T) {
	if os.Getenv("HOP3_SUPERVISOR_SANDBOX_HELPER") != "1" {
		t.Skip("helper process only")
	}
	p, argv, err := sandbox.ParseArgs(flag.Args())
	if err == nil {
		err = sandbox.Exec(p, argv)
	}
	fmt.Fprintln(os.Stderr, "sandbox-exec:", err)
	os.Exit(126)
}

// TestSandboxConfines runs supervised and one-off processes under Landlock
// through the supervisor: each reads and writes only where its Sandbox
// says, and the same Spec without a wrapper is not confined.
func TestSandboxConfines(t *testing.T) {
	t.Parallel()
	if sandbox.InForce() == 0 {
		t.Skip("the kernel has no Landlock")
	}
	s, _ := newTestSupervisor(t, Options{SandboxExec: []string{os.Args[0], "-test.run=^TestSandboxExecHelper$", "--"}})
	plain, _ := newTestSupervisor(t, Options{})
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	rw := t.TempDir()
	sys := sandbox.System()
	sb := &Sandbox{ReadOnly: sys.ReadOnly, ReadExec: sys.ReadExec, ReadWrite: append(sys.ReadWrite, rw)}
	env := []string{"PATH=/usr/bin:/bin", "HOP3_SUPERVISOR_SANDBOX_HELPER=1"}

	var out strings.Builder
	code, err := s.Run(context.Background(), Spec{Name: "r", Command: []string{"cat", secret}, Env: env, Sandbox: sb}, nil, &out, &out)
	if err != nil || code != 1 || !strings.Contains(out.String(), "Permission denied") {
		t.Errorf("confined cat of a file outside: %d, %v, %q", code, err, out.String())
	}
	out.Reset()
	code, err = plain.Run(context.Background(), Spec{Name: "r", Command: []string{"cat", secret}, Env: env, Sandbox: sb}, nil, &out, &out)
	if err != nil || code != 0 || out.String() != "s3cret\n" {
		t.Errorf("unconfined cat: %d, %v, %q", code, err, out.String())
	}

	// A supervised worker reports what it could do into its writable dir.
	report := filepath.Join(rw, "report")
	script := fmt.Sprintf(`cat %s >/dev/null 2>&1 && echo read-secret >> %s; echo x > %s.copy 2>/dev/null && echo wrote-outside >> %s; echo ok >> %s; exec sleep 100`,
		secret, report, secret, report, report)
	if err := s.Start(context.Background(), Spec{Name: "w", Command: []string{"sh", "-c", script}, Env: env, Restart: true, Sandbox: sb}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "report", func() bool { return strings.Contains(readFile(t, report), "ok") })
	if got := readFile(t, report); got != "ok\n" {
		t.Errorf("confined worker: %q, want only ok", got)
	}
	if _, err := os.Stat(secret + ".copy"); err == nil {
		t.Error("a confined worker wrote outside its sandbox")
	}
}
