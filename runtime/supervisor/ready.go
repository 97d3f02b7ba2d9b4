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
	"syscall"
	"time"
)

const (
	probeInterval    = 75 * time.Millisecond
	probeDialTimeout = time.Second
	probeHTTPTimeout = 3 * time.Second
)

func (s *Spec) hasReadiness() bool { return s.Socket != "" || s.Port != 0 }

func (s *Spec) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: probeDialTimeout}
	if s.Socket != "" {
		return d.DialContext(ctx, "unix", s.Socket)
	}
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)))
}

// probeOnce checks readiness once: a connect, plus a GET of HealthPath when
// set. A 4xx still means the app is up (it may not route the path).
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
	client := &http.Client{Transport: tr, Timeout: probeHTTPTimeout}
	host := "localhost"
	if s.Socket == "" {
		host = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+s.HealthPath, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("GET %s: status %d", s.HealthPath, resp.StatusCode)
	}
	return nil
}

// prober polls readiness in its own goroutine so that a slow health check
// never keeps the owner from seeing an exit or a stop request.
type prober struct {
	ready  chan struct{} // closed when ready
	last   chan error    // receives the last probe error once the prober ends
	cancel context.CancelFunc
}

func startProber(spec *Spec) *prober {
	ctx, cancel := context.WithCancel(context.Background())
	p := &prober{ready: make(chan struct{}), last: make(chan error, 1), cancel: cancel}
	go func() {
		var last error
		defer func() { p.last <- last }()
		t := time.NewTicker(probeInterval)
		defer t.Stop()
		for {
			if last = spec.probeOnce(ctx); last == nil {
				close(p.ready)
				return
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
