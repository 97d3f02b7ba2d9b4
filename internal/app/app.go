// Package app is hop3's orchestrator: it turns pushes and commands into
// releases, processes and routes, composing the store, the buildpacks, the
// process manager and the router.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"hop3/buildpacks"
	"hop3/internal/isolation"
	"hop3/internal/layout"
	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// Router is what the orchestrator needs from the Caddy router.
type Router interface {
	Set(ctx context.Context, r router.Route) error
	Remove(ctx context.Context, app string) error
}

// Supervisor is what the orchestrator needs from the process manager.
type Supervisor interface {
	Start(ctx context.Context, spec supervisor.Spec) error
	Stop(ctx context.Context, name string) error
	Drain(name string, d supervisor.Drain) error
	Status(name string) (supervisor.Status, bool)
	List() []supervisor.Status
	Run(ctx context.Context, spec supervisor.Spec, stdin io.Reader, stdout, stderr io.Writer) (int, error)
}

// terminalRunner is the optional part of a Supervisor that runs a command
// on a pseudo-terminal.
type terminalRunner interface {
	RunTerminal(ctx context.Context, spec supervisor.Spec, term io.ReadWriter, size supervisor.WinSize, resize <-chan supervisor.WinSize) (int, error)
}

// Config configures a Manager.
type Config struct {
	Root           string
	CacheDir       string // shared build caches; default <Root>/cache
	Domain         string // apps answer at <app>.<Domain>
	PublicHTTPAddr string // how URLs are printed, e.g. "127.0.0.1:8080"
	Tools          buildpacks.Tools
	GranianVersion string
	BuildTimeout   time.Duration
	Store          *store.Store
	Router         Router
	Supervisor     Supervisor
	Logger         *slog.Logger
	// Observer, when set, is told about each deploy and build (metrics).
	Observer Observer
	// MaxReleaseSize caps the bytes a release's checkout may hold (0: no
	// cap); an app's MAX_RELEASE_SIZE may lower it, never raise it.
	MaxReleaseSize int64
	// Executable is hop3's own binary, which serves each app's static
	// files (hop3 serve-static); default: the running executable.
	Executable string
	// Isolation says whether each app runs as its own user; the zero value
	// runs every app as hop3's user.
	Isolation isolation.Policy

	// PublicHTTPSAddr, set when TLS is on, makes URLs https:// at its
	// port.
	PublicHTTPSAddr string
	// Certs, set when TLS is on and hop3 runs Caddy, tells the end of a
	// push whether the app's certificate is there yet.
	Certs func(hosts []string) []router.CertStatus

	// SleepAfter is how long an app may be idle before its processes are
	// stopped until its next request, for apps that set no SLEEP_AFTER;
	// 0: such apps never sleep.
	SleepAfter time.Duration
}

// Manager runs deploys and commands.
type Manager struct {
	cfg   Config
	paths layout.Layout
	log   *slog.Logger

	mu    sync.Mutex
	locks map[string]chan struct{}
	gen   atomic.Int64 // numbers each start of an app's processes
	disk  *diskCache
	sleep *sleepers
	// workers holds the worker counts the autoscaler gave (budget.go).
	workers *workerCounts
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Router == nil || cfg.Supervisor == nil {
		return nil, errors.New("app: store, router and supervisor are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Domain == "" {
		cfg.Domain = "localhost"
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = layout.New(cfg.Root).Cache()
	}
	if cfg.BuildTimeout == 0 {
		cfg.BuildTimeout = 15 * time.Minute
	}
	if cfg.Executable == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("app: find hop3's binary: %w", err)
		}
		cfg.Executable = self
	}
	m := &Manager{
		cfg:   cfg,
		paths: layout.New(cfg.Root),
		log:   cfg.Logger.With("component", "app"),
		locks: map[string]chan struct{}{},
		disk:  newDiskCache(),
		sleep: newSleepers(),

		workers: newWorkerCounts(),
	}
	if err := m.prepareRoot(); err != nil {
		return nil, err
	}
	return m, nil
}

// lock serialises deploys and changes of one app. A caller that has to wait
// is told so through waiting, once.
func (m *Manager) lock(ctx context.Context, app string, waiting func()) (func(), error) {
	ch := m.lockOf(app)
	select {
	case ch <- struct{}{}:
	default:
		if waiting != nil {
			waiting()
		}
		select {
		case ch <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return func() { <-ch }, nil
}

// lockOf returns app's lock: a channel holding one token while someone
// holds it.
func (m *Manager) lockOf(app string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.locks[app]
	if !ok {
		ch = make(chan struct{}, 1)
		m.locks[app] = ch
	}
	return ch
}

// URL is the address an app answers at.
func (m *Manager) URL(app string) string {
	scheme, addr, defPort := "http", m.cfg.PublicHTTPAddr, "80"
	if m.cfg.PublicHTTPSAddr != "" {
		// With TLS on, plain HTTP only redirects (HTTPS_ONLY) or is the
		// weaker of two: the URL to share is the https one.
		scheme, addr, defPort = "https", m.cfg.PublicHTTPSAddr, "443"
	}
	host := app + "." + m.cfg.Domain
	if _, port, err := net.SplitHostPort(addr); err == nil && port != defPort && port != "" {
		host += ":" + port
	}
	return scheme + "://" + host + "/"
}

// certNote says, before a push's last line, when the app's own host has
// no certificate yet: its https URL does not answer until Caddy gets one,
// or ever when Caddy is failing to.
func (m *Manager) certNote(out *ui.Writer, app string) {
	if m.cfg.Certs == nil {
		return
	}
	host := app + "." + m.cfg.Domain
	for _, s := range m.cfg.Certs([]string{host}) {
		switch s.State {
		case router.CertPending:
			out.Info("certificate pending: Caddy is getting one for " + host + "; `domains " + app + "` shows when it is there")
		case router.CertFailing:
			out.Fail(s.Warning())
		}
	}
}
