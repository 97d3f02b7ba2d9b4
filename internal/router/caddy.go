package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 10 * time.Second
	stopGrace    = 10 * time.Second
	startTimeout = 15 * time.Second
	pollInterval = 50 * time.Millisecond
)

// ProcessOptions says how to run a managed Caddy.
type ProcessOptions struct {
	Bin string   // caddy binary (a path, or a name looked up in PATH)
	Dir string   // <root>/caddy: boot.json, caddy.log, XDG config and data dirs
	Env []string // extra environment, e.g. GOMAXPROCS=1

	// Listeners are passed to every Caddy started (HTTPFD, HTTPSFD,
	// HTTP3FD and the alternate numbers); required when the router's
	// Options.ListenFDs is set, and left open by Stop: they belong to the
	// caller.
	Listeners *Listeners

	// User, when set, runs Caddy as this uid and gid, with no supplementary
	// groups and no capability but CAP_NET_BIND_SERVICE when it binds its
	// addresses itself (hop3 needs CAP_SETUID, CAP_SETGID and CAP_KILL:
	// root's, which the kernel drops when Caddy's uid is set).
	// Caddy then owns only its state; see StartCaddy for the layout.
	User *User
}

// User is a numeric uid and gid, which need no /etc/passwd entry.
type User struct{ UID, GID int }

// AdminSocket is where a managed Caddy binds its admin socket itself: in
// the last of OwnDirs when bindsAdmin.
func AdminSocket(dir string) string { return filepath.Join(dir, "admin", "admin.sock") }

// AdminSockets lists where a managed Caddy's admin socket may be, the one
// hop3 holds (held, outside dir) first: a tool that reaches a running
// hop3's Caddy (doctor) tries each.
func AdminSockets(held, dir string) []string { return []string{held, AdminSocket(dir)} }

// LogPath is the log of a managed Caddy: its output and its certificate
// events.
func LogPath(dir string) string { return filepath.Join(dir, "caddy.log") }

// OwnDirs are the directories of a managed Caddy's dir that are Caddy's
// own when it runs as its own user: its XDG config and data homes and,
// when it binds its admin socket itself (bindsAdmin), that socket's
// directory. A Caddy handed the socket hop3 holds needs none.
func OwnDirs(dir string, bindsAdmin bool) []string {
	own := []string{filepath.Join(dir, "config"), filepath.Join(dir, "data")}
	if bindsAdmin {
		own = append(own, filepath.Dir(AdminSocket(dir)))
	}
	return own
}

// Caddy is a Caddy process hop3 started and supervises: one goroutine owns
// it, restarts it with backoff when it dies, and restores every desired
// route in the restarted process's boot config.
type Caddy struct {
	po       ProcessOptions
	bin      string
	r        *Router
	logger   *slog.Logger
	sock     string // admin socket path; empty for a TCP admin address
	logPath  string
	bootPath string
	files    []*os.File // the inherited sockets, in fd order from 3

	ctx      context.Context // cancelled by Stop
	cancel   context.CancelFunc
	killNow  chan struct{} // closed when Stop's ctx ends before a graceful exit
	killOnce sync.Once
	done     chan struct{} // closed when the supervising goroutine returns

	mu       sync.Mutex
	pid      int
	restarts int
}

// proc is one run of the Caddy binary.
type proc struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	done    chan struct{} // closed once cmd.Wait returned; err is set then
	err     error
}

