// Package commands is hop3's command surface: one dispatcher serves
// `ssh hop3@HOST COMMAND [APP] [ARGS...]` and, on the server, `hop3 COMMAND`
// through the control socket. Every invocation builds its own command table
// and flag sets, wired to that session's streams, so concurrent sessions
// share nothing mutable and nothing writes to os.Stdout.
//
// Grammar: namespace:verb APP args, Dokku/Heroku style. Data goes to stdout,
// messages to stderr; usage errors exit 2, other failures 1.
package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"

	"hop3/gitserver"
	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// Backend is what the commands need from the orchestrator. The methods that
// change an app report progress on out (the session's stderr).
type Backend interface {
	// URL is the address an app answers at.
	URL(app string) string
	Create(ctx context.Context, app string) error
	Destroy(ctx context.Context, app string, purge bool) error
	// Deploy builds and deploys the app's current revision again, for the
	// key named actor (admin: whether it is an admin's).
	Deploy(ctx context.Context, app string, noCache bool, actor string, admin bool, out *ui.Writer) error
	Restart(ctx context.Context, app string, out *ui.Writer) error
	StopApp(ctx context.Context, app string, out *ui.Writer) error
	StartApp(ctx context.Context, app string, out *ui.Writer) error
	Scale(ctx context.Context, app string, counts map[string]int, out *ui.Writer) error
	// ValidateScale refuses, with a one-line reason and changing nothing,
	// counts Scale would refuse (such as auto for an entry Granian does
	// not serve).
	ValidateScale(ctx context.Context, app string, counts map[string]int) error
	Rollback(ctx context.Context, app string, number int, actor string, out *ui.Writer) error
	ApplyConfig(ctx context.Context, app string, out *ui.Writer) error
	Processes(app string) []supervisor.Status
	LiveEnv(ctx context.Context, app string) (map[string]string, error)
	RunOneOff(ctx context.Context, app string, argv []string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	// RunTerminal is RunOneOff on a terminal (ssh -t) of the client's type
	// (term), size and window changes.
	RunTerminal(ctx context.Context, app string, argv []string, rw io.ReadWriter, term string, size supervisor.WinSize, resize <-chan supervisor.WinSize) (int, error)
	UpdateRoute(ctx context.Context, app string) error
	// DiskTotal is the app's disk use in bytes as last measured (the
	// repository, releases, environments and DATA_DIR), false before the
	// first measure; it never waits for one.
	DiskTotal(app string) (int64, bool)
	// ValidateConfig refuses config vars that would break the app's route
	// (hosts, static paths, sizes, timeouts), with a one-line reason; new
	// hosts are claimed as an admin's key asks or as a deployer's (admin).
	ValidateConfig(ctx context.Context, app string, vars map[string]string, admin bool) error
	// BuildLog is the file holding the output of a deploy attempt.
	BuildLog(app string, rel store.Release) string
}

// Store is the part of hop3's state the commands read and change directly.
// *store.Store satisfies it.
type Store interface {
	Apps(ctx context.Context) ([]store.App, error)
	App(ctx context.Context, name string) (store.App, error)
	Config(ctx context.Context, app string) (map[string]string, error)
	SetConfig(ctx context.Context, app string, vars map[string]string) error
	UnsetConfig(ctx context.Context, app string, keys []string) error
	Scale(ctx context.Context, app string) (map[string]int, error)
	Release(ctx context.Context, app string, number int) (store.Release, error)
	Attempt(ctx context.Context, app string, attempt int) (store.Release, error)
	Releases(ctx context.Context, app string) ([]store.Release, error)
	Domains(ctx context.Context, app string) ([]string, error)
	AddDomains(ctx context.Context, app string, hosts []string) error
	RemoveDomains(ctx context.Context, app string, hosts []string) error
	Keys(ctx context.Context) ([]store.Key, error)
	AddKeys(ctx context.Context, keys []store.Key) error
	RemoveKey(ctx context.Context, name string) error
	AddEvent(ctx context.Context, e store.Event) error
	Events(ctx context.Context, app string, limit int) ([]store.Event, error)
}

var _ Store = (*store.Store)(nil)

// Config configures a Dispatcher.
type Config struct {
	Backend Backend
	Store   Store
	// Root is hop3's state directory: process logs, build logs and release
	// sources are read below it.
	Root string
	// Domain: apps answer at <app>.<Domain>; no app may claim another's.
	Domain string
	// Version is hop3's own version; CaddyBin is asked for Caddy's, and
	// GranianVersion is the Granian pinned into Python apps.
	Version        string
	CaddyBin       string
	GranianVersion string
	Logger         *slog.Logger
	// Addons runs the add-on commands; nil: none on this server.
	Addons Addons

	// Certs, set when TLS is on and hop3 runs Caddy, returns each host's
	// certificate status (router.Certs.Status) for `domains`.
	Certs func(hosts []string) []router.CertStatus
}

// Dispatcher runs commands. It holds only its configuration: all per-command
// state lives in an invocation.
type Dispatcher struct {
	cfg Config
	log *slog.Logger
}

// New returns a Dispatcher.
func New(cfg Config) (*Dispatcher, error) {
	if cfg.Backend == nil || cfg.Store == nil {
		return nil, errors.New("commands: backend and store are required")
	}
	if cfg.Root == "" {
		return nil, errors.New("commands: root is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	return &Dispatcher{cfg: cfg, log: cfg.Logger.With("component", "commands")}, nil
}

// Run serves one session's command and returns its exit status.
func (d *Dispatcher) Run(ctx context.Context, s *gitserver.Session) int {
	stdout, stderr := s.Stdout, s.Stderr
	if s.TTY {
		// With `ssh -t` the client's terminal is raw and nothing on our side
		// emulates a terminal's line discipline.
		stdout, stderr = &crlfWriter{w: stdout}, &crlfWriter{w: stderr}
	}
	inv := &invocation{
		d:      d,
		id:     s.Identity,
		pty:    s.PTY,
		term:   s,
		stdin:  s.Stdin,
		stdout: stdout,
		stderr: stderr,
		ui:     ui.New(stderr, ui.ColorFor(s.TTY, s.Env)),
	}
	inv.table = inv.commands()
	return inv.run(ctx, s.Args)
}

// invocation is one command being run: its caller, its streams, and the
// command table built for it.
type invocation struct {
	d      *Dispatcher
	id     gitserver.Identity
	pty    *gitserver.PTY
	term   *gitserver.Session // the raw streams, for a command that runs on the client's terminal
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	ui     *ui.Writer
	table  []*command
	// about are the apps the command named or listed, for
	// repeatCertFailures.
	about []string
}

// Exit statuses.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// Error is a failure told to the person at the other end: one line, and the
// exit status it ends the command with. Every user-facing failure is one;
// anything else is reported as an internal error.
type Error struct {
	Msg  string
	Code int
}

func (e *Error) Error() string { return e.Msg }

// failf returns a failure with exit status 1.
func failf(format string, a ...any) error {
	return &Error{Msg: fmt.Sprintf(format, a...), Code: exitFail}
}

// usagef returns a usage error of c: exit status 2, with c's usage line.
func usagef(c *command, format string, a ...any) error {
	msg := fmt.Sprintf(format, a...)
	if c != nil {
		msg += "; usage: " + c.synopsis()
	}
	return &Error{Msg: msg, Code: exitUsage}
}

// errHelp asks for a command's details instead of running it.
var errHelp = errors.New("help requested")

func (inv *invocation) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		args = []string{"help"}
	}
	name := args[0]
	c := inv.lookup(name)
	if c == nil {
		return inv.report(inv.unknownCommand(name))
	}
	if c.admin && !inv.id.Admin {
		return inv.report(failf("%s is for admin keys only (key %s is a deployer)", c.name, inv.id.Name))
	}
	err := c.run(ctx, c, args[1:])
	// After the command's own output and its failure, if any.
	defer inv.repeatCertFailures(ctx)
	if errors.Is(err, errHelp) {
		inv.printDetails(c)
		return exitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		return int(code)
	}
	if ui.IsReported(err) && !isUserError(err) {
		// The orchestrator already told the user why on this session.
		inv.d.log.Info("command failed", "command", c.name, "key", inv.id.Name, "err", err)
		return exitFail
	}
	return inv.report(err)
}

// noteApp records that the command is about app.
func (inv *invocation) noteApp(app string) {
	if !slices.Contains(inv.about, app) {
		inv.about = append(inv.about, app)
	}
}

// repeatCertFailures says again, once per app the command was about, that
// the app's certificate is failing, as the end of its push said: the
// warning stays in sight on every command while the failure lasts. It
// reads the cached status (router.Certs), and skips an app that is gone.
func (inv *invocation) repeatCertFailures(ctx context.Context) {
	if inv.d.cfg.Certs == nil || len(inv.about) == 0 {
		return
	}
	hosts := make([]string, 0, len(inv.about))
	for _, a := range inv.about {
		if _, err := inv.d.cfg.Store.App(ctx, a); err != nil {
			continue
		}
		hosts = append(hosts, a+"."+inv.d.cfg.Domain)
	}
	for _, s := range inv.d.cfg.Certs(hosts) {
		if w := s.Warning(); w != "" {
			inv.ui.Fail(w)
		}
	}
}

func isUserError(err error) bool {
	var ue *Error
	return errors.As(err, &ue)
}

// exitCode ends a command with a status and no message (run's own status).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// report turns a command's outcome into its exit status, telling the user
// why in one line: the one place failures are printed.
func (inv *invocation) report(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *Error
	if errors.As(err, &ue) {
		inv.ui.Fail(ue.Msg)
		return ue.Code
	}
	inv.d.log.Error("command failed", "key", inv.id.Name, "err", err)
	inv.ui.Fail(ui.OneLine(err.Error()))
	return exitFail
}

// event records what someone did; a failure to record does not undo it.
func (inv *invocation) event(ctx context.Context, app, kind, format string, a ...any) {
	e := store.Event{App: app, Kind: kind, Actor: inv.id.Name, Message: fmt.Sprintf(format, a...)}
	if err := inv.d.cfg.Store.AddEvent(context.WithoutCancel(ctx), e); err != nil {
		inv.d.log.Warn("record event", "app", app, "kind", kind, "err", err)
	}
}

// crlfWriter ends lines with CRLF for a client whose terminal is raw.
type crlfWriter struct {
	w    io.Writer
	last byte
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+8)
	prev := c.last
	for _, b := range p {
		if b == '\n' && prev != '\r' {
			out = append(out, '\r')
		}
		out = append(out, b)
		prev = b
	}
	if len(p) > 0 {
		c.last = p[len(p)-1]
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// appJSON parses the arguments of a command of the form `[--json] APP`
// and resolves the app the caller may see.
func (inv *invocation) appJSON(ctx context.Context, c *command, args []string) (store.App, bool, error) {
	fs := newFlags(c)
	asJSON := fs.Bool("json", false, "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return store.App{}, false, err
	}
	a, err := inv.app(ctx, c, pos[0])
	return a, *asJSON, err
}
