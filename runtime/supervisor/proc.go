package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// groupGoneTimeout bounds the wait for a SIGKILLed group to vanish.
	groupGoneTimeout = 5 * time.Second
	// drainTimeout bounds the wait for the output pipe to close once the
	// group is dead; only a process that escaped the group can hold it open.
	drainTimeout = 2 * time.Second
)

type reqKind int

const (
	reqStop reqKind = iota
	reqReset
	reqDrain
)

type request struct {
	kind  reqKind
	reply chan error // for reqReset; for reqDrain, told once Draining
	drain Drain      // for reqDrain
}

// proc is one supervised process. Its fields below "owned" are read and
// written only by the supervise goroutine; everyone else reads the
// published snapshot or sends a request.
type proc struct {
	sv   *Supervisor
	spec Spec
	log  *slog.Logger
	out  *lineWriter
	lf   *logFile // nil without LogPath

	reqs chan request
	done chan struct{}
	snap atomic.Pointer[Status]
	// stopErr is written by the owner before done is closed.
	stopErr error

	// owned by the supervise goroutine
	st           Status
	quick        int  // consecutive quick failures
	removeOnExit bool // forget the name when the goroutine ends
}

// child is one run of a proc's command.
type child struct {
	g       *group
	pid     int
	started time.Time     // by the supervisor's clock
	spawned time.Time     // by real time, for SettleTime
	exitc   chan string   // how it ended, sent once it is reaped
	copied  chan struct{} // closed when the output copier has finished
	pr      *os.File      // read end of the output pipe
	pidf    *pidFile
}

func (s *Supervisor) newProc(spec Spec) (*proc, error) {
	p := &proc{
		sv:   s,
		spec: spec,
		log:  s.logger.With("name", spec.Name),
		reqs: make(chan request),
		done: make(chan struct{}),
	}
	if spec.LogPath != "" {
		lf, err := s.logs.acquire(spec.LogPath, spec.LogMaxBytes)
		if err != nil {
			return nil, err
		}
		p.lf = lf
	}
	p.out = &lineWriter{out: p.lf, tag: logTag(spec.Name)}
	p.st = Status{Name: spec.Name, Labels: spec.Labels, State: Exited, LogPath: spec.LogPath}
	p.publish()
	return p, nil
}

func (p *proc) publish() {
	st := p.st
	p.snap.Store(&st)
}

func (p *proc) status() Status {
	st := *p.snap.Load()
	st.Labels = maps.Clone(st.Labels)
	return st
}

