// Package waker stands in for a sleeping app: it listens on sockets that
// the app's stable socket links point to while its processes are stopped,
// holds the connections that arrive, has the app started once, and then
// passes each held connection's bytes on to the app through the same
// stable link, which by then points to the app's new socket.
//
// It knows nothing of apps, releases or processes: starting the app and
// switching the links is the Wake function's job.
package waker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Socket is one socket the waker stands in on.
type Socket struct {
	// Path is where the waker listens.
	Path string
	// Link is the stable path Caddy dials, a symbolic link that the caller
	// points to Path once the waker listens, and Wake points to the app's
	// own socket. Held connections are passed on through it.
	Link string
}

// Config configures a Waker.
type Config struct {
	// Name is the app's, for logs and the 503 page.
	Name    string
	Sockets []Socket
	// Prepare, when set, is called on each socket once it is bound and
	// before anyone can be pointed to it: its owner and mode.
	Prepare func(path string) error
	// Wake starts the app and points every Link at its sockets. The
	// waker calls it once at a time, on the first connection after a start
	// or after RetryAfter has passed since a failure.
	Wake func(ctx context.Context, w *Waker) error
	// RetryAfter is how long after a failed wake new connections are
	// answered 503 at once rather than trying again; 0 means 10 s.
	RetryAfter time.Duration
	Logger     *slog.Logger
}

// DefaultRetryAfter is Config.RetryAfter's default: an app that crashes
// at start is not started again for every request.
const DefaultRetryAfter = 10 * time.Second

// backlogGrace is how long a waker keeps accepting after the app is up:
// connections made before the links moved may still wait in its backlog.
const backlogGrace = 200 * time.Millisecond

// answerTimeout bounds the wait for a held request's head and body before
// a 503 is written.
const answerTimeout = 5 * time.Second

// maxDiscard bounds the request body read before a 503 is written.
const maxDiscard = 1 << 20

type state int

const (
	asleep state = iota // nothing asked yet, or a failure has aged
	waking              // Wake runs; connections are held
	failed              // Wake failed at failedAt; connections get 503
	up                  // the app is up: connections are passed on
	closed              // closed without the app: connections get 503
)

type held struct {
	conn net.Conn
	link string
}

// Waker holds connections for a sleeping app.
type Waker struct {
	cfg   Config
	log   *slog.Logger
	lns   []*net.UnixListener
	ctx   context.Context
	stop  context.CancelFunc
	loops sync.WaitGroup
	conns sync.WaitGroup

	mu       sync.Mutex
	state    state
	failedAt time.Time
	held     []held
	done     chan struct{} // closed when the listeners are
}

// Listen binds every socket of cfg and starts holding what connects. The
// caller points the links at the sockets afterwards.
func Listen(cfg Config) (*Waker, error) {
	if cfg.Wake == nil || len(cfg.Sockets) == 0 {
		return nil, errors.New("waker: sockets and a wake function are required")
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, stop := context.WithCancel(context.Background())
	w := &Waker{cfg: cfg, log: cfg.Logger.With("component", "waker", "app", cfg.Name), ctx: ctx, stop: stop, done: make(chan struct{})}
	for _, s := range cfg.Sockets {
		// A socket left by a waker of a hop3 that was killed.
		os.Remove(s.Path)
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: s.Path, Net: "unix"})
		if err == nil && cfg.Prepare != nil {
			if err = cfg.Prepare(s.Path); err != nil {
				ln.Close()
			}
		}
		if err != nil {
			w.closeListeners()
			stop()
			return nil, fmt.Errorf("listen for %s: %w", cfg.Name, err)
		}
		w.lns = append(w.lns, ln)
	}
	for i, ln := range w.lns {
		w.loops.Go(func() { w.accept(ln, cfg.Sockets[i].Link) })
	}
	return w, nil
}

// Done is closed once the waker has stopped listening.
func (w *Waker) Done() <-chan struct{} { return w.done }

func (w *Waker) accept(ln *net.UnixListener, link string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed, or the backlog grace is over
		}
		w.take(held{conn: c, link: link})
	}
}

// take decides what becomes of one new connection.
func (w *Waker) take(h held) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == failed && time.Since(w.failedAt) >= w.cfg.RetryAfter {
		w.state = asleep
	}
	switch w.state {
	case asleep:
		w.state = waking
		go w.wake()
		fallthrough
	case waking:
		w.held = append(w.held, h)
	case up:
		w.conns.Go(func() { w.pass(h) })
	default:
		w.conns.Go(func() { w.refuse(h) })
	}
}

