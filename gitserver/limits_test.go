package gitserver_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"hop3/gitserver"
)

// A client that connects and sends nothing, or trickles its version line a
// byte at a time (defeating an idle timeout), is cut off at the handshake
// timeout.
func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t, gitserver.Config{HandshakeTimeout: 300 * time.Millisecond, IdleTimeout: time.Hour})
	t.Run("silent", func(t *testing.T) {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		waitClosed(t, conn, 20*time.Second)
	})
	t.Run("trickle", func(t *testing.T) {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			line := "SSH-2.0-" + strings.Repeat("x", 200)
			for i := 0; i < len(line); i++ {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				if _, err := conn.Write([]byte{line[i]}); err != nil {
					return
				}
			}
		}()
		waitClosed(t, conn, 20*time.Second)
	})
	t.Run("authenticated connections stay", func(t *testing.T) {
		c := ts.dial(t, ts.deploy)
		time.Sleep(time.Second) // past the handshake timeout
		if out, err := run(c, "whoami"); err != nil || out != "deployer\n" {
			t.Fatalf("authenticated connection after the handshake timeout: %q %v", out, err)
		}
	})
}

// An authenticated connection with no traffic is closed after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, gitserver.Config{IdleTimeout: 300 * time.Millisecond})
	c := ts.dial(t, ts.deploy)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("idle connection still open")
	}
}

// Connections that have not authenticated are capped; one more is closed
// before the handshake, and a slot frees when one of them goes.
// Authenticated connections do not count.
func TestMaxUnauthenticated(t *testing.T) {
	const limit = 3
	ts := startServer(t, gitserver.Config{MaxStartups: gitserver.Startups{Start: limit, Rate: 100, Full: limit}, PerSourceMaxStartups: limit, HandshakeTimeout: time.Minute})
	var held []net.Conn
	for i := 0; i < limit; i++ {
		conn, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if banner, err := readBanner(conn, 10*time.Second); err != nil || !strings.HasPrefix(banner, "SSH-2.0-hop3") {
			t.Fatalf("connection %d: banner %q, %v", i, banner, err)
		}
		held = append(held, conn)
	}

	extra, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	if banner, err := readBanner(extra, 10*time.Second); err == nil {
		t.Fatalf("connection %d beyond the limit got a handshake: %q", limit+1, banner)
	}
	extra.Close()
	// A real client is refused too while the slots are taken.
	if c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(ts.deploy.signer))); err == nil {
		c.Close()
		t.Fatal("a client got in while every unauthenticated slot was taken")
	}

	held[0].Close()
	c := eventuallyDial(t, ts, ts.deploy)
	defer c.Close()
	if out, err := run(c, "whoami"); err != nil || out != "deployer\n" {
		t.Fatalf("after a slot freed: %q %v", out, err)
	}
	for _, h := range held[1:] {
		h.Close()
	}
	// Authenticated connections hold no slot: more of them than the limit
	// can be open at once.
	var clients []*gossh.Client
	for i := 0; i < 2*limit; i++ {
		clients = append(clients, eventuallyDial(t, ts, ts.deploy))
	}
	for i, c := range clients {
		if out, err := run(c, "whoami"); err != nil || out != "deployer\n" {
			t.Fatalf("client %d: %q %v", i, out, err)
		}
		c.Close()
	}
}

// eventuallyDial retries while the server frees slots.
func eventuallyDial(t *testing.T, ts *testServer, k key) *gossh.Client {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(k.signer)))
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// One connection may hold MaxSessions sessions at once; one more is refused
// and the connection keeps working.
func TestMaxSessionsPerConnection(t *testing.T) {
	const limit = 3
	ts := startServer(t, gitserver.Config{MaxSessions: limit})
	c := ts.dial(t, ts.deploy)
	var open []*gossh.Session
	for i := 0; i < limit; i++ {
		s, err := c.NewSession()
		if err != nil {
			t.Fatalf("session %d: %v", i+1, err)
		}
		in, err := s.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("wait"); err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		open = append(open, s)
		_ = in
	}
	_, err := c.NewSession()
	var oe *gossh.OpenChannelError
	if err == nil || !asOpenChannelError(err, &oe) || oe.Reason != gossh.ResourceShortage {
		t.Fatalf("session %d: err = %v, want refused for resource shortage", limit+1, err)
	}
	if !strings.Contains(oe.Message, fmt.Sprintf("at most %d", limit)) {
		t.Errorf("refusal does not say the limit: %q", oe.Message)
	}
	// Ending one frees its place.
	open[0].Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := run(c, "whoami")
		if err == nil && out == "deployer\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no session after one ended: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func asOpenChannelError(err error, target **gossh.OpenChannelError) bool {
	oe, ok := err.(*gossh.OpenChannelError)
	if ok {
		*target = oe
	}
	return ok
}