func (p *proc) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop asks the owner to stop and waits for it to finish.
func (p *proc) stop(ctx context.Context) error {
	select {
	case p.reqs <- request{kind: reqStop}:
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.done:
		return p.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// set moves to a new state, publishes it and tells subscribers.
func (p *proc) set(to State) {
	from := p.st.State
	p.st.State = to
	p.publish()
	if from == to {
		return
	}
	p.log.Debug("state changed", "from", from.String(), "to", to.String())
	p.sv.emit(Event{Name: p.spec.Name, From: from, To: to, Time: p.sv.clock.Now()})
}

// supervise is the owner goroutine. first receives the outcome of the first
// start (nil once ready) and is not used again.
func (p *proc) supervise(first chan<- error) {
	defer p.finish()
	if p.spec.Schedule != nil {
		first <- nil
		p.runSchedule()
		return
	}
	for {
		o := p.runOnce(first)
		first = nil
		if o.end {
			return
		}
		if !p.spec.Restart {
			p.set(Exited)
			return
		}
		if o.quick {
			p.quick++
		} else {
			p.quick = 0
		}
		if p.quick > p.sv.opts.MaxRestarts {
			p.log.Error("process crashed: giving up after repeated quick failures; it stays down until reset or started again",
				"failures", p.quick, "restarts", p.st.Restarts, "last_exit", p.st.LastExit, "log", p.spec.LogPath)
			p.set(Crashed)
			if !p.awaitReset() {
				return
			}
			p.quick = 0
		} else if !p.backoff(p.delay()) {
			return
		}
		p.st.Restarts++
	}
}

// finish runs as the owner goroutine ends.
func (p *proc) finish() {
	if p.removeOnExit {
		p.sv.remove(p)
	}
	if p.lf != nil {
		p.sv.logs.release(p.lf)
	}
	close(p.done)
}

// delay is the backoff before the next restart: BackoffBase after a long
// run, then doubling with each consecutive quick failure.
func (p *proc) delay() time.Duration {
	d := p.sv.opts.BackoffBase
	for i := 1; i < p.quick && d < p.sv.opts.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.sv.opts.BackoffMax)
}

// backoff waits d; false means a stop request ended the wait.
func (p *proc) backoff(d time.Duration) bool {
	p.set(Backoff)
	p.log.Info("restarting after backoff", "delay", d.String(), "last_exit", p.st.LastExit)
	t := p.sv.clock.After(d)
	for {
		select {
		case <-t:
			return true
		case req := <-p.reqs:
			if p.handleIdle(req) {
				return false
			}
		}
	}
}

// awaitReset waits in Crashed; false means a stop request came instead.
func (p *proc) awaitReset() bool {
	for req := range p.reqs {
		if req.kind == reqReset {
			req.reply <- nil
			p.log.Info("reset: restarting")
			return true
		}
		if p.handleIdle(req) {
			return false
		}
	}
	return false
}

// handleIdle answers a request while no process runs; true means stop.
func (p *proc) handleIdle(req request) bool {
	if req.kind == reqReset {
		req.reply <- ErrNotCrashed
		return false
	}
	p.removeOnExit = true
	p.set(Exited)
	return true
}

// outcome is how one run ended.
type outcome struct {
	end   bool // the owner must end: stopped, or the first start failed
	quick bool // failed to start, or exited within MinUptime
}

// runOnce spawns the command, waits for readiness and then for the exit.
func (p *proc) runOnce(first chan<- error) outcome {
	fail := func(err error, tail bool) outcome {
		p.st.LastExit = err.Error()
		if first == nil {
			p.log.Warn("start failed", "err", err)
			return outcome{quick: true}
		}
		p.removeOnExit = true
		p.set(Exited)
		se := &StartError{Name: p.spec.Name, LogPath: p.spec.LogPath, Err: err}
		if tail {
			se.LogTail = p.out.lastLines()
		}
		first <- se
		return outcome{end: true}
	}

	c, err := p.spawn()
	if err != nil {
		return fail(err, false)
	}
	p.st.PID = c.pid
	p.st.StartedAt = c.started
	p.set(Starting)

	if p.spec.hasReadiness() {
		if o, ready := p.awaitReady(c, first, fail); !ready {
			return o
		}
	}
	if first != nil && p.spec.SettleTime > 0 {
		if o, settled := p.settle(c, first, fail); !settled {
			return o
		}
	}
	p.set(Running)
	p.log.Info("process running", "pid", c.pid)
	if first != nil {
		first <- nil
	}

	for {
		select {
		case desc := <-c.exitc:
			ran := p.sv.clock.Now().Sub(c.started)
			p.finishRun(c, desc)
			p.log.Info("process exited", "exit", desc, "ran", ran.Round(time.Millisecond).String())
			return outcome{quick: ran < p.sv.opts.MinUptime}
		case req := <-p.reqs:
			switch req.kind {
			case reqReset:
				req.reply <- ErrNotCrashed
				continue
			case reqDrain:
				p.drainRun(c, req.drain, req.reply)
			default:
				p.stopRun(c)
			}
			return outcome{end: true}
		}
	}
}

// settle waits until the process has run SettleTime since it was spawned.
// settled is false when the run is over, with o saying how.
func (p *proc) settle(c *child, first chan<- error, fail func(error, bool) outcome) (o outcome, settled bool) {
	left := p.spec.SettleTime - time.Since(c.spawned)
	if left <= 0 {
		return outcome{}, true
	}
	timer := time.NewTimer(left)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
			return outcome{}, true
		case desc := <-c.exitc:
			ran := time.Since(c.spawned).Round(10 * time.Millisecond)
			p.finishRun(c, desc)
			return fail(fmt.Errorf("exited after %s (%s), before it had run %s", ran, desc, p.spec.SettleTime), true), false
		case req := <-p.reqs:
			if req.kind == reqReset {
				req.reply <- ErrNotCrashed
				continue
			}
			p.stopRun(c)
			first <- &StartError{Name: p.spec.Name, LogPath: p.spec.LogPath, LogTail: p.out.lastLines(), Err: errors.New("stopped before it settled")}
			return outcome{end: true}, false
		}
	}
}

