package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"hop3/internal/store"
	"hop3/internal/waker"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// An app idle for SLEEP_AFTER (or the server's --sleep-after) sleeps: hop3
// puts a waker (package waker) on the app's stable socket links, then
// stops every process of the app. The first connection Caddy makes to the
// app starts the live release again, without settle time, and the waker
// passes the held connections on to it.

// SleepAfterKey is the config var that makes an app sleep when idle.
const SleepAfterKey = "SLEEP_AFTER"

// SleepPoll is how often apps' processes are sampled for idleness.
const SleepPoll = 5 * time.Second

// ParseSleepAfter reads a SLEEP_AFTER or --sleep-after value: a Go
// duration ("15m", "1h30m") or whole seconds; "0" or "" never sleeps.
func ParseSleepAfter(s string) (time.Duration, error) {
	v := strings.TrimSpace(s)
	if v == "" || v == "0" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return d, nil
	}
	return 0, fmt.Errorf("%s %q: use a duration (15m, 1h) or 0 for never", SleepAfterKey, s)
}

// sleepAfter is how long app may stay idle before it sleeps; 0 never.
// Only an app served through a socket (wsgi, asgi) can sleep: a waker
// stands in for its socket, not for a port.
func (m *Manager) sleepAfter(r release) time.Duration {
	e, ok := r.procfile.Routed()
	if !ok || (e.Kind != procfile.KindWSGI && e.Kind != procfile.KindASGI) {
		return 0
	}
	if v, set := r.env[SleepAfterKey]; set {
		d, _ := ParseSleepAfter(v) // refused at config:set and at deploy
		return d
	}
	return m.cfg.SleepAfter
}

// idleCPU is the CPU share of a core below which an app's processes count
// as idle: Granian and a Flask app waiting for requests used no clock tick
// at all in samples of a quarter to one second, but a tick of a
// housekeeping thread may fall into any sample.
const idleCPU = 0.005

// idleTracker decides, sample after sample, since when each app has been
// idle: its processes used no CPU and held no connection open.
//
// Connections count, though Caddy keeps an idle keep-alive connection to
// the app after a request (it closed about 30 s after the last one, as
// measured), so an app sleeps that much later than SLEEP_AFTER says: CPU
// alone would sleep an app while a WebSocket or a long poll waits, without
// a byte moving, on an open connection, and cut it.
type idleTracker struct {
	conns func(pgid int) int // connections accepted on the group's listeners
	apps  map[string]*idleApp
}

type idleApp struct {
	pgids []int
	cpu   float64
	at    time.Time // last sample
	busy  time.Time // last seen busy, or when its processes changed
}

func newIdleTracker() *idleTracker {
	return &idleTracker{
		conns: func(pgid int) int {
			s, err := supervisor.GroupSockets(pgid)
			if err != nil {
				return 1 // unknown: not idle
			}
			return s.Connections
		},
		apps: map[string]*idleApp{},
	}
}

// observe takes a sample of app's process groups at now, with usage read
// from /proc for them (and others), and returns how long the app has been
// idle. Processes other than at the last sample (a start, a deploy, a
// restart) start idleness again. Connections are looked for only when the
// CPU says idle: reading them costs more.
func (t *idleTracker) observe(app string, pgids []int, usage map[int]supervisor.Usage, now time.Time) time.Duration {
	pgids = slices.Sorted(slices.Values(pgids))
	var cpu float64
	for _, g := range pgids {
		cpu += usage[g].CPU
	}
	a, ok := t.apps[app]
	if !ok || !slices.Equal(a.pgids, pgids) {
		t.apps[app] = &idleApp{pgids: pgids, cpu: cpu, at: now, busy: now}
		return 0
	}
	busy := cpu-a.cpu > idleCPU*now.Sub(a.at).Seconds()
	for _, g := range pgids {
		if busy {
			break
		}
		busy = t.conns(g) > 0
	}
	if busy {
		a.busy = now
	}
	a.cpu, a.at = cpu, now
	return now.Sub(a.busy)
}

// forget drops the apps not in keep.
func (t *idleTracker) forget(keep map[string]bool) {
	for app := range t.apps {
		if !keep[app] {
			delete(t.apps, app)
		}
	}
}

// sleepers holds the waker of each sleeping app.
type sleepers struct {
	mu     sync.Mutex
	wakers map[string]*waker.Waker
}

func newSleepers() *sleepers { return &sleepers{wakers: map[string]*waker.Waker{}} }

func (s *sleepers) get(app string) *waker.Waker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.wakers[app]
}

func (s *sleepers) set(app string, w *waker.Waker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wakers[app] = w
}

// take removes and returns app's waker, if any.
func (s *sleepers) take(app string) *waker.Waker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.wakers[app]
	delete(s.wakers, app)
	return w
}