// Everything but sessions running a command is refused: local and remote
// TCP forwarding, unix-socket forwarding, agent forwarding, X11, the sftp
// subsystem.
func TestForwardingAndSubsystemsRefused(t *testing.T) {
	ts := startServer(t, gitserver.Config{})
	c := ts.dial(t, ts.admin)

	// Something to forward to, which must never be reached.
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if conn, err := target.Accept(); err == nil {
			reached <- struct{}{}
			conn.Close()
		}
	}()

	t.Run("local forwarding (direct-tcpip)", func(t *testing.T) {
		if conn, err := c.Dial("tcp", target.Addr().String()); err == nil {
			conn.Close()
			t.Fatal("direct-tcpip channel opened")
		}
	})
	t.Run("remote forwarding (tcpip-forward)", func(t *testing.T) {
		if l, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
			l.Close()
			t.Fatal("tcpip-forward accepted")
		}
	})
	t.Run("unix socket forwarding", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "s")
		ul, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer ul.Close()
		if conn, err := c.Dial("unix", sock); err == nil {
			conn.Close()
			t.Fatal("direct-streamlocal channel opened")
		}
		if l, err := c.ListenUnix(filepath.Join(t.TempDir(), "r")); err == nil {
			l.Close()
			t.Fatal("streamlocal-forward accepted")
		}
	})
	t.Run("agent forwarding", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := agent.RequestAgentForwarding(s); err == nil {
			t.Fatal("agent forwarding accepted")
		}
		// The session still works for what it is for.
		var out strings.Builder
		s.Stdout = &out
		if err := s.Run("whoami"); err != nil || out.String() != "admin (admin)\n" {
			t.Fatalf("session after a refused agent request: %q %v", out.String(), err)
		}
	})
	t.Run("x11", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		payload := gossh.Marshal(struct {
			Single   bool
			Protocol string
			Cookie   string
			Screen   uint32
		}{false, "MIT-MAGIC-COOKIE-1", "00112233445566778899aabbccddeeff", 0})
		ok, err := s.SendRequest("x11-req", true, payload)
		if err != nil || ok {
			t.Fatalf("x11-req: ok=%v err=%v, want refused", ok, err)
		}
	})
	t.Run("sftp subsystem", func(t *testing.T) {
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.RequestSubsystem("sftp"); err == nil {
			t.Fatal("sftp subsystem accepted")
		}
	})
	select {
	case <-reached:
		t.Fatal("a forwarded connection reached the target")
	default:
	}
	// The connection is still usable after all of that.
	if out, err := run(c, "whoami"); err != nil || out != "admin (admin)\n" {
		t.Fatalf("after refusals: %q %v", out, err)
	}
}

// A terminal that is resized during a command must not wedge the session:
// gliderlabs/ssh blocks a session's request loop on the second window
// change unless the handler reads them, which would leak the session and,
// with MaxSessions, lock the connection out.
func TestWindowChangesDoNotWedgeSessions(t *testing.T) {
	ts := startServer(t, gitserver.Config{MaxSessions: 1})
	c := ts.dial(t, ts.deploy)
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 3; i++ {
			// The slot of the session before frees once the server has seen
			// its channel close.
			s, err := c.NewSession()
			for tries := 0; err != nil && tries < 200; tries++ {
				time.Sleep(50 * time.Millisecond)
				s, err = c.NewSession()
			}
			if err != nil {
				done <- fmt.Errorf("session %d: %v", i+1, err)
				return
			}
			if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
				done <- err
				return
			}
			for j := 0; j < 3; j++ {
				if err := s.WindowChange(30+j, 100); err != nil {
					done <- err
					return
				}
			}
			var out strings.Builder
			s.Stdout = &out
			if err := s.Run("whoami"); err != nil {
				done <- fmt.Errorf("session %d: %v", i+1, err)
				return
			}
			if !strings.Contains(out.String(), "deployer") {
				done <- fmt.Errorf("session %d printed %q", i+1, out.String())
				return
			}
			s.Close()
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("sessions with window changes never finished: the session is wedged")
	}
}

