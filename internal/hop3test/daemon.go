package hop3test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options say how to start `hop3 serve`. Only Bin and Root are required.
type Options struct {
	Bin      string   // the hop3 binary (Build)
	Root     string   // --root; ShortTemp keeps socket paths short
	HTTPAddr string   // --http-addr; "" is 127.0.0.1:0
	Env      []string // added to hop3's environment
	Args     []string // more flags for hop3 serve, after the harness's own
	CaddyBin string   // --caddy-bin; "" finds it (FindTool)
	UVBin    string   // --uv; "" finds it (FindTool)
	CacheDir string   // --cache-dir; "" is SharedCache()
	LogPath  string   // hop3's stderr, appended; "" is <root>/hop3-test.log
	// ProcessGroup starts hop3 in a process group of its own, killed with
	// the caller, and Stop kills the group when hop3 will not stop.
	ProcessGroup bool
}

// ReadyTimeout bounds how long hop3 may take to print its ready line.
const ReadyTimeout = 90 * time.Second

// Daemon is one running `hop3 serve`.
type Daemon struct {
	Bin      string
	Root     string
	SSHPort  string            // loopback port of the SSH server
	HTTPAddr string            // host:port of its Caddy's HTTP listener
	Ready    map[string]string // every key=value of the ready line ("ssh", "http", "https", "root", "metrics", ...)
	Cmd      *exec.Cmd
	LogPath  string
	group    bool
	done     chan struct{}
}

// readyField matches the key=value pairs of hop3's ready line.
var readyField = regexp.MustCompile(`(\w+)=(\S+)`)

// ParseReady returns the fields of a line hop3 prints when it serves, and
// whether line is one.
func ParseReady(line string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(line, "hop3 ready: ")
	if !ok {
		return nil, false
	}
	fields := map[string]string{}
	for _, m := range readyField.FindAllStringSubmatch(rest, -1) {
		fields[m[1]] = m[2]
	}
	if fields["ssh"] == "" || fields["http"] == "" {
		return nil, false
	}
	return fields, true
}

// errNotReady marks a daemon that exited or hung before its ready line; its
// log says why.
var errNotReady = errors.New("hop3 serve not ready")

// Start runs hop3 serve and waits for its ready line. The caller stops it
// (Stop); on error, nothing is left running.
func Start(o Options) (*Daemon, error) {
	d, err := start(o)
	if err != nil && d != nil {
		return nil, fmt.Errorf("%w\n%s", err, LogTail(d.LogPath, 20))
	}
	return d, err
}

// StartDaemon is Start for a test: it fails the test when hop3 does not
// become ready, stops hop3 when the test ends and then, if the test
// failed, logs hop3's log.
func StartDaemon(tb testing.TB, o Options) *Daemon {
	tb.Helper()
	d, err := start(o)
	if err != nil {
		if d != nil {
			tb.Fatalf("%v:\n%s", err, d.Log())
		}
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		d.Stop()
		if tb.Failed() {
			tb.Logf("hop3 log:\n%s", d.Log())
		}
	})
	return d
}

