package hooks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// How a push is decided before any ref moves: git's pre-receive hook is
// hop3's own executable (`hop3 hook pre-receive`), which hands the ref
// updates and git's quarantine variables to the daemon over a unix socket
// made for that one push, and exits with the daemon's verdict.
//
// A socket rather than FIFOs or files: the daemon learns at once when the
// hook goes away (git killed, client gone), and the hook learns when the
// daemon does (a crash closes the connection, the hook exits non-zero, so
// git refuses the push and no ref moves). The socket sits in a directory
// of mode 0700 named only in the environment of that push's receive-pack.

// SocketEnv names the variable that tells the hook where the daemon waits.
const SocketEnv = "HOP3_HOOK_SOCKET"

// quarantineVars are what git sets for a pre-receive hook so that it can
// read the pushed objects before they are accepted into the repository.
var quarantineVars = []string{"GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES"}

// request is what the hook sends: the updates git read on its stdin and
// the quarantine variables.
type request struct {
	Updates []Update `json:"updates"`
	Env     []string `json:"env"`
}

// verdict is what the daemon answers: the hook's exit status.
type verdict struct {
	Code int `json:"code"`
}

// Push is one pre-receive step waiting for the daemon's verdict.
type Push struct {
	// Updates are the ref changes git is about to make.
	Updates []Update
	// Env holds git's quarantine variables (KEY=VALUE): commands that read
	// the pushed objects must run with them.
	Env  []string
	conn net.Conn
}

// Reply sends the verdict (0 accepts the push) and ends the exchange.
func (p *Push) Reply(code int) error {
	defer p.conn.Close()
	p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return json.NewEncoder(p.conn).Encode(verdict{Code: code})
}

// Gate is where one push's hook finds the daemon.
type Gate struct {
	dir string
	ln  *net.UnixListener
}

// Listen opens a gate in a new private directory under parent.
func Listen(parent string) (*Gate, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("create hook directory: %w", err)
	}
	dir, err := os.MkdirTemp(parent, "push-")
	if err != nil {
		return nil, fmt.Errorf("create hook directory: %w", err)
	}
	// MkdirTemp makes it 0700 already; say so where it matters.
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("create hook directory: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "hook.sock"), Net: "unix"})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("listen for the hook: %w", err)
	}
	return &Gate{dir: dir, ln: ln}, nil
}

// Env is the variable git's environment needs for the hook to find the gate.
func (g *Gate) Env() string { return SocketEnv + "=" + g.ln.Addr().String() }

// Wait returns the push the hook hands over. It fails when ctx ends or
// the gate is closed first (git ended without running the hook).
func (g *Gate) Wait(ctx context.Context) (*Push, error) {
	stop := context.AfterFunc(ctx, func() { g.ln.Close() })
	defer stop()
	conn, err := g.ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("wait for the hook: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var req request
	if err := json.NewDecoder(io.LimitReader(conn, 16<<20)).Decode(&req); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read the hook's request: %w", err)
	}
	conn.SetReadDeadline(time.Time{})
	env := req.Env[:0]
	for _, kv := range req.Env {
		if k, _, ok := strings.Cut(kv, "="); ok && isQuarantineVar(k) {
			env = append(env, kv)
		}
	}
	return &Push{Updates: req.Updates, Env: env, conn: conn}, nil
}

// Close stops listening and removes the gate's directory.
func (g *Gate) Close() error {
	err := g.ln.Close()
	os.RemoveAll(g.dir)
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

func isQuarantineVar(k string) bool {
	for _, q := range quarantineVars {
		if k == q {
			return true
		}
	}
	return false
}

// ParseUpdates reads the lines git gives a pre-receive hook on stdin:
// "OLD NEW REF" per updated ref.
func ParseUpdates(r io.Reader) ([]Update, error) {
	var ups []Update
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("read ref update %q: want OLD NEW REF", sc.Text())
		}
		ups = append(ups, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read ref updates: %w", err)
	}
	return ups, nil
}

// RunPreReceive is the hook's side: it passes git's updates (stdin) and
// quarantine variables (environ) to the daemon and returns its verdict as
// the exit status. Anything that goes wrong refuses the push.
func RunPreReceive(stdin io.Reader, environ []string, stderr io.Writer) int {
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, " !     push refused: "+format+"\n", a...)
		return 1
	}
	sock := ""
	req := request{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
		case k == SocketEnv:
			sock = v
		case isQuarantineVar(k):
			req.Env = append(req.Env, kv)
		}
	}
	if sock == "" {
		return fail("%s is not set: this hook runs only under hop3", SocketEnv)
	}
	ups, err := ParseUpdates(stdin)
	if err != nil {
		return fail("%v", err)
	}
	req.Updates = ups
	conn, err := net.DialTimeout("unix", sock, 10*time.Second)
	if err != nil {
		return fail("hop3 is not waiting for this push: %v", err)
	}
	defer conn.Close()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fail("hand the push to hop3: %v", err)
	}
	// No deadline: the deploy takes as long as its build.
	var v verdict
	if err := json.NewDecoder(conn).Decode(&v); err != nil {
		return fail("hop3 stopped before deciding: %v", err)
	}
	return v.Code
}
