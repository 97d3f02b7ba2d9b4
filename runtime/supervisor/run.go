package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// runWaitDelay bounds how long Run waits, after the process group is gone,
// for its output to reach stdout and stderr.
const runWaitDelay = 5 * time.Second

// Run runs spec.Command to completion in its own process group, wired to the
// given streams (nil means /dev/null), for one-off commands such as `run`
// and release commands. It is not supervised: no restart, no readiness, and
// it does not appear in List. When ctx ends the group gets SIGTERM, then
// SIGKILL after spec.StopTimeout. Run returns the exit code (128+signal for
// a process killed by a signal); the error is non-nil only when the command
// could not be started or ctx ended.
//
// Run returns once the process has exited even if stdin has not reached EOF;
// a read from stdin already under way ends when the reader returns.
func (s *Supervisor) Run(ctx context.Context, spec Spec, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	name := spec.Name
	if name == "" && len(spec.Command) > 0 {
		name = spec.Command[0]
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return -1, fmt.Errorf("run %s: empty command", name)
	}
	if spec.StopTimeout <= 0 {
		spec.StopTimeout = DefaultStopTimeout
	}
	cmd, err := newCmd(&spec, s.opts.SandboxExec)
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = runWaitDelay

	// exec's own stdin copy would make Wait wait for stdin's EOF, which an
	// interactive session may never send; this pipe is ours to close.
	var stdinR, stdinW *os.File
	switch in := stdin.(type) {
	case nil:
	case *os.File:
		cmd.Stdin = in
	default:
		if stdinR, stdinW, err = os.Pipe(); err != nil {
			return -1, fmt.Errorf("run %s: create stdin pipe: %w", name, err)
		}
		cmd.Stdin = stdinR
	}
	err = cmd.Start()
	if stdinR != nil {
		stdinR.Close()
	}
	if err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		return -1, fmt.Errorf("run %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	g := &group{pgid: pid}
	pidf, err := writePIDFile(s.opts.PIDDir, pid, name)
	if err != nil {
		s.logger.Warn("no pid file for one-off command", "name", name, "pid", pid, "err", err)
	}
	if stdinW != nil {
		go func() {
			_, _ = io.Copy(stdinW, stdin)
			stdinW.Close()
		}()
	}
	exited := make(chan *os.ProcessState, 1)
	go func() {
		waitExitedNoReap(pid)
		g.leaderExited()
		err := cmd.Wait()
		if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				s.logger.Warn("one-off command wait", "name", name, "err", err)
			}
		}
		exited <- cmd.ProcessState
	}()

	var ps *os.ProcessState
	var ctxErr error
	select {
	case ps = <-exited:
	case <-ctx.Done():
		ctxErr = ctx.Err()
		g.signal(syscall.SIGTERM)
		t := time.NewTimer(spec.StopTimeout)
		select {
		case ps = <-exited:
		case <-t.C:
			g.signal(syscall.SIGKILL)
			ps = <-exited
		}
		t.Stop()
	}
	if stdinW != nil {
		stdinW.Close()
	}
	if waitGroupGone(pid, groupGoneTimeout) {
		pidf.remove()
	}
	code := exitCode(ps)
	if ctxErr != nil {
		return code, fmt.Errorf("run %s: %w", name, ctxErr)
	}
	return code, nil
}

// exitCode follows the shell's convention: 128+n for death by signal n.
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
