// Package doctor checks that a server can run hop3 and explains what is
// wrong: one line per check, with a verdict and, when it is not ok, a fix.
//
// Every contact with the system goes through System, so a test can
// simulate a broken server (Caddy missing, a full disk, a corrupt database)
// without having one.
package doctor

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"

	"hop3/internal/layout"
	"hop3/internal/router"
)

// Verdict is the outcome of one check.
type Verdict int

// The verdicts, from best to worst. Skip means the check did not apply.
const (
	OK Verdict = iota + 1
	Skip
	Warn
	Fail
	// Info is a fact, neither good nor bad (a toolchain found or not).
	Info
)

// String returns the word printed for the verdict.
func (v Verdict) String() string {
	switch v {
	case OK:
		return "ok"
	case Skip:
		return "skip"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	case Info:
		return "info"
	}
	return fmt.Sprintf("verdict(%d)", int(v))
}

// Result is the outcome of one check.
type Result struct {
	Name    string
	Verdict Verdict
	Detail  string // what was found
	Fix     string // what to do about it; empty when nothing needs doing
}

// Config is the setup being checked: the same settings hop3 serve reads.
type Config struct {
	Root      string // state directory (hop3.db, caddy/admin.sock, control.sock)
	Domain    string
	TLS       string // off, internal or acme: HTTPS is checked unless off
	CaddyBin  string
	UV        string
	SSHAddr   string
	HTTPAddr  string
	HTTPSAddr string
	// Isolation is HOP3_ISOLATION: auto (or empty) or off.
	Isolation string
	// PIDDir is where a running hop3 records its apps' process groups.
	PIDDir string
	// Sandbox is HOP3_SANDBOX: auto (or empty) or off, as hop3 serve --sandbox.
	Sandbox string
	// ACMEDNS is hop3 serve's --acme-dns: the Caddy DNS provider module
	// CaddyBin must have; empty: none.
	ACMEDNS string
}

// Process is a program that holds a port.
type Process struct {
	PID  int
	Name string
	// Hop3 is true when the process is hop3 or was started by it (Caddy).
	Hop3 bool
}

// System is everything the checks ask of the machine.
type System struct {
	// Statfs returns the bytes available to unprivileged users, and the
	// size, of the file system holding path.
	Statfs func(path string) (free, total uint64, err error)
	// LookPath finds a program as exec.LookPath does.
	LookPath func(name string) (string, error)
	// Exec runs a program and returns its combined output.
	Exec func(ctx context.Context, name string, args ...string) (string, error)
	// Resolver looks up host names.
	Resolver interface {
		LookupHost(ctx context.Context, host string) ([]string, error)
	}
	// InterfaceAddrs lists this host's addresses.
	InterfaceAddrs func() ([]net.Addr, error)
	// Listen binds a TCP address, to see whether hop3 could.
	Listen func(network, addr string) (net.Listener, error)
	// PortOwner names the process listening on a TCP port, if it can be seen.
	PortOwner func(port int) (Process, error)
	// Answers reports whether something accepts connections on a unix socket.
	Answers func(ctx context.Context, socket string) bool
	// AdminGet sends GET path to Caddy's admin endpoint on a unix socket and
	// returns the status code.
	AdminGet func(ctx context.Context, socket, path string) (int, error)
	// Stat is os.Stat.
	Stat func(path string) (os.FileInfo, error)
	// CheckStore opens hop3's database and checks its integrity.
	CheckStore func(ctx context.Context, path string) error
	// Random returns a fresh random label for the DNS check.
	Random func() string
	// Lstat is os.Lstat; ReadFile is os.ReadFile.
	Lstat    func(path string) (os.FileInfo, error)
	ReadFile func(path string) ([]byte, error)
	// CanSwitch tells whether this process may run apps as other users
	// (isolation.CanSwitch).
	CanSwitch func() error
	// PublicListeners names, per app process recorded in pidDir, the
	// addresses it listens on that other machines can reach.
	PublicListeners func(pidDir string) (map[string][]string, error)
	// LandlockABI returns the Landlock ABI version hop3 would apply, 0 when
	// the kernel has none.
	LandlockABI func() int
	// Certificates lists what a managed Caddy in caddyDir holds and failed
	// to get (router.Certs.All).
	Certificates func(caddyDir string) []router.CertStatus
}

// Run runs every check and returns their results in a fixed order.
func Run(ctx context.Context, cfg Config, sys System) []Result {
	if sys.Random == nil {
		sys.Random = randomLabel
	}
	c := &checker{cfg: cfg, sys: sys}
	c.running = sys.Answers != nil && sys.Answers(ctx, layout.New(cfg.Root).Control())
	out := []Result{
		c.caddy(ctx),
		c.caddyAdmin(ctx),
		c.git(ctx),
		c.python(ctx),
		c.venv(ctx),
		c.uv(ctx),
		c.node(ctx),
		c.golang(ctx),
		c.disk(),
	}
	out = append(out, c.ports()...)
	out = append(out, c.dns(ctx), c.clock(ctx), c.sqlite(ctx), c.isolationCheck(), c.stateModes(), c.listeners(), c.sandbox(), c.certificates())
	out = append(out, c.dnsProvider(ctx))
	return out
}

// Failed reports whether any check failed.
func Failed(results []Result) bool {
	for _, r := range results {
		if r.Verdict == Fail {
			return true
		}
	}
	return false
}

// Write prints one line per result: verdict, check, what was found and,
// unless it is ok, the fix.
func Write(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, r := range results {
		line := r.Detail
		if r.Fix != "" && r.Verdict != OK && r.Verdict != Skip && r.Verdict != Info {
			line += "; fix: " + r.Fix
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Verdict, r.Name, line)
	}
	return tw.Flush()
}

type checker struct {
	cfg     Config
	sys     System
	running bool // hop3 answers on its control socket
}

func randomLabel() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ok(name, detail string) Result { return Result{Name: name, Verdict: OK, Detail: detail} }

func skip(name, detail string) Result { return Result{Name: name, Verdict: Skip, Detail: detail} }

func warn(name, detail, fix string) Result {
	return Result{Name: name, Verdict: Warn, Detail: detail, Fix: fix}
}

func fail(name, detail, fix string) Result {
	return Result{Name: name, Verdict: Fail, Detail: detail, Fix: fix}
}

// find locates a program given as a path or a name on PATH.
func (c *checker) find(prog string) (string, bool) {
	if prog == "" {
		return "", false
	}
	if strings.Contains(prog, "/") {
		fi, err := c.sys.Stat(prog)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return prog, false
		}
		return prog, true
	}
	p, err := c.sys.LookPath(prog)
	if err != nil {
		return prog, false
	}
	return p, true
}

// firstLine is the first non-empty line of a command's output.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return ""
}
