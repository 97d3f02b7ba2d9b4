package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configures a Supervisor. Zero fields take the Default* values.
type Options struct {
	// PIDDir holds a file per running process group, removed when the group
	// is gone; CleanupOrphans reads it after hop3 died. Empty disables pid
	// files.
	PIDDir string
	// BackoffBase is the first restart delay; it doubles with each
	// consecutive quick failure, up to BackoffMax.
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// MaxRestarts is how many consecutive quick failures are restarted
	// before the process is marked Crashed: a process that always fails
	// quickly runs 1+MaxRestarts times and ends with Restarts ==
	// MaxRestarts. A run of MinUptime or longer resets the count.
	MaxRestarts int
	// MinUptime: a run shorter than this is a quick failure (supervisord's
	// startsecs).
	MinUptime time.Duration
	// Clock defaults to real time; tests substitute a fake one.
	Clock  Clock
	Logger *slog.Logger
	// SandboxExec is the argv prefix of the program that confines a Spec
	// with a Sandbox (hop3 sandbox-exec): it is given --ro, --rx and --rw
	// PATH options, "--" and the command, and must confine itself and then
	// execve the command. Nil runs every Spec unconfined.
	SandboxExec []string
}

// Supervisor runs and watches processes. It is safe for concurrent use;
// Start and Stop of different names are independent of each other.
type Supervisor struct {
	opts   Options
	clock  Clock
	logger *slog.Logger
	logs   *logRegistry

	mu    sync.Mutex
	procs map[string]*proc

	subMu   sync.Mutex
	subs    map[int]chan Event
	nextSub int
}

// New returns a Supervisor, creating opts.PIDDir if needed.
func New(opts Options) (*Supervisor, error) {
	if opts.BackoffBase <= 0 {
		opts.BackoffBase = DefaultBackoffBase
	}
	if opts.BackoffMax <= 0 {
		opts.BackoffMax = DefaultBackoffMax
	}
	if opts.BackoffMax < opts.BackoffBase {
		opts.BackoffMax = opts.BackoffBase
	}
	if opts.MaxRestarts <= 0 {
		opts.MaxRestarts = DefaultMaxRestarts
	}
	if opts.MinUptime <= 0 {
		opts.MinUptime = DefaultMinUptime
	}
	if opts.Clock == nil {
		opts.Clock = realClock{}
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "supervisor")
	if opts.PIDDir != "" {
		if err := os.MkdirAll(opts.PIDDir, 0o700); err != nil {
			return nil, fmt.Errorf("create pid dir: %w", err)
		}
	}
	return &Supervisor{
		opts:   opts,
		clock:  opts.Clock,
		logger: logger,
		logs:   &logRegistry{logger: logger, files: map[string]*logFile{}},
		procs:  map[string]*proc{},
		subs:   map[int]chan Event{},
	}, nil
}

// validate checks spec and fills in its defaults.
func validate(spec *Spec) error {
	if spec.Name == "" {
		return errors.New("empty name")
	}
	if len(spec.Command) == 0 || spec.Command[0] == "" {
		return errors.New("empty command")
	}
	if spec.Socket != "" && spec.Port != 0 {
		return errors.New("both socket and port set")
	}
	if len(spec.Socket) > maxSocketPath {
		return fmt.Errorf("socket path %s is %d bytes, longer than the %d the kernel accepts", spec.Socket, len(spec.Socket), maxSocketPath)
	}
	if spec.Port < 0 || spec.Port > 65535 {
		return fmt.Errorf("bad port %d", spec.Port)
	}
	if spec.HealthPath != "" {
		if !spec.hasReadiness() {
			return errors.New("health path without socket or port")
		}
		if !strings.HasPrefix(spec.HealthPath, "/") {
			return fmt.Errorf("health path %q does not start with /", spec.HealthPath)
		}
	}
	if spec.Schedule != nil && spec.hasReadiness() {
		return errors.New("a scheduled job cannot have a socket or port")
	}
	if spec.LogMaxBytes <= 0 {
		spec.LogMaxBytes = DefaultLogMaxBytes
	}
	if spec.StartTimeout <= 0 {
		spec.StartTimeout = DefaultStartTimeout
	}
	if spec.StopTimeout <= 0 {
		spec.StopTimeout = DefaultStopTimeout
	}
	if _, err := resolveCommand(spec.Command[0], spec.Dir, spec.Env); err != nil {
		return err
	}
	spec.Command = slices.Clone(spec.Command)
	spec.Env = slices.Clone(spec.Env)
	spec.Labels = maps.Clone(spec.Labels)
	return nil
}

