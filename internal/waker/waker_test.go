package waker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// sockDir is a short directory: unix socket paths must stay below 108
// bytes.
func sockDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// link points the stable link at target, as deploys do.
func link(t *testing.T, target, path string) {
	t.Helper()
	os.Remove(path + ".new")
	if err := os.Symlink(filepath.Base(target), path+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// serveApp stands for the woken app: an HTTP server on its own socket.
func serveApp(t *testing.T, path, body string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", body, r.URL.Path, b)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// request sends one HTTP request over the stable link and returns the
// answer's status and body.
func request(path, urlPath, body string) (int, string, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: app\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", urlPath, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

type answer struct {
	code int
	body string
	err  error
}

// requests sends n requests at once and collects the answers.
func requests(path string, n int) []answer {
	out := make([]answer, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			code, body, err := request(path, fmt.Sprintf("/r%d", i), fmt.Sprintf("b%d", i))
			out[i] = answer{code, body, err}
		})
	}
	wg.Wait()
	return out
}

func TestWakerHoldsThenPasses(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	web, wsock, app := filepath.Join(dir, "web.sock"), filepath.Join(dir, "waker.sock"), filepath.Join(dir, "app.sock")
	var wakes atomic.Int32
	release := make(chan struct{})
	w, err := Listen(Config{
		Name:    "a",
		Sockets: []Socket{{Path: wsock, Link: web}},
		Prepare: func(p string) error { return os.Chmod(p, 0o660) },
		Wake: func(ctx context.Context, _ *Waker) error {
			wakes.Add(1)
			<-release // every request arrives while the app starts
			serveApp(t, app, "up")
			link(t, app, web)
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(wsock); err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("waker socket: %v, %v; want mode 0660 from Prepare", fi, err)
	}
	link(t, wsock, web)
	done := make(chan []answer)
	go func() { done <- requests(web, 8) }()
	time.Sleep(300 * time.Millisecond)
	close(release)
	for i, a := range <-done {
		want := fmt.Sprintf("up /r%d b%d", i, i)
		if a.err != nil || a.code != 200 || a.body != want {
			t.Errorf("request %d = %d %q %v, want 200 %q", i, a.code, a.body, a.err, want)
		}
	}
	if n := wakes.Load(); n != 1 {
		t.Errorf("wake ran %d times, want once", n)
	}
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("waker still listening after the app woke")
	}
	if _, err := os.Stat(wsock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("waker socket left behind: %v", err)
	}
	// New requests reach the app directly.
	if code, body, err := request(web, "/after", ""); err != nil || code != 200 || body != "up /after " {
		t.Errorf("request after the wake = %d %q %v", code, body, err)
	}
	w.Wait()
}

func TestWakerFailedWake(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	web, wsock := filepath.Join(dir, "web.sock"), filepath.Join(dir, "waker.sock")
	var wakes atomic.Int32
	w, err := Listen(Config{
		Name:       "crashy",
		Sockets:    []Socket{{Path: wsock, Link: web}},
		RetryAfter: 500 * time.Millisecond,
		Wake: func(ctx context.Context, _ *Waker) error {
			wakes.Add(1)
			time.Sleep(100 * time.Millisecond)
			return errors.New("web.1 did not start: exit status 1")
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	link(t, wsock, web)
	for i, a := range requests(web, 4) {
		if a.err != nil || a.code != 503 || !strings.Contains(a.body, "crashy could not be started") {
			t.Errorf("held request %d = %d %q %v, want 503", i, a.code, a.body, a.err)
		}
	}
	if n := wakes.Load(); n != 1 {
		t.Fatalf("wake ran %d times for the held requests, want once", n)
	}
	// Within RetryAfter: 503 at once, no new attempt.
	if code, _, err := request(web, "/", ""); err != nil || code != 503 {
		t.Errorf("request right after the failure = %d %v, want 503", code, err)
	}
	if n := wakes.Load(); n != 1 {
		t.Errorf("wake ran again within RetryAfter (%d)", n)
	}
	time.Sleep(600 * time.Millisecond)
	if code, _, err := request(web, "/", ""); err != nil || code != 503 {
		t.Errorf("request after RetryAfter = %d %v, want 503", code, err)
	}
	if n := wakes.Load(); n != 2 {
		t.Errorf("wake ran %d times, want a second attempt after RetryAfter", n)
	}
	// The app stays asleep: the waker still listens.
	select {
	case <-w.Done():
		t.Fatal("waker stopped listening after a failed wake")
	default:
	}
}

func TestWakerHandoff(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	web, wsock, app := filepath.Join(dir, "web.sock"), filepath.Join(dir, "waker.sock"), filepath.Join(dir, "app.sock")
	block := make(chan struct{})
	w, err := Listen(Config{
		Name:    "a",
		Sockets: []Socket{{Path: wsock, Link: web}},
		// Waiting for the app's lock, which a deploy holds.
		Wake: func(ctx context.Context, _ *Waker) error { <-block; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer close(block)
	link(t, wsock, web)
	done := make(chan []answer)
	go func() { done <- requests(web, 3) }()
	time.Sleep(200 * time.Millisecond)
	// The deploy starts a new release and moves the link, then hands off.
	serveApp(t, app, "v2")
	link(t, app, web)
	w.Handoff()
	for i, a := range <-done {
		if want := fmt.Sprintf("v2 /r%d b%d", i, i); a.err != nil || a.code != 200 || a.body != want {
			t.Errorf("request %d = %d %q %v, want 200 %q", i, a.code, a.body, a.err, want)
		}
	}
	select {
	case <-w.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("waker still listening after the handoff")
	}
}

func TestWakerClose(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	web, wsock := filepath.Join(dir, "web.sock"), filepath.Join(dir, "waker.sock")
	w, err := Listen(Config{
		Name:    "a",
		Sockets: []Socket{{Path: wsock, Link: web}},
		Wake:    func(ctx context.Context, _ *Waker) error { <-ctx.Done(); return ctx.Err() },
	})
	if err != nil {
		t.Fatal(err)
	}
	link(t, wsock, web)
	done := make(chan []answer)
	go func() { done <- requests(web, 2) }()
	time.Sleep(200 * time.Millisecond)
	w.Close()
	for i, a := range <-done {
		if a.err != nil || a.code != 503 {
			t.Errorf("request %d held at close = %d %v, want 503", i, a.code, a.err)
		}
	}
	if _, err := os.Stat(wsock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("waker socket left behind: %v", err)
	}
}

// TestWakerNotBackToItself: a wake that reports success without moving
// the link must not make the waker dial itself.
func TestWakerNotBackToItself(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	web, wsock := filepath.Join(dir, "web.sock"), filepath.Join(dir, "waker.sock")
	w, err := Listen(Config{
		Name:    "a",
		Sockets: []Socket{{Path: wsock, Link: web}},
		Wake:    func(ctx context.Context, _ *Waker) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	link(t, wsock, web)
	if code, _, err := request(web, "/", ""); err != nil || code != 503 {
		t.Errorf("request = %d %v, want 503", code, err)
	}
}

// acceptOne listens on path and hands the first connection to f.
func acceptOne(t *testing.T, path string, f func(net.Conn)) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		if c, err := ln.Accept(); err == nil {
			f(c)
		}
	}()
}

func TestPipeHalfClose(t *testing.T) {
	t.Parallel()
	dir := sockDir(t)
	echo, front := filepath.Join(dir, "echo.sock"), filepath.Join(dir, "front.sock")
	// The upstream answers only at the end of its input, as a client that
	// half-closes expects.
	acceptOne(t, echo, func(c net.Conn) {
		b, _ := io.ReadAll(c)
		c.Write([]byte("got " + string(b)))
		c.Close()
	})
	acceptOne(t, front, func(c net.Conn) {
		up, err := net.Dial("unix", echo)
		if err != nil {
			c.Close()
			return
		}
		Pipe(c, up)
	})
	c, err := net.Dial("unix", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello"))
	c.(*net.UnixConn).CloseWrite()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "got hello" {
		t.Errorf("through the pipe = %q, %v; want %q", b, err, "got hello")
	}
}
