package supervisor

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// group is the process group of one spawned command. Its leader's pid is
// the pgid. Signals go to the whole group, and only while the leader is
// unreaped: until then the pgid cannot belong to anyone else, so a late
// signal can never hit an unrelated process that reused the number.
type group struct {
	pgid int

	mu     sync.Mutex
	exited bool
}

// signal sends sig to every process of the group; a no-op once the leader
// has exited, because its remnants were killed at that moment.
func (g *group) signal(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.exited {
		return
	}
	_ = syscall.Kill(-g.pgid, sig)
}

// leaderExited marks the leader as dead (not yet reaped) and kills whatever
// is left of its group: children of a shell, workers of a Granian master.
func (g *group) leaderExited() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.exited = true
	_ = syscall.Kill(-g.pgid, syscall.SIGKILL)
}

// waitExitedNoReap blocks until pid has exited, leaving it a zombie so its
// pid (and so its pgid) stays reserved until cmd.Wait reaps it.
func waitExitedNoReap(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return
		}
	}
}

// groupAlive reports whether any process of the group is still alive.
// Zombies do not count: orphans are reaped by pid 1, which may take its time.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	return hasLiveMember(pgid)
}

// hasLiveMember scans /proc for a process of group pgid that is not a zombie.
func hasLiveMember(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell: assume alive, callers bound their waits
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		if st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			return true
		}
	}
	return false
}

// waitGroupGone polls until no live process is left in the group, up to
// timeout. Polling is the only way: the members are not our children.
func waitGroupGone(pgid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat holds the fields of /proc/<pid>/stat we use.
type procStat struct {
	state byte
	pgrp  int
	start uint64 // clock ticks after boot
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(string(b))
}

// parseProcStat parses a /proc/<pid>/stat line. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func parseProcStat(s string) (procStat, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procStat{}, errors.New("parse stat: no command field")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state), f[2] field 5 (pgrp), f[19] field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return procStat{}, errors.New("parse stat: too few fields")
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat pgrp: %w", err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse stat starttime: %w", err)
	}
	return procStat{state: f[0][0], pgrp: pgrp, start: start}, nil
}

// pidFile records a running group so that CleanupOrphans can find it after
// hop3 died. It holds the pgid and the leader's start time, which together
// identify the group even if the pid number is reused later.
type pidFile struct {
	path string
}

func writePIDFile(dir string, pgid int, name string) (*pidFile, error) {
	if dir == "" {
		return nil, nil
	}
	st, err := readProcStat(pgid)
	if err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(pgid)+".pid")
	content := fmt.Sprintf("%d %d %s\n", pgid, st.start, strconv.Quote(name))
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("write pid file: %w", err)
	}
	return &pidFile{path: path}, nil
}

func (p *pidFile) remove() {
	if p == nil {
		return
	}
	// A file left behind is harmless: CleanupOrphans checks the start time.
	_ = os.Remove(p.path)
}

func parsePIDFile(b []byte) (pgid int, start uint64, err error) {
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0, 0, errors.New("parse pid file: too few fields")
	}
	pgid, err = strconv.Atoi(f[0])
	if err != nil || pgid <= 1 {
		return 0, 0, fmt.Errorf("parse pid file: bad pgid %q", f[0])
	}
	start, err = strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse pid file: bad start time %q", f[1])
	}
	return pgid, start, nil
}

// resolveCommand finds the executable for argv0 the way a shell would, but
// in the PATH of the process's own environment: apps put their venv or
// buildpack bin directories there, not in hop3's.
func resolveCommand(argv0, dir string, env []string) (string, error) {
	if argv0 == "" {
		return "", errors.New("empty command")
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return argv0, nil
	}
	path, found := "", false
	if env == nil {
		path, found = os.LookupEnv("PATH")
	} else {
		for _, kv := range env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				path, found = v, true
			}
		}
	}
	if !found {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, argv0)
		if !filepath.IsAbs(p) && dir != "" {
			p = filepath.Join(dir, p)
		}
		if checkExecutable(p) == nil {
			if !filepath.IsAbs(p) {
				if abs, err := filepath.Abs(p); err == nil {
					p = abs
				}
			}
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: executable file not found in $PATH", argv0)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", p)
	}
	return nil
}

// newCmd builds the exec.Cmd for spec in a new process group. Pdeathsig
// kills the leader if hop3 dies; its children are found again through the
// pid files (CleanupOrphans). The kernel ties Pdeathsig to the forking
// thread, and Go only ends a thread when a goroutine exits while locked to
// it (runtime.LockOSThread), which hop3 must not do.
func newCmd(spec *Spec, sandboxExec []string) (*exec.Cmd, error) {
	path, err := resolveCommand(spec.Command[0], spec.Dir, spec.Env)
	if err != nil {
		return nil, err
	}
	path, args := wrapSandbox(spec, sandboxExec, path)
	cmd := &exec.Cmd{
		Path: path,
		Args: args,
		Dir:  spec.Dir,
		Env:  spec.Env,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:    true,
			Pdeathsig:  syscall.SIGKILL,
			Credential: sysCredential(spec.User),
		},
	}
	return cmd, nil
}

// sysCredential turns a Credential into the kernel's form. NoSetGroups
// would keep hop3's own supplementary groups: the empty list drops them.
func sysCredential(c *Credential) *syscall.Credential {
	if c == nil {
		return nil
	}
	return &syscall.Credential{Uid: c.UID, Gid: c.GID, Groups: []uint32{}}
}

// exitDescription renders how a process ended: "exit status 3",
// "signal: killed".
func exitDescription(ps *os.ProcessState, err error) string {
	if ps != nil {
		return ps.String()
	}
	if err != nil {
		return err.Error()
	}
	return "unknown"
}