// start returns the daemon with an error when it was started but did not
// become ready, so that its log can be read.
func start(o Options) (*Daemon, error) {
	var err error
	if o.Bin == "" || o.Root == "" {
		return nil, errors.New("start hop3: no binary or root")
	}
	if o.HTTPAddr == "" {
		o.HTTPAddr = "127.0.0.1:0"
	}
	if o.CaddyBin == "" {
		if o.CaddyBin, err = FindTool("caddy"); err != nil {
			return nil, err
		}
	}
	if o.UVBin == "" {
		if o.UVBin, err = FindTool("uv"); err != nil {
			return nil, err
		}
	}
	if o.CacheDir == "" {
		o.CacheDir = SharedCache()
	}
	if o.LogPath == "" {
		o.LogPath = filepath.Join(o.Root, "hop3-test.log")
	}
	logf, err := os.OpenFile(o.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start hop3: %w", err)
	}
	args := append([]string{"serve", "--root", o.Root, "--ssh-addr", "127.0.0.1:0", "--http-addr", o.HTTPAddr,
		"--caddy-bin", o.CaddyBin, "--uv", o.UVBin, "--cache-dir", o.CacheDir}, o.Args...)
	cmd := exec.Command(o.Bin, args...)
	cmd.Env = append(os.Environ(), o.Env...)
	cmd.Stderr = logf
	if o.ProcessGroup {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("start hop3: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start hop3: %w", err)
	}
	d := &Daemon{Bin: o.Bin, Root: o.Root, Cmd: cmd, LogPath: o.LogPath, group: o.ProcessGroup, done: make(chan struct{})}
	ready := make(chan map[string]string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if fields, ok := ParseReady(sc.Text()); ok {
				select {
				case ready <- fields:
				default:
				}
			}
		}
	}()
	go func() { cmd.Wait(); logf.Close(); close(d.done) }()
	select {
	case d.Ready = <-ready:
		d.SSHPort = d.Ready["ssh"][strings.LastIndex(d.Ready["ssh"], ":")+1:]
		d.HTTPAddr = d.Ready["http"]
		return d, nil
	case <-d.done:
		return d, fmt.Errorf("%w: hop3 serve exited before it was ready", errNotReady)
	case <-time.After(ReadyTimeout):
		d.Kill()
		return d, fmt.Errorf("%w: hop3 serve not ready after %s", errNotReady, ReadyTimeout)
	}
}

// Log is hop3's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// PID is hop3's process id.
func (d *Daemon) PID() int { return d.Cmd.Process.Pid }

// Done is closed when hop3 has exited.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Exited reports whether hop3 has exited.
func (d *Daemon) Exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// Stop ends hop3 gracefully (SIGTERM: it stops its apps and its Caddy) and
// waits, killing it after a minute.
func (d *Daemon) Stop() {
	if d.Exited() {
		return
	}
	d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.Kill()
	}
}

// Kill ends hop3 with SIGKILL, as a crash would, and waits.
func (d *Daemon) Kill() {
	if d.group {
		syscall.Kill(-d.PID(), syscall.SIGKILL)
	} else {
		d.Cmd.Process.Kill()
	}
	<-d.done
}

// Command is a local hop3 subcommand on the daemon's root, which reaches
// the daemon through its control socket.
func (d *Daemon) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.Bin, args...)
	cmd.Env = append(os.Environ(), "HOP3_ROOT="+d.Root)
	return cmd
}

// Hop3 runs a local hop3 subcommand on the daemon's root with stdin and
// returns its combined output.
func (d *Daemon) Hop3(stdin string, args ...string) (string, error) {
	cmd := d.Command(context.Background(), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// AddKey allows the user's key on the daemon with `hop3 keys add` (as an
// admin unless args say otherwise).
func (d *Daemon) AddKey(u User, args ...string) error {
	pub, err := u.PublicKey()
	if err != nil {
		return err
	}
	if out, err := d.Hop3(pub, append([]string{"keys", "add"}, append(args, u.Name)...)...); err != nil {
		return fmt.Errorf("keys add %s: %v\n%s", u.Name, err, out)
	}
	return nil
}

// SSHCommand is the ssh command line that logs in to the daemon as u, for
// GIT_SSH_COMMAND.
func (d *Daemon) SSHCommand(u User) string {
	return fmt.Sprintf("ssh -i %s -p %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR", u.Key, d.SSHPort)
}

// Remote is the git URL of an app.
func (d *Daemon) Remote(app string) string {
	return "ssh://hop3@127.0.0.1:" + d.SSHPort + "/" + app
}

// SSH is `ssh hop3@127.0.0.1 args...` as u, with the real ssh client; ssh
// joins args with spaces.
func (d *Daemon) SSH(ctx context.Context, u User, args ...string) *exec.Cmd {
	full := append(strings.Fields(d.SSHCommand(u))[1:], "hop3@127.0.0.1")
	return exec.CommandContext(ctx, "ssh", append(full, args...)...)
}

// ExitCode is a finished command's exit status: -1 when it did not run or
// was killed by a signal.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// LogTail returns the last n lines of a log file ("" when it cannot be
// read), for error messages.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