// WatchSleep samples every app's processes every interval and puts apps
// idle for their SLEEP_AFTER to sleep, until ctx ends; then it closes the
// wakers (a sleeping app stays marked so: the next start of hop3 puts its
// waker up again).
func (m *Manager) WatchSleep(ctx context.Context, interval time.Duration) {
	defer m.closeWakers()
	t := newIdleTracker()
	rules := map[string]sleepRule{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		apps, err := m.cfg.Store.Apps(ctx)
		if err != nil {
			m.log.Warn("list apps for idleness", "err", err)
			continue
		}
		type candidate struct {
			app   string
			pgids []int
			after time.Duration
		}
		var cands []candidate
		var all []int
		keep := map[string]bool{}
		for _, a := range apps {
			if a.Release == 0 || a.State != store.AppRunning || !a.Asleep.IsZero() {
				continue
			}
			var pgids []int
			for _, p := range m.Processes(a.Name) {
				if p.PID > 0 {
					pgids = append(pgids, p.PID)
				}
			}
			if len(pgids) == 0 {
				continue // starting, crashed or between cron runs
			}
			keep[a.Name] = true
			key := fmt.Sprint(slices.Sorted(slices.Values(pgids)))
			rule, ok := rules[a.Name]
			if !ok || rule.pgids != key {
				// New processes read the config again; so does this.
				r, err := m.loadRelease(ctx, a.Name, a.Release)
				if err != nil {
					m.log.Warn("read app's sleep setting", "app", a.Name, "err", err)
				}
				rule = sleepRule{pgids: key, after: m.sleepAfter(r)}
				rules[a.Name] = rule
			}
			if rule.after > 0 {
				cands = append(cands, candidate{a.Name, pgids, rule.after})
				all = append(all, pgids...)
			}
		}
		// One read of /proc for every app that may sleep, none when no
		// app may.
		if len(cands) > 0 {
			usage := supervisor.GroupUsage("/proc", all)
			now := time.Now()
			for _, c := range cands {
				if t.observe(c.app, c.pgids, usage, now) < c.after {
					continue
				}
				if err := m.putToSleep(ctx, c.app); err != nil {
					m.log.Error("put idle app to sleep", "app", c.app, "err", err)
				}
			}
		}
		t.forget(keep)
		for app := range rules {
			if !keep[app] {
				delete(rules, app)
			}
		}
	}
}

// sleepRule is an app's SLEEP_AFTER as its running processes (pgids) were
// started with.
type sleepRule struct {
	pgids string
	after time.Duration
}

// tryLock takes app's lock only if no change to the app is running: an
// app being deployed is not idle.
func (m *Manager) tryLock(app string) (func(), bool) {
	ch := m.lockOf(app)
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, true
	default:
		return nil, false
	}
}

// putToSleep stops a running app's processes until its next request: a
// waker takes the app's sockets first, so that no request finds none.
func (m *Manager) putToSleep(ctx context.Context, app string) error {
	unlock, ok := m.tryLock(app)
	if !ok {
		return nil
	}
	defer unlock()
	a, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return err
	}
	if a.State != store.AppRunning || !a.Asleep.IsZero() || m.sleepAfter(r) == 0 {
		return nil
	}
	since := time.Now()
	if err := m.cfg.Store.SetAsleep(ctx, app, since); err != nil {
		return err
	}
	if err := m.standIn(ctx, r); err != nil {
		if uerr := m.cfg.Store.SetAsleep(context.WithoutCancel(ctx), app, time.Time{}); uerr != nil {
			err = fmt.Errorf("%w; additionally, marking it awake: %v", err, uerr)
		}
		return err
	}
	// Cron entries stop with the rest: a sleeping app runs nothing.
	m.stopOld(context.WithoutCancel(ctx), app, 0, nil)
	m.log.Info("app sleeps", "app", app, "release", r.number)
	m.event(ctx, app, "sleep", "", fmt.Sprintf("idle for %s: processes stopped until the next request", m.sleepAfter(r)))
	return nil
}

// wakerSocket is where the waker of app listens in for the stable link
// kind ("web", "static"); gen keeps it apart from a waker being retired.
func (m *Manager) wakerSocket(app, kind string, gen int64) string {
	return filepath.Join(m.paths.Run(app), fmt.Sprintf("waker-%s.%d.sock", kind, gen))
}

