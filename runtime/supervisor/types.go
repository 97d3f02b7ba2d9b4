// Package supervisor runs and watches the processes of hop3's apps: Granian
// servers on unix sockets, `web` commands on a port, workers and scheduled
// jobs. It knows nothing about apps, Procfiles or the router: callers describe
// each process with a Spec and the supervisor starts it in its own process
// group, waits until it is ready, restarts it with backoff when it dies, and
// stops the whole group when asked.
//
// Every supervised process is owned by one goroutine, which alone changes its
// state; Stop, Reset and the status queries talk to it through channels and
// published snapshots.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is where a supervised process is in its life cycle.
type State int

// The states of a supervised process. The zero value is not a valid state.
const (
	// Starting: spawned, waiting for its readiness check.
	Starting State = iota + 1
	// Running: ready (or started, for processes without a readiness check).
	Running
	// Backoff: exited, waiting before the next restart.
	Backoff
	// Stopping: asked to stop, waiting for the process group to be gone.
	Stopping
	// Exited: not running and not going to be restarted; a scheduled job
	// waiting for its next run is also Exited.
	Exited
	// Crashed: gave up after too many quick failures; down until Reset or a
	// new Start.
	Crashed
	// Draining: replaced; finishing what it has before it stops, and not
	// restarted when it exits.
	Draining
)

// String returns the lowercase name of the state.
func (s State) String() string {
	switch s {
	case Starting:
		return "starting"
	case Running:
		return "running"
	case Backoff:
		return "backoff"
	case Stopping:
		return "stopping"
	case Exited:
		return "exited"
	case Crashed:
		return "crashed"
	case Draining:
		return "draining"
	default:
		return fmt.Sprintf("state(%d)", int(s))
	}
}

// Schedule tells when a scheduled job runs next. Next returns the first run
// time strictly after the given time, or the zero time for "never again".
type Schedule interface {
	Next(after time.Time) time.Time
}

// Clock is the supervisor's source of time for policy decisions: schedules,
// restart backoff, MinUptime and the times in Status and Event. Timeouts that
// bound waiting on real processes (StartTimeout, StopTimeout) use real time.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Default values for zero fields of Spec and Options.
const (
	DefaultLogMaxBytes  = 10 << 20
	DefaultStartTimeout = 60 * time.Second
	DefaultStopTimeout  = 10 * time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 30 * time.Second
	DefaultMaxRestarts  = 5
	DefaultMinUptime    = 5 * time.Second
	// HealthFailAfter is how long a health check may answer with a failing
	// status, without a success in between, before the start fails.
	HealthFailAfter = 5 * time.Second
	// WrongPortAfter is how long a process with a Port may listen on other
	// TCP ports but not on Port before the start fails.
	WrongPortAfter = 2 * time.Second
)

// maxSocketPath is the longest unix socket path the kernel accepts
// (sun_path is 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Spec describes one process to supervise.
type Spec struct {
	// Name is the unique id of the process, e.g. "myapp/web.1@r3".
	Name string
	// Labels are free-form for the caller (app, kind, index, release).
	Labels map[string]string
	// Command is the argv, executed directly, never through a shell. A
	// command without a slash is looked up in the PATH of Env (or of hop3's
	// own environment when Env is nil).
	Command []string
	// Dir is the working directory.
	Dir string
	// Env is the complete environment; nil inherits hop3's environment.
	Env []string
	// LogPath receives stdout and stderr, appended. Empty discards the output
	// (the last lines are still kept in memory for start errors).
	LogPath string
	// LogMaxBytes rotates LogPath to LogPath+".1" when it would grow past
	// this size; default DefaultLogMaxBytes. Processes sharing a LogPath share
	// one rotating file, sized by the first of them.
	LogMaxBytes int64
	// Socket, if set, makes the process ready once connect(2) to this unix
	// socket succeeds. A stale socket file (connect refused) is removed before
	// each start; a live one is an error.
	Socket string
	// Port, if set, makes the process ready once a TCP connect to
	// 127.0.0.1:Port succeeds. A port that already answers is an error. A
	// process that listens on other TCP ports but not on Port for
	// WrongPortAfter fails to start, naming what it bound.
	Port int
	// HealthPath, with Socket or Port, makes the process ready only once a
	// GET of this path answers with a 2xx or 3xx status. A 4xx fails too: it
	// says the path or the Host is wrong (Django answers 400 to a host it
	// does not serve), not that the app is healthy. Failing answers for
	// HealthFailAfter in a row fail the start at once.
	HealthPath string
	// HealthHost is the Host header of the health check: the name the app
	// answers to. Default "localhost".
	HealthHost string
	// SettleTime: a process is started only once it has run this long since
	// it was spawned (and is ready); exiting before that fails Start. It
	// applies to the first start only; restarts are the backoff's business.
	SettleTime time.Duration
	// StartTimeout bounds the wait for readiness; default 60s. A process not
	// ready by then has failed to start and its process group is killed.
	StartTimeout time.Duration
	// StopTimeout is the grace between SIGTERM and SIGKILL to the process
	// group; default 10s.
	StopTimeout time.Duration
	// Restart restarts the process whenever it exits (long-running kinds);
	// false runs it once.
	Restart bool
	// Schedule, if set, makes this a scheduled job: Command runs at each
	// Schedule.Next time, and a tick that comes while the previous run is
	// still going is skipped (and noted in the log). Restart is ignored.
	Schedule Schedule
	// User, when non-nil, runs the process (and its group) as this uid and gid,
	// with no supplementary groups.
	User *Credential
	// Sandbox, when non-nil, confines the process's filesystem access with Landlock
	// (see Options.SandboxExec); a kernel without Landlock runs it unconfined.
	Sandbox *Sandbox
}