// Window changes after the command started reach the backend.
func TestWindowChangesReachTheCommand(t *testing.T) {
	ts := startServer(t, gitserver.Config{})
	c := ts.dial(t, ts.deploy)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s.Stdout = &out
	if err := s.Start("winch"); err != nil {
		t.Fatal(err)
	}
	if err := s.WindowChange(40, 100); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); err != nil {
		t.Fatalf("%v; output %q", err, out.String())
	}
	if got := strings.ReplaceAll(out.String(), "\r", ""); got != "80x24\nresized 100x40\n" {
		t.Fatalf("output %q", got)
	}
}

// A session keeps at most 64 of the environment variables a client sends.
func TestEnvRequestsBounded(t *testing.T) {
	ts := startServer(t, gitserver.Config{})
	c := ts.dial(t, ts.deploy)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	refused := 0
	for i := 0; i < 100; i++ {
		if err := s.Setenv(fmt.Sprintf("V%d", i), strings.Repeat("x", 1000)); err != nil {
			refused++
		}
	}
	var out strings.Builder
	s.Stdout = &out
	if err := s.Run("env"); err != nil {
		t.Fatal(err)
	}
	if out.String() != "64\n" || refused != 36 {
		t.Fatalf("session kept %q variables, %d refused; want 64 kept, 36 refused", strings.TrimSpace(out.String()), refused)
	}
}

// The host key is created owner-only, and a key found readable by others
// is made so.
func TestHostKeyMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ssh", "host_ed25519")
	cfg := withFakes(t, gitserver.Config{HostKeyPath: path, Keys: &fakeKeys{}})
	if _, err := gitserver.New(cfg); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for others", p, fi.Mode().Perm())
		}
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := gitserver.New(cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("host key left at %v", fi.Mode().Perm())
	}
}

// dialFrom opens n idle TCP connections to addr from the local address
// from (any of 127.0.0.0/8 reaches a loopback listener on Linux).
func dialFrom(t *testing.T, from, addr string, n int) []net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	var conns []net.Conn
	for i := 0; i < n; i++ {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d from %s: %v", i, from, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return conns
}

// TestFloodFromOneAddress holds 80 idle connections from 127.0.0.2 with
// the default limits: they take that address's share, not everyone's, and
// logins from 127.0.0.1 go on working.
func TestFloodFromOneAddress(t *testing.T) {
	t.Parallel()
	ts := startServer(t, gitserver.Config{HandshakeTimeout: time.Minute})
	dialFrom(t, "127.0.0.2", ts.addr, 80)
	time.Sleep(200 * time.Millisecond) // let the server count them
	for i := 0; i < 5; i++ {
		c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(ts.deploy.signer)))
		if err != nil {
			t.Fatalf("login %d from 127.0.0.1 during the flood: %v", i, err)
		}
		if out, err := run(c, "whoami"); err != nil || out != "deployer\n" {
			t.Errorf("login %d: %q %v", i, out, err)
		}
		c.Close()
	}
}

// TestBurstFromOneAddress logs in 40 times at once from one address, more
// than its share of handshakes: the extra ones wait for a turn instead of
// being refused.
func TestBurstFromOneAddress(t *testing.T) {
	t.Parallel()
	ts := startServer(t, gitserver.Config{PerSourceStartups: 2})
	const n = 40
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(ts.deploy.signer)))
			if err == nil {
				_, err = run(c, "whoami")
				c.Close()
			}
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Errorf("login in a burst: %v", err)
		}
	}
}