// standIn puts a waker on the app's stable socket links (web, and static
// when the release serves files), owned like the app's own sockets. On
// failure the links point where they did.
func (m *Manager) standIn(ctx context.Context, r release) error {
	u, err := m.prepareApp(ctx, r.app)
	if err != nil {
		return err
	}
	// Wakers of a hop3 that stopped while the app slept.
	if stale, _ := filepath.Glob(filepath.Join(m.paths.Run(r.app), "waker-*.sock")); len(stale) > 0 {
		for _, f := range stale {
			os.Remove(f)
		}
	}
	gen := m.gen.Add(1)
	socks := []waker.Socket{{Path: m.wakerSocket(r.app, "web", gen), Link: m.paths.WebSocket(r.app)}}
	if mounts, err := m.staticMounts(r); err == nil && len(mounts) > 0 {
		socks = append(socks, waker.Socket{Path: m.wakerSocket(r.app, staticKind, gen), Link: m.paths.StaticSocket(r.app)})
	}
	w, err := waker.Listen(waker.Config{
		Name:    r.app,
		Sockets: socks,
		Prepare: func(path string) error { return m.cfg.Isolation.Socket(path, u) },
		Wake:    func(ctx context.Context, w *waker.Waker) error { return m.wake(ctx, r.app, w) },
		Logger:  m.cfg.Logger,
	})
	if err != nil {
		return err
	}
	// Known before any request can reach it.
	m.sleep.set(r.app, w)
	var moved []waker.Socket
	var was []string
	for _, s := range socks {
		old, _ := os.Readlink(s.Link)
		if err = swapSymlink(filepath.Base(s.Path), s.Link); err != nil {
			err = fmt.Errorf("point %s at the waker: %w", s.Link, err)
			break
		}
		moved, was = append(moved, s), append(was, old)
	}
	if err != nil {
		for i, s := range moved {
			if was[i] != "" {
				swapSymlink(was[i], s.Link)
			}
		}
		m.sleep.take(r.app)
		w.Close()
		return err
	}
	return nil
}

// wakeTimeout bounds a wake that waits for a change to the app (a deploy
// holding its lock) and the start.
const wakeTimeout = 10 * time.Minute

// wake starts a sleeping app's live release for its waker w: ready is
// enough, no settle time. The waker passes the held connections on.
func (m *Manager) wake(ctx context.Context, app string, w *waker.Waker) error {
	ctx, cancel := context.WithTimeout(ctx, wakeTimeout)
	defer cancel()
	unlock, err := m.lock(ctx, app, nil)
	if err != nil {
		return err
	}
	defer unlock()
	if m.sleep.get(app) != w {
		return nil // a deploy or a restart woke it meanwhile
	}
	start := time.Now()
	_, r, err := m.liveRelease(ctx, app)
	if err != nil {
		return err
	}
	r.gen = int(m.gen.Add(1))
	r.wake = true
	specs, err := m.startRelease(ctx, r, nil)
	if err != nil {
		m.event(ctx, app, "wake", "", "wake failed: "+oneLine(err))
		return err
	}
	if err := m.switchTo(r, nil); err != nil {
		m.stopSpecs(context.WithoutCancel(ctx), specs)
		return err
	}
	m.awake(ctx, app)
	m.log.Info("app woke", "app", app, "release", r.number, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// awake is told that app's processes run again and its links point to
// them (a wake, a deploy, a restart): its waker passes what it holds on
// and goes, and the app is no longer marked asleep.
func (m *Manager) awake(ctx context.Context, app string) {
	w := m.sleep.take(app)
	if w == nil {
		if a, err := m.cfg.Store.App(ctx, app); err != nil || a.Asleep.IsZero() {
			return
		}
	}
	if err := m.cfg.Store.SetAsleep(context.WithoutCancel(ctx), app, time.Time{}); err != nil {
		m.log.Error("mark app awake", "app", app, "err", err)
	}
	if w != nil {
		w.Handoff()
	}
}

// unsleep removes a sleeping app's waker without starting the app (stop,
// destroy): what it holds is answered 503.
func (m *Manager) unsleep(ctx context.Context, app string) error {
	if w := m.sleep.take(app); w != nil {
		w.Close()
	}
	err := m.cfg.Store.SetAsleep(ctx, app, time.Time{})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// restoreAsleep puts the waker of an app that was asleep when hop3 stopped
// up again, instead of starting the app.
func (m *Manager) restoreAsleep(ctx context.Context, app string, number int) error {
	r, err := m.loadRelease(ctx, app, number)
	if err != nil {
		return err
	}
	return m.standIn(ctx, r)
}

// closeWakers stops every waker, as hop3 stops.
func (m *Manager) closeWakers() {
	m.sleep.mu.Lock()
	ws := m.sleep.wakers
	m.sleep.wakers = map[string]*waker.Waker{}
	m.sleep.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
}

// sleeping reports whether a waker stands in for app.
func (m *Manager) sleeping(app string) bool { return m.sleep.get(app) != nil }
