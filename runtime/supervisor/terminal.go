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

	"golang.org/x/sys/unix"
)

// WinSize is a terminal's size in characters.
type WinSize struct{ Cols, Rows int }

// RunTerminal is Run on a pseudo-terminal: the command gets a terminal of
// its own (a new session whose controlling tty is the pty), as an
// interactive `ssh -t` user expects, with term carrying the keystrokes in
// and the screen out. resize, when not nil, delivers window size changes.
func (s *Supervisor) RunTerminal(ctx context.Context, spec Spec, term io.ReadWriter, size WinSize, resize <-chan WinSize) (int, error) {
	if len(spec.Command) == 0 {
		return -1, errors.New("run terminal: no command")
	}
	master, slave, err := openPTY()
	if err != nil {
		return -1, fmt.Errorf("run terminal: %w", err)
	}
	defer master.Close()
	setWinSize(master, size)
	cmd, err := newCmd(&spec, s.opts.SandboxExec)
	if err != nil {
		master.Close()
		slave.Close()
		return -1, fmt.Errorf("run terminal: %w", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	// Setsid makes the command a session (and group) leader, so the pty can
	// be its controlling terminal and the whole session can be signalled.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL,
		Credential: cmd.SysProcAttr.Credential}
	if u := spec.User; u != nil {
		// The terminal is the user's own, as login(1) makes it: another
		// app must not read or write it.
		if err := slave.Chown(int(u.UID), int(u.GID)); err != nil {
			master.Close()
			slave.Close()
			return -1, fmt.Errorf("run terminal: give the terminal to uid %d: %w", u.UID, err)
		}
		if err := slave.Chmod(0o620); err != nil {
			master.Close()
			slave.Close()
			return -1, fmt.Errorf("run terminal: %w", err)
		}
	}
	if err := cmd.Start(); err != nil {
		slave.Close()
		return -1, fmt.Errorf("run terminal: %w", err)
	}
	slave.Close()
	pgid := cmd.Process.Pid
	go io.Copy(master, term)
	out := make(chan struct{})
	go func() {
		io.Copy(term, master) // ends with EIO once the last writer closes
		close(out)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	for done := false; !done; {
		select {
		case sz, ok := <-resize:
			if !ok {
				resize = nil
				continue
			}
			setWinSize(master, sz)
		case werr = <-waited:
			done = true
		case <-ctx.Done():
			syscall.Kill(-pgid, syscall.SIGTERM)
			select {
			case werr = <-waited:
			case <-time.After(stopTimeout(spec)):
				syscall.Kill(-pgid, syscall.SIGKILL)
				werr = <-waited
			}
			done = true
		}
	}
	// Let the last output reach the user, but never wait on a stray
	// background process that keeps the pty open.
	select {
	case <-out:
	case <-time.After(500 * time.Millisecond):
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	return exitStatus(werr)
}

func stopTimeout(spec Spec) time.Duration {
	if spec.StopTimeout > 0 {
		return spec.StopTimeout
	}
	return DefaultStopTimeout
}

// exitStatus turns Wait's error into an exit code, 128+n for a signal.
func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return -1, err
}

func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty number: %w", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

func setWinSize(f *os.File, sz WinSize) {
	if sz.Cols <= 0 || sz.Rows <= 0 {
		return
	}
	unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(sz.Rows), Col: uint16(sz.Cols)})
}
