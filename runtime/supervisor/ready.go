package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	probeInterval    = 75 * time.Millisecond
	probeDialTimeout = time.Second
	probeHTTPTimeout = 3 * time.Second
	// portCheckInterval spaces the scans of /proc for a process's listeners.
	portCheckInterval = 400 * time.Millisecond
)

func (s *Spec) hasReadiness() bool { return s.Socket != "" || s.Port != 0 }

func (s *Spec) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: probeDialTimeout}
	if s.Socket != "" {
		return d.DialContext(ctx, "unix", s.Socket)
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
}

// healthError is a health check that got an answer, and a failing one.
type healthError struct {
	path   string
	status int
	body   string // the first lines
}

func (e *healthError) Error() string {
	msg := fmt.Sprintf("GET %s answered %d", e.path, e.status)
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

// healthBodyLines is how much of a failing health answer is shown.
const healthBodyLines = 3

// firstLines returns up to n non-empty lines of b, joined with " | ".
func firstLines(b []byte, n int) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, " | ")
}

// probeOnce checks readiness once: a connect, plus a GET of HealthPath when
// set, which must answer 2xx or 3xx.
func (s *Spec) probeOnce(ctx context.Context) error {
	if s.HealthPath == "" {
		c, err := s.dial(ctx)
		if err != nil {
			return err
		}
		return c.Close()
	}
	tr := &http.Transport{
		DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return s.dial(ctx) },
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		Timeout:   probeHTTPTimeout,
		// A redirect answers the check; following it could leave the app.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+s.HealthPath, nil)
	if err != nil {
		return err
	}
	req.Host = s.HealthHost
	if req.Host == "" {
		req.Host = "localhost"
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return &healthError{path: s.HealthPath, status: resp.StatusCode, body: firstLines(body, healthBodyLines)}
	}
	return nil
}

// prober polls readiness in its own goroutine so that a slow health check
// never keeps the owner from seeing an exit or a stop request. Besides
// "ready" it can conclude that waiting longer is pointless (fatal): the
// health check keeps failing, or the process listens on the wrong port.
type prober struct {
	ready  chan struct{} // closed when ready
	fatal  chan error    // receives why the start can not succeed
	last   chan error    // receives the last probe error once the prober ends
	cancel context.CancelFunc
}

func startProber(spec *Spec, pgid int) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{ready: make(chan struct{}), fatal: make(chan error, 1), last: make(chan error, 1), cancel: cancel}
	go func() {
		var last error
		defer func() { p.last <- last }()
		t := time.NewTicker(probeInterval)
		defer t.Stop()
		var failingSince, wrongSince, portChecked time.Time
		for {
			if last = spec.probeOnce(ctx); last == nil {
				close(p.ready)
				return
			}
			now := time.Now()
			var he *healthError
			if errors.As(last, &he) {
				if failingSince.IsZero() {
					failingSince = now
				}
				if now.Sub(failingSince) >= HealthFailAfter {
					p.fatal <- fmt.Errorf("health check failing for %s: %w", HealthFailAfter, last)
					return
				}
			} else {
				failingSince = time.Time{}
			}
			if spec.Port != 0 && pgid > 0 && now.Sub(portChecked) >= portCheckInterval {
				portChecked = now
				if wrong := wrongPort(pgid, spec.Port); wrong == "" {
					wrongSince = time.Time{}
				} else if wrongSince.IsZero() {
					wrongSince = now
				} else if now.Sub(wrongSince) >= WrongPortAfter {
					p.fatal <- fmt.Errorf("listens on %s, not $PORT (%d)", wrong, spec.Port)
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// wrongPort names the TCP addresses group pgid listens on when none of them
// is port; "" when it listens on port, or on no TCP port at all (yet).
func wrongPort(pgid, port int) string {
	socks, err := GroupSockets(pgid)
	if err != nil {
		return ""
	}
	var other []string
	for _, l := range socks.Listeners {
		if l.Network != "tcp" {
			continue
		}
		if l.Port == port {
			return ""
		}
		other = append(other, l.String())
	}
	return strings.Join(other, ", ")
}

// stop ends the prober and returns the last probe error.
func (p *prober) stop() error {
	p.cancel()
	return <-p.last
}

// prepareSocket removes a socket file left behind by a process that died
// without unlinking it (Granian binds without unlinking first, so it would
// fail with EADDRINUSE), and refuses a socket a live process answers on.
func prepareSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("check socket %s: exists and is not a socket", path)
	}
	c, err := net.DialTimeout("unix", path, probeDialTimeout)
	if err == nil {
		c.Close()
		return fmt.Errorf("check socket %s: %w", path, ErrSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	return nil
}

// removeStaleSocket tidies up after a run; a socket that still answers is
// left alone.
func removeStaleSocket(path string) {
	if path == "" {
		return
	}
	_ = prepareSocket(path)
}

// checkPortFree refuses a port that already answers: the readiness check
// would otherwise mistake the other listener for our process.
func checkPortFree(port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), probeDialTimeout)
	if err != nil {
		return nil
	}
	c.Close()
	return fmt.Errorf("check port %d: %w", port, ErrPortInUse)
}