// awaitReady polls readiness until the process is ready, exits, times out
// or is stopped. ready is false when the run is over, with o saying how.
func (p *proc) awaitReady(c *child, first chan<- error, fail func(error, bool) outcome) (o outcome, ready bool) {
	pr := startProber(&p.spec, c.pid)
	timer := time.NewTimer(p.spec.StartTimeout)
	defer timer.Stop()
	for {
		select {
		case <-pr.ready:
			_ = pr.stop()
			return outcome{}, true
		case err := <-pr.fatal:
			_ = pr.stop()
			c.g.signal(syscall.SIGKILL)
			p.finishRun(c, <-c.exitc)
			return fail(err, true), false
		case desc := <-c.exitc:
			_ = pr.stop()
			p.finishRun(c, desc)
			return fail(fmt.Errorf("exited before ready: %s", desc), true), false
		case <-timer.C:
			last := pr.stop()
			c.g.signal(syscall.SIGKILL)
			p.finishRun(c, <-c.exitc)
			return fail(fmt.Errorf("not ready after %s: %w", p.spec.StartTimeout, last), true), false
		case req := <-p.reqs:
			if req.kind == reqReset {
				req.reply <- ErrNotCrashed
				continue
			}
			_ = pr.stop()
			p.stopRun(c)
			if first != nil {
				first <- &StartError{Name: p.spec.Name, LogPath: p.spec.LogPath, LogTail: p.out.lastLines(), Err: errors.New("stopped before ready")}
			}
			return outcome{end: true}, false
		}
	}
}

// stopRun stops a running child on request and marks the proc gone.
func (p *proc) stopRun(c *child) {
	p.removeOnExit = true
	p.set(Stopping)
	p.log.Info("stopping", "pid", c.pid)
	desc := p.terminate(c)
	p.stopErr = p.finishRun(c, desc)
	p.set(Exited)
}

// terminate sends SIGTERM to the group, then SIGKILL after StopTimeout, and
// returns how the leader ended.
func (p *proc) terminate(c *child) string {
	c.g.signal(syscall.SIGTERM)
	t := time.NewTimer(p.spec.StopTimeout)
	defer t.Stop()
	select {
	case desc := <-c.exitc:
		return desc
	case <-t.C:
	}
	p.log.Warn("process did not stop in time; killing its group", "pid", c.pid, "timeout", p.spec.StopTimeout.String())
	c.g.signal(syscall.SIGKILL)
	return <-c.exitc
}

// drainRun lets a replaced child finish its work: it gets SIGTERM at once
// (before the caller of Drain is answered) unless d.Busy says it holds work
// that must end first, in which case d.Hold decides when. SIGKILL follows
// d.Timeout after the SIGTERM. It is not restarted when it exits. A stop
// request meanwhile cuts the drain short: SIGTERM at once and SIGKILL after
// StopTimeout.
func (p *proc) drainRun(c *child, d Drain, reply chan<- error) {
	p.removeOnExit = true
	p.set(Draining)
	if d.Timeout <= 0 {
		d.Timeout = p.spec.StopTimeout
	}
	busy := d.Busy != nil && d.Hold != nil && d.Busy(c.pid)
	p.log.Info("draining", "pid", c.pid, "busy", busy, "hold", d.HoldTimeout.String(), "timeout", d.Timeout.String())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	held := make(chan struct{})
	go func() {
		defer close(held)
		if busy {
			hctx, hcancel := context.WithTimeout(ctx, d.HoldTimeout)
			defer hcancel()
			d.Hold(hctx, c.pid)
		}
	}()
	var (
		killAt time.Time
		timer  *time.Timer
		kill   <-chan time.Time
		desc   string
	)
	// term sends SIGTERM once and brings the SIGKILL forward to grace from
	// now, never later than it already was.
	term := func(grace time.Duration) {
		at := time.Now().Add(grace)
		if timer == nil {
			c.g.signal(syscall.SIGTERM)
			timer = time.NewTimer(grace)
		} else if at.Before(killAt) {
			timer.Reset(grace)
		} else {
			return
		}
		killAt, kill = at, timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	waiting := held
	if !busy {
		term(d.Timeout)
		waiting = nil
	}
	reply <- nil
loop:
	for {
		select {
		case desc = <-c.exitc:
			break loop
		case <-waiting:
			waiting = nil
			term(d.Timeout)
		case <-kill:
			p.log.Warn("process did not stop in time; killing its group", "pid", c.pid)
			c.g.signal(syscall.SIGKILL)
			desc = <-c.exitc
			break loop
		case req := <-p.reqs:
			switch req.kind {
			case reqReset:
				req.reply <- ErrNotCrashed
			case reqDrain:
				req.reply <- nil // already draining
			case reqStop:
				cancel()
				waiting = nil
				term(p.spec.StopTimeout)
			}
		}
	}
	cancel()
	<-held
	p.stopErr = p.finishRun(c, desc)
	p.log.Info("drained", "pid", c.pid, "exit", desc)
	p.set(Exited)
}

// spawn starts one run of the command with its output piped to the log.
func (p *proc) spawn() (*child, error) {
	if p.spec.Socket != "" {
		if err := prepareSocket(p.spec.Socket); err != nil {
			return nil, err
		}
	}
	if p.spec.Port != 0 {
		if err := checkPortFree(p.spec.Port); err != nil {
			return nil, err
		}
	}
	cmd, err := newCmd(&p.spec, p.sv.opts.SandboxExec)
	if err != nil {
		return nil, err
	}
	// Our own pipe rather than exec's: exec would make Wait wait for the
	// copy, and the copy is not over until every process of the group is.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("create output pipe: %w", err)
	}
	if u := p.spec.User; u != nil {
		// A process that opens its output again (/dev/stderr,
		// /proc/self/fd/2: php-fpm's error_log, many servers' access
		// logs) is checked against the pipe's owner, not the descriptor
		// it holds: the pipe must be its user's.
		if err := pw.Chown(int(u.UID), int(u.GID)); err != nil {
			pr.Close()
			pw.Close()
			return nil, fmt.Errorf("give output pipe: %w", err)
		}
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	p.out.resetTail()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, fmt.Errorf("spawn: %w", err)
	}
	pid := cmd.Process.Pid
	c := &child{
		g:       &group{pgid: pid},
		pid:     pid,
		started: p.sv.clock.Now(),
		spawned: time.Now(),
		exitc:   make(chan string, 1),
		copied:  make(chan struct{}),
		pr:      pr,
	}
	if c.pidf, err = writePIDFile(p.sv.opts.PIDDir, pid, p.spec.Name); err != nil {
		p.log.Warn("no pid file: an orphan of this process could not be cleaned up after a crash of hop3", "pid", pid, "err", err)
	}
	// The marker goes first; the output waits in the pipe meanwhile.
	p.out.marker(fmt.Sprintf("started pid %d", pid))
	go func() {
		defer close(c.copied)
		_, _ = io.Copy(p.out, pr)
	}()
	go func() {
		waitExitedNoReap(pid)
		c.g.leaderExited()
		err := cmd.Wait()
		c.exitc <- exitDescription(cmd.ProcessState, err)
	}()
	return c, nil
}