// Start starts the process described by spec and returns once it is ready:
// its Socket or Port accepts connections (and HealthPath answers below 500),
// or, without a readiness check, once it has been spawned. A scheduled job
// returns at once and runs at its next tick.
//
// On failure nothing is left running and the error (a *StartError when the
// process was spawned) includes the last lines of its output. Starting a
// name that is already running fails with ErrAlreadyStarted; a Crashed or
// exited one is replaced.
func (s *Supervisor) Start(ctx context.Context, spec Spec) error {
	if err := validate(&spec); err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	p, err := s.newProc(spec)
	if err != nil {
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	old, err := s.register(p)
	if err != nil {
		s.logs.release(p.lf)
		return fmt.Errorf("start %s: %w", spec.Name, err)
	}
	if old != nil {
		// A crashed or finished predecessor holds no process worth keeping,
		// but it must be fully gone before its replacement binds anything.
		if err := old.stop(ctx); err != nil {
			s.remove(p)
			s.logs.release(p.lf)
			close(p.done) // p never ran; a concurrent Stop must not wait for it
			return fmt.Errorf("start %s: replace previous: %w", spec.Name, err)
		}
	}

	first := make(chan error, 1)
	go p.supervise(first)
	select {
	case err := <-first:
		if err != nil {
			<-p.done
			return err
		}
		return nil
	case <-ctx.Done():
		_ = p.stop(context.Background())
		return &StartError{Name: spec.Name, LogPath: spec.LogPath, LogTail: p.out.lastLines(), Err: ctx.Err()}
	}
}

// register adds p under its name unless that name is active, or its socket
// or port is taken by another active process. It returns the predecessor to
// replace, if any.
func (s *Supervisor) register(p *proc) (*proc, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.procs[p.spec.Name]
	if old != nil && !old.finished() && old.status().State != Crashed {
		return nil, ErrAlreadyStarted
	}
	for name, q := range s.procs {
		if q == old || q.finished() {
			continue
		}
		if p.spec.Socket != "" && q.spec.Socket == p.spec.Socket {
			return nil, fmt.Errorf("socket %s is used by %s: %w", p.spec.Socket, name, ErrSocketInUse)
		}
		if p.spec.Port != 0 && q.spec.Port == p.spec.Port {
			return nil, fmt.Errorf("port %d is used by %s: %w", p.spec.Port, name, ErrPortInUse)
		}
	}
	s.procs[p.spec.Name] = p
	return old, nil
}

// remove drops p from the table if it is still the entry for its name.
func (s *Supervisor) remove(p *proc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.procs[p.spec.Name] == p {
		delete(s.procs, p.spec.Name)
	}
}

func (s *Supervisor) lookup(name string) *proc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.procs[name]
}

// Stop stops the named process gracefully (SIGTERM to its group, SIGKILL
// after StopTimeout), waits until no process of its group is left, and
// forgets the name. If ctx ends first, Stop returns its error and the
// process is still stopped in the background.
func (s *Supervisor) Stop(ctx context.Context, name string) error {
	p := s.lookup(name)
	if p == nil {
		return fmt.Errorf("stop %s: %w", name, ErrNotFound)
	}
	if err := p.stop(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	s.remove(p)
	return nil
}

// Drain hands the named process over to a background stop that lets it
// finish its work (see Drain) and returns at once. The process shows as
// Draining until it is gone, is not restarted when it exits, and Stop
// still ends it early. A process not running (backing off, crashed) is
// simply stopped.
func (s *Supervisor) Drain(name string, d Drain) error {
	p := s.lookup(name)
	if p == nil {
		return fmt.Errorf("drain %s: %w", name, ErrNotFound)
	}
	reply := make(chan error, 1)
	select {
	case p.reqs <- request{kind: reqDrain, drain: d, reply: reply}:
	case <-p.done:
		return nil
	}
	select {
	case <-reply:
	case <-p.done:
	}
	return nil
}

// StopAll stops every process in parallel.
func (s *Supervisor) StopAll(ctx context.Context) error {
	s.mu.Lock()
	names := slices.Collect(maps.Keys(s.procs))
	s.mu.Unlock()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			if err := s.Stop(ctx, name); err != nil && !errors.Is(err, ErrNotFound) {
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns a snapshot of the named process.
func (s *Supervisor) Status(name string) (Status, bool) {
	p := s.lookup(name)
	if p == nil {
		return Status{}, false
	}
	return p.status(), true
}

// List returns a snapshot of every process, sorted by name.
func (s *Supervisor) List() []Status {
	s.mu.Lock()
	procs := slices.Collect(maps.Values(s.procs))
	s.mu.Unlock()
	out := make([]Status, 0, len(procs))
	for _, p := range procs {
		out = append(out, p.status())
	}
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Reset gives a Crashed process another round of restarts, starting now.
func (s *Supervisor) Reset(name string) error {
	p := s.lookup(name)
	if p == nil {
		return fmt.Errorf("reset %s: %w", name, ErrNotFound)
	}
	reply := make(chan error, 1)
	select {
	case p.reqs <- request{kind: reqReset, reply: reply}:
	case <-p.done:
		return fmt.Errorf("reset %s: %w", name, ErrNotCrashed)
	}
	select {
	case err := <-reply:
		if err != nil {
			return fmt.Errorf("reset %s: %w", name, err)
		}
		return nil
	case <-p.done:
		return fmt.Errorf("reset %s: %w", name, ErrNotCrashed)
	}
}

// subscriberBuffer is how many events a slow subscriber may lag behind
// before events are dropped for it; process owners never block on one.
const subscriberBuffer = 256

// Subscribe returns a channel of state changes and a function that ends the
// subscription and closes the channel. A subscriber that falls more than
// subscriberBuffer events behind loses events (a warning is logged).
func (s *Supervisor) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, subscriberBuffer)
	s.subMu.Lock()
	id := s.nextSub
	s.nextSub++
	s.subs[id] = ch
	s.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.subMu.Lock()
			delete(s.subs, id)
			s.subMu.Unlock()
			close(ch)
		})
	}
}

func (s *Supervisor) emit(ev Event) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for _, ch := range s.subs {
		select {
		case ch <- ev:
		default:
			s.logger.Warn("event subscriber is full; event dropped", "name", ev.Name, "to", ev.To.String())
		}
	}
}