// Credential is a numeric user and group a process runs as.
type Credential struct{ UID, GID uint32 }

// Sandbox lists the paths a confined process may reach; anything else is
// denied. ReadOnly: read; ReadExec: read and execute; ReadWrite: read,
// execute, create, write and remove; Shared: read, write, create and remove
// files and sockets, but make or move in no link. A path that does not
// exist grants nothing.
type Sandbox struct {
	ReadOnly, ReadWrite, ReadExec []string
	Shared                        []string
}

// Status is a snapshot of a supervised process.
type Status struct {
	Name      string
	Labels    map[string]string
	State     State
	PID       int // also the process group id; 0 when not running
	Restarts  int
	StartedAt time.Time
	LastExit  string // "exit status 3", "signal: killed", or why it could not start
	LogPath   string
}

// Event is a state change of a supervised process. A process's first event
// goes from Exited (not yet running) to Starting.
type Event struct {
	Name     string
	From, To State
	Time     time.Time
}

// Errors callers can test for with errors.Is.
var (
	ErrNotFound       = errors.New("no such process")
	ErrAlreadyStarted = errors.New("already started")
	ErrSocketInUse    = errors.New("socket in use by a live process")
	ErrPortInUse      = errors.New("port already in use")
	ErrNotCrashed     = errors.New("not crashed")
)

// StartError is returned by Start when a process did not become ready. It
// carries the last lines the process wrote, which usually say why.
type StartError struct {
	Name    string
	LogPath string
	LogTail []string
	Err     error
}

// Error returns the reason followed by the last lines of the process's log.
func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "start %s: %v", e.Name, e.Err)
	if len(e.LogTail) == 0 {
		return b.String()
	}
	if e.LogPath != "" {
		fmt.Fprintf(&b, "\nlast lines of %s:", e.LogPath)
	} else {
		b.WriteString("\nlast output lines:")
	}
	for _, l := range e.LogTail {
		b.WriteString("\n")
		b.WriteString(l)
	}
	return b.String()
}

// Unwrap returns the reason.
func (e *StartError) Unwrap() error { return e.Err }

// Drain says how a replaced process ends: it is left running while it
// finishes its work, then stopped, and never restarted.
type Drain struct {
	// Busy, if set, says whether the process holds work that SIGTERM would
	// cut (for example open WebSockets). When it does not, the SIGTERM goes
	// out before Drain returns: a server stops taking new requests over
	// the connections it has as soon as traffic moved away.
	Busy func(pgid int) bool
	// Hold, run when Busy says so, returns when the process may be sent
	// SIGTERM (for example once its WebSockets are closed). Its context
	// ends after HoldTimeout. pgid is the process group.
	Hold        func(ctx context.Context, pgid int)
	HoldTimeout time.Duration
	// Timeout is the grace between SIGTERM and SIGKILL; default the spec's
	// StopTimeout.
	Timeout time.Duration
}
