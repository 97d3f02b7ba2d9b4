package buildpacks

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// syncBuffer lets the test read what a still running command wrote.
type syncBuffer struct {
	ch chan string
}

func (b syncBuffer) Write(p []byte) (int, error) {
	b.ch <- string(p)
	return len(p), nil
}

func TestRunCancelKillsProcessGroup(t *testing.T) {
	t.Parallel()
	sh := needTool(t, "sh")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := syncBuffer{ch: make(chan string, 16)}
	done := make(chan error, 1)
	go func() {
		// The background sleep stands for a child the tool spawned, such as
		// a package build backend.
		done <- runCommand(ctx, command{label: "slow tool", argv: []string{sh, "-c", "sleep 300 & echo $!; wait"}}, out)
	}()
	var pid int
	select {
	case line := <-out.ch:
		var err error
		if pid, err = strconv.Atoi(strings.TrimSpace(line)); err != nil {
			t.Fatalf("bad pid %q", line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the command printed nothing")
	}
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "slow tool interrupted") {
		t.Errorf("error = %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d outlived the cancelled command", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRunFailure(t *testing.T) {
	t.Parallel()
	sh := needTool(t, "sh")
	var out bytes.Buffer
	err := runCommand(context.Background(), command{label: "npm ci", argv: []string{sh, "-c", "echo 'npm error broken' >&2; exit 3"}}, &out)
	if err == nil || err.Error() != "npm ci failed (exit status 3)" {
		t.Errorf("error = %v", err)
	}
	if out.String() != "npm error broken\n" {
		t.Errorf("output = %q", out.String())
	}
}

func TestLookTool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir+"/mytool", "#!/bin/sh\n")
	if _, err := lookTool("", "mytool", dir); err == nil {
		t.Error("found a file that is not executable")
	}
	if err := syscall.Chmod(dir+"/mytool", 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := lookTool("", "mytool", "relative:"+dir); err != nil || p != dir+"/mytool" {
		t.Errorf("lookTool = %q, %v", p, err)
	}
	if p, err := lookTool(dir+"/mytool", "other", ""); err != nil || p != dir+"/mytool" {
		t.Errorf("lookTool by path = %q, %v", p, err)
	}
	if _, err := lookTool("", "mytool", "relative"); !errors.Is(err, errNotFound) {
		t.Errorf("relative PATH entry used: %v", err)
	}
}

func TestPathExpansion(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	dir := t.TempDir()
	b := newBuilder(Spec{Dir: dir, Env: map[string]string{"PATH": "/opt/app/bin:$PATH"}}, dir)
	b.addRuntimePath("/envs/py-1/bin")
	b.finishEnv()
	if got, want := b.res.Env["PATH"], "/envs/py-1/bin:/opt/app/bin:/usr/bin:/bin"; got != want {
		t.Errorf("PATH = %q, want %q", got, want)
	}
}

// alive reports whether pid runs; a zombie waiting for a parent that does
// not reap (PID 1 in some containers) counts as dead.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z")
}