// finishRun cleans up after the leader of a run exited: it waits for the
// rest of the group to be gone and for the output to drain, writes the exit
// marker and removes the pid file and a stale socket.
func (p *proc) finishRun(c *child, desc string) error {
	p.st.LastExit = desc
	p.st.PID = 0
	var err error
	if waitGroupGone(c.pid, groupGoneTimeout) {
		c.pidf.remove()
	} else {
		err = fmt.Errorf("processes of group %d still alive after SIGKILL", c.pid)
		p.log.Error("process group survived SIGKILL", "pgid", c.pid)
	}
	t := time.NewTimer(drainTimeout)
	select {
	case <-c.copied:
	case <-t.C:
		p.log.Warn("output still open after the process group died; a process escaped its group", "pid", c.pid)
	}
	t.Stop()
	c.pr.Close()
	<-c.copied
	p.out.flush()
	p.out.marker("exited: " + desc)
	removeStaleSocket(p.spec.Socket)
	p.publish()
	return err
}

// runSchedule is the owner loop of a scheduled job: it starts a run at each
// tick unless the previous run is still going.
func (p *proc) runSchedule() {
	var (
		c     *child
		exitc <-chan string
		tick  <-chan time.Time
	)
	arm := func() {
		now := p.sv.clock.Now()
		next := p.spec.Schedule.Next(now)
		if next.IsZero() {
			tick = nil
			return
		}
		if !next.After(now) {
			// Firing at once would spin; a schedule like this is a bug.
			p.log.Error("schedule returned a time that is not in the future; no more runs", "next", next, "now", now)
			tick = nil
			return
		}
		tick = p.sv.clock.After(next.Sub(now))
	}
	arm()
	for {
		select {
		case <-tick:
			if c != nil {
				p.log.Warn("scheduled run skipped: the previous run is still going", "pid", c.pid)
				p.out.marker(fmt.Sprintf("skipped scheduled run: pid %d still running", c.pid))
			} else if nc, err := p.spawn(); err != nil {
				p.st.LastExit = err.Error()
				p.publish()
				p.log.Error("scheduled run failed to start", "err", err)
			} else {
				c, exitc = nc, nc.exitc
				p.st.PID, p.st.StartedAt = c.pid, c.started
				p.set(Starting)
				p.set(Running)
			}
			arm()
		case desc := <-exitc:
			p.finishRun(c, desc)
			p.log.Info("scheduled run exited", "exit", desc)
			c, exitc = nil, nil
			p.set(Exited)
		case req := <-p.reqs:
			if req.kind == reqReset {
				req.reply <- ErrNotCrashed
				continue
			}
			if c != nil {
				p.stopRun(c)
			} else {
				p.removeOnExit = true
			}
			return
		}
	}
}