func (w *Waker) wake() {
	start := time.Now()
	err := w.cfg.Wake(w.ctx, w)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state != waking {
		return // handed off or closed meanwhile
	}
	if err != nil {
		w.state, w.failedAt = failed, time.Now()
		w.log.Error("app did not wake; held requests answered 503", "held", len(w.held), "err", err)
		w.release(w.refuse)
		return
	}
	w.log.Debug("held requests passed on", "held", len(w.held), "took", time.Since(start).Round(time.Millisecond))
	w.toUp()
}

// Handoff tells the waker that the app is up by other means (a deploy):
// held connections are passed on through the links, and the waker stops
// listening. It does not wait.
func (w *Waker) Handoff() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.state == up || w.state == closed {
		return
	}
	w.toUp()
}

// toUp passes the held connections on and closes the listeners once the
// backlog had its grace. w.mu is held.
func (w *Waker) toUp() {
	w.state = up
	w.release(w.pass)
	deadline := time.Now().Add(backlogGrace)
	for _, ln := range w.lns {
		ln.SetDeadline(deadline)
	}
	go w.finish()
}

// Close stops listening; held connections are answered 503. It waits for
// the listeners to close, not for the connections.
func (w *Waker) Close() {
	w.mu.Lock()
	if w.state != up && w.state != closed {
		w.state = closed
		w.release(w.refuse)
	}
	w.mu.Unlock()
	w.stop()
	w.closeListeners()
	w.finish()
}

// Wait waits until every connection the waker passed on or answered is
// over (tests).
func (w *Waker) Wait() {
	<-w.done
	w.conns.Wait()
}

// release hands every held connection to f. w.mu is held.
func (w *Waker) release(f func(held)) {
	for _, h := range w.held {
		w.conns.Go(func() { f(h) })
	}
	w.held = nil
}

func (w *Waker) finish() {
	w.loops.Wait()
	w.closeListeners()
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
}

func (w *Waker) closeListeners() {
	for _, ln := range w.lns {
		ln.Close() // removes its socket file
	}
}

// pass copies the bytes of a held connection to and from the app, through
// the stable link.
func (w *Waker) pass(h held) {
	defer h.conn.Close()
	// The link must have left the waker, or the connection would come
	// back to it.
	if target, err := os.Readlink(h.link); err == nil && w.ours(target, h.link) {
		w.log.Error("app woke but its socket still points to the waker", "link", h.link)
		w.answer503(h.conn)
		return
	}
	up, err := net.DialTimeout("unix", h.link, 5*time.Second)
	if err != nil {
		w.log.Error("pass a held request to the app", "err", err)
		w.answer503(h.conn)
		return
	}
	defer up.Close()
	Pipe(h.conn, up)
}

// ours reports whether target, read from link, names one of the waker's
// sockets.
func (w *Waker) ours(target, link string) bool {
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(link), target)
	}
	for _, s := range w.cfg.Sockets {
		if filepath.Clean(s.Path) == filepath.Clean(target) {
			return true
		}
	}
	return false
}

func (w *Waker) refuse(h held) {
	defer h.conn.Close()
	w.answer503(h.conn)
}

// answer503 reads the request (closing a unix socket with unread bytes
// resets it, and Caddy would show a 502 instead) and answers 503.
func (w *Waker) answer503(c net.Conn) {
	c.SetDeadline(time.Now().Add(answerTimeout))
	if req, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
		io.Copy(io.Discard, io.LimitReader(req.Body, maxDiscard))
		req.Body.Close()
	}
	body := w.cfg.Name + " could not be started; its owner can see why with `logs " + w.cfg.Name + "`.\n"
	fmt.Fprintf(c, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %s\r\nRetry-After: %d\r\nConnection: close\r\n\r\n%s",
		strconv.Itoa(len(body)), int(w.cfg.RetryAfter/time.Second), body)
}

// Pipe copies a to b and b to a until both directions end, passing each
// end of input on as a half-close, then closes both.
func Pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(b, a) })
	wg.Go(func() { copyHalf(a, b) })
	wg.Wait()
	a.Close()
	b.Close()
}

type closeWriter interface{ CloseWrite() error }

func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(closeWriter); ok && err == nil {
		cw.CloseWrite()
		return
	}
	// An error either way ends both directions.
	dst.Close()
	src.Close()
}