// StartCaddy starts `caddy run --config <Dir>/boot.json`, where boot.json is
// the full config of r's desired routes, and returns once the admin API
// answers. ctx bounds the start only; the process runs until Stop. Caddy
// runs in its own process group and is killed if hop3 dies, writes its
// output to <Dir>/caddy.log, and keeps its state in <Dir>/config and
// <Dir>/data instead of $HOME.
//
// With po.User, Caddy runs as that user, and the caller has laid out Dir:
// Caddy's group may enter it, OwnDirs belong to Caddy. StartCaddy checks
// that and writes boot.json readable by Caddy's group (0640); Caddy's
// output still goes to a log only hop3 can open, through the descriptor
// hop3 passes.
func StartCaddy(ctx context.Context, po ProcessOptions, r *Router, logger *slog.Logger) (*Caddy, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if r.Attached() {
		return nil, errors.New("start caddy: router is attached to an external caddy")
	}
	if !filepath.IsAbs(po.Dir) {
		return nil, fmt.Errorf("start caddy: dir %q is not absolute", po.Dir)
	}
	bin, err := exec.LookPath(po.Bin)
	if err != nil {
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	admin := r.Options().AdminListen
	if admin == "" {
		return nil, errors.New("start caddy: options have no admin listen address")
	}
	var sock string
	if s, ok := strings.CutPrefix(admin, "unix/"); ok {
		sock, _, _ = strings.Cut(s, "|")
	}
	var files []*os.File
	switch {
	case r.Options().ListenFDs:
		if err := po.Listeners.check(r.Options()); err != nil {
			return nil, fmt.Errorf("start caddy: %w", err)
		}
		if files, err = po.Listeners.files(); err != nil {
			return nil, fmt.Errorf("start caddy: %w", err)
		}
	case po.Listeners != nil:
		return nil, errors.New("start caddy: sockets were given but the options do not use them (ListenFDs)")
	}
	if err := prepareDir(po.Dir, po.User, sock == AdminSocket(po.Dir)); err != nil {
		closeFiles(files)
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	c := &Caddy{
		po:       po,
		bin:      bin,
		r:        r,
		logger:   logger.With("component", "caddy"),
		sock:     sock,
		logPath:  LogPath(po.Dir),
		bootPath: filepath.Join(po.Dir, "boot.json"),
		files:    files,
		killNow:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var first *proc
	n, err := r.restore(ctx, func(ctx context.Context, cfg []byte) error {
		var err error
		first, err = c.start(ctx, cfg)
		return err
	})
	if err != nil {
		c.cancel()
		closeFiles(files)
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	c.logger.Info("caddy started", "pid", first.pid, "routes", n, "admin", admin, "log", c.logPath)
	go c.supervise(first)
	return c, nil
}

// PID returns the process id of the running Caddy, or 0 while none runs.
func (c *Caddy) PID() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pid
}

// Restarts returns how many times Caddy was started again after dying.
func (c *Caddy) Restarts() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restarts
}

// LogPath returns the file Caddy's output goes to.
func (c *Caddy) LogPath() string { return c.logPath }

// Stop shuts Caddy down gracefully: SIGTERM to its process group, then
// SIGKILL after 10s, or as soon as ctx ends. Caddy is not restarted after.
func (c *Caddy) Stop(ctx context.Context) error {
	c.cancel()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
	}
	c.killOnce.Do(func() { close(c.killNow) })
	<-c.done
	return fmt.Errorf("stop caddy: killed: %w", ctx.Err())
}

// supervise owns the process: it restarts Caddy when it dies and stops it
// when Stop is called.
func (c *Caddy) supervise(p *proc) {
	defer close(c.done)
	defer closeFiles(c.files)
	delay := minBackoff
	for {
		select {
		case <-c.ctx.Done():
			c.terminate(p)
			c.setPID(0)
			return
		case <-p.done:
		}
		c.setPID(0)
		c.r.forget()
		// A process that ran for a while earns a fast restart again.
		if time.Since(p.started) > maxBackoff {
			delay = minBackoff
		}
		c.logger.Warn("caddy exited unexpectedly; restarting it and restoring every route",
			"pid", p.pid, "err", exitText(p.err), "ran", time.Since(p.started).Round(time.Millisecond),
			"restart_in", delay, "log", c.logPath)
		for {
			t := time.NewTimer(delay)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(delay*2, maxBackoff)
			np, n, err := c.restart()
			if err == nil {
				p = np
				c.logger.Info("caddy restarted; routes restored", "pid", p.pid, "routes", n, "log", c.logPath)
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.logger.Error("caddy restart failed", "err", err, "retry_in", delay, "log", c.logPath)
		}
	}
}

func (c *Caddy) restart() (*proc, int, error) {
	var np *proc
	n, err := c.r.restore(c.ctx, func(ctx context.Context, cfg []byte) error {
		var err error
		np, err = c.start(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	c.restarts++
	c.mu.Unlock()
	return np, n, nil
}

func (c *Caddy) setPID(pid int) {
	c.mu.Lock()
	c.pid = pid
	c.mu.Unlock()
}

// start writes the boot config, runs Caddy and waits until its admin API
// answers; Caddy applies the boot config before that.
func (c *Caddy) start(ctx context.Context, cfg []byte) (*proc, error) {
	if err := writeFileAtomic(c.bootPath, cfg, c.po.User); err != nil {
		return nil, err
	}
	if c.sock != "" {
		if err := clearStaleSocket(c.sock); err != nil {
			return nil, err
		}
	}
	logf, err := os.OpenFile(c.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open caddy log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(c.bin, "run", "--config", c.bootPath)
	cmd.Dir = c.po.Dir
	// Later entries win, so these override anything inherited.
	own := OwnDirs(c.po.Dir, false)
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+own[0], "XDG_DATA_HOME="+own[1])
	cmd.Env = append(cmd.Env, c.po.Env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = c.files
	// Go sets the parent-death signal after switching users: a change of
	// credentials would clear it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if u := c.po.User; u != nil {
		cmd.Env = append(cmd.Env, "HOME="+own[1])
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
		if c.files == nil {
			// A Caddy that binds its addresses itself may need ports
			// below 1024; it keeps that one capability.
			cmd.SysProcAttr.AmbientCaps = []uintptr{unix.CAP_NET_BIND_SERVICE}
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("run caddy: %w", err)
	}
	p := &proc{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := c.waitReady(ctx, p); err != nil {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.done
		return nil, err
	}
	c.setPID(p.pid)
	return p, nil
}

func (c *Caddy) waitReady(ctx context.Context, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		// GET /config/ waits for Caddy's config lock, which the boot load
		// holds until the servers run: an answer means routes are live.
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err := c.r.client.Get(pctx, "/config/", nil)
		pcancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("caddy exited during start (%s); log %s ends: %s", exitText(p.err), c.logPath, logTail(c.logPath))
		case <-ctx.Done():
			return fmt.Errorf("caddy admin API did not answer: %w; last error: %v; log %s", ctx.Err(), err, c.logPath)
		case <-t.C:
		}
	}
}

// terminate stops the process group: SIGTERM, then SIGKILL after the grace
// period or when Stop's context ends.
func (c *Caddy) terminate(p *proc) {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return
	case <-t.C:
		c.logger.Warn("caddy did not stop in time; killing it", "pid", p.pid, "grace", stopGrace)
	case <-c.killNow:
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	<-p.done
}

// clearStaleSocket removes a socket file left by a killed Caddy, after
// checking that nothing listens on it: Caddy can not bind over it.
func clearStaleSocket(sock string) error {
	fi, err := os.Lstat(sock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check admin socket: %w", err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("check admin socket: %s exists and is not a socket", sock)
	}
	conn, err := net.DialTimeout("unix", sock, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("check admin socket: %s is in use by another process", sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	return nil
}

// writeFileAtomic writes Caddy's boot config: readable by Caddy's group
// when it runs as its own user.
func writeFileAtomic(name string, data []byte, u *User) error {
	tmp := name + ".tmp"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write caddy boot config: %w", err)
	}
	_, err = f.Write(data)
	if err == nil && u != nil {
		if err = f.Chown(-1, u.GID); err == nil {
			err = f.Chmod(0o640)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write caddy boot config: %w", err)
	}
	return nil
}

// prepareDir makes Caddy's directories (see StartCaddy), or, when Caddy
// runs as its own user, checks the layout the caller made. bindsAdmin says
// Caddy binds its admin socket at AdminSocket(dir).
func prepareDir(dir string, u *User, bindsAdmin bool) error {
	if u == nil {
		for _, d := range append([]string{dir}, OwnDirs(dir, bindsAdmin)...) {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		return nil
	}
	if err := reachable(dir, *u); err != nil {
		return err
	}
	for _, d := range OwnDirs(dir, bindsAdmin) {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || !fi.IsDir() || int(st.Uid) != u.UID {
			return fmt.Errorf("%s is not a directory of caddy's user (uid %d)", d, u.UID)
		}
	}
	return nil
}

// reachable checks that u may enter dir and every directory above it: a
// Caddy that could not would fail to start with a less helpful message.
func reachable(dir string, u User) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		perm := fi.Mode().Perm()
		var x fs.FileMode = 0o001
		switch {
		case int(st.Uid) == u.UID:
			x = 0o100
		case int(st.Gid) == u.GID:
			x = 0o010
		}
		if perm&x == 0 {
			return fmt.Errorf("caddy runs as uid %d and can not enter %s (mode %04o, owner %d:%d): let others search it (chmod o+x) or choose a state directory it can reach", u.UID, d, perm, st.Uid, st.Gid)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// logTail returns the last lines of Caddy's log for error messages.
func logTail(name string) string {
	f, err := os.Open(name)
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	defer f.Close()
	const n = 2048
	if fi, err := f.Stat(); err == nil && fi.Size() > n {
		_, _ = f.Seek(fi.Size()-n, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, "\n")
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
