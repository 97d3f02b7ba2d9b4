package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// pyHTTP is a threaded HTTP server for drain and readiness tests. It
// listens on a unix socket ("unix PATH") or TCP ("tcp HOST:PORT"), sleeps
// N seconds for /slow/N, answers 400 when WANT_HOST is set and the Host
// differs, and on SIGTERM stops accepting, finishes its requests and exits.
const pyHTTP = `
import http.server, os, signal, socketserver, sys, threading, time
kind, addr = sys.argv[1], sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/slow/"):
            time.sleep(float(self.path[6:]))
        want = os.environ.get("WANT_HOST")
        status = 400 if want and self.headers.get("Host") != want else 200
        body = ("host=%s" % self.headers.get("Host")).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
if kind == "unix":
    class S(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = False
    srv = S(addr, H)
else:
    host, port = addr.rsplit(":", 1)
    class S(http.server.ThreadingHTTPServer):
        daemon_threads = False
    srv = S((host, int(port)), H)
print("listening", flush=True)
signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=srv.shutdown).start())
srv.serve_forever()
srv.server_close()
print("drained", flush=True)
`

func needPython(t *testing.T) {
	t.Helper()
	if _, err := resolveCommand("python3", "", nil); err != nil {
		t.Skip("python3 not available")
	}
}

// unixGet sends GET path over the unix socket sock.
func unixGet(sock, path, host string) (int, string, error) {
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}, Timeout: 20 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://x"+path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// startHTTP starts pyHTTP on a unix socket under supervision.
func startHTTP(t *testing.T, s *Supervisor, name string) Spec {
	t.Helper()
	dir := shortDir(t)
	sock := filepath.Join(dir, "web.sock")
	spec := Spec{
		Name: name, Command: []string{"python3", "-c", pyHTTP, "unix", sock}, Socket: sock,
		LogPath: filepath.Join(dir, "web.log"), Restart: true, StopTimeout: 5 * time.Second,
	}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatalf("start: %v", err)
	}
	return spec
}

// TestDrainFinishesInFlight drains a server while it answers a slow
// request: Drain returns at once, the process shows Draining, the request
// is answered, and the process ends and is not restarted.
func TestDrainFinishesInFlight(t *testing.T) {
	t.Parallel()
	needPython(t)
	s, _ := newTestSupervisor(t, Options{})
	spec := startHTTP(t, s, "app/web.1")
	st, _ := s.Status(spec.Name)

	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		code, body, err := unixGet(spec.Socket, "/slow/1.5", "app")
		got <- answer{code, body, err}
	}()
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if err := s.Drain(spec.Name, Drain{Timeout: 10 * time.Second}); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Drain took %s; it must not wait for the drain", took)
	}
	if now, ok := s.Status(spec.Name); !ok || now.State != Draining {
		t.Errorf("status during the drain = %+v, %v; want Draining", now, ok)
	}
	a := <-got
	if a.err != nil || a.code != 200 {
		t.Fatalf("in-flight request = %d %q %v, want 200", a.code, a.body, a.err)
	}
	eventually(t, 10*time.Second, "drained process forgotten", func() bool {
		_, ok := s.Status(spec.Name)
		return !ok
	})
	assertGroupGone(t, st.PID)
	if log := readFile(t, spec.LogPath); !strings.Contains(log, "drained") || countLines(log, "--- hop3: started") != 1 {
		t.Errorf("the server did not end its own way, or was restarted:\n%s", log)
	}
}

// TestDrainTimeouts covers the ways a drain ends early: SIGKILL after
// Timeout for a process that ignores SIGTERM, Hold keeping the SIGTERM back
// until it returns (or its HoldTimeout passes), and Stop cutting a drain
// short.
func TestDrainTimeouts(t *testing.T) {
	t.Parallel()
	ignoreTerm := []string{"sh", "-c", "trap '' TERM; echo up; while :; do sleep 0.1; done"}
	tests := []struct {
		name    string
		drain   func(held *atomic.Bool) Drain
		stop    bool // call Stop during the drain
		minTime time.Duration
		maxTime time.Duration
	}{
		{
			name:    "killed after timeout",
			drain:   func(*atomic.Bool) Drain { return Drain{Timeout: 300 * time.Millisecond} },
			minTime: 300 * time.Millisecond, maxTime: 5 * time.Second,
		},
		{
			name: "hold until its timeout, then term",
			drain: func(held *atomic.Bool) Drain {
				return Drain{
					Busy: func(int) bool { return true },
					Hold: func(ctx context.Context, pgid int) {
						held.Store(true)
						<-ctx.Done()
					},
					HoldTimeout: 700 * time.Millisecond,
					Timeout:     200 * time.Millisecond,
				}
			},
			minTime: 900 * time.Millisecond, maxTime: 6 * time.Second,
		},
		{
			name: "not busy: no hold",
			drain: func(held *atomic.Bool) Drain {
				return Drain{
					Busy:        func(int) bool { return false },
					Hold:        func(ctx context.Context, pgid int) { held.Store(true); <-ctx.Done() },
					HoldTimeout: time.Minute,
					Timeout:     200 * time.Millisecond,
				}
			},
			minTime: 200 * time.Millisecond, maxTime: 5 * time.Second,
		},
		{
			name:    "stop cuts a long drain short",
			drain:   func(*atomic.Bool) Drain { return Drain{Timeout: time.Minute} },
			stop:    true,
			minTime: 0, maxTime: 5 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSupervisor(t, Options{})
			dir := shortDir(t)
			spec := Spec{Name: "app/worker.1", Command: ignoreTerm, LogPath: filepath.Join(dir, "w.log"),
				Restart: true, StopTimeout: 300 * time.Millisecond}
			if err := s.Start(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, "the trap set", func() bool { return strings.Contains(readFile(t, spec.LogPath), "up") })
			st, _ := s.Status(spec.Name)
			var held atomic.Bool
			start := time.Now()
			if err := s.Drain(spec.Name, tt.drain(&held)); err != nil {
				t.Fatal(err)
			}
			if tt.stop {
				if err := s.Stop(context.Background(), spec.Name); err != nil {
					t.Fatalf("stop during drain: %v", err)
				}
			}
			eventually(t, 10*time.Second, "drained process gone", func() bool {
				_, ok := s.Status(spec.Name)
				return !ok
			})
			took := time.Since(start)
			if took < tt.minTime || took > tt.maxTime {
				t.Errorf("drain took %s, want between %s and %s", took, tt.minTime, tt.maxTime)
			}
			assertGroupGone(t, st.PID)
			if want := tt.name == "hold until its timeout, then term"; held.Load() != want {
				t.Errorf("hold ran: %v, want %v", held.Load(), want)
			}
			if log := readFile(t, spec.LogPath); !strings.Contains(log, "exited: signal: killed") {
				t.Errorf("want the group killed:\n%s", log)
			}
		})
	}
}

// TestStartSettle: a process that exits within its settle time fails
// Start with its last lines; one that stays up is started after it.
func TestStartSettle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		wantErr []string
	}{
		{name: "exits at once", command: "echo cannot connect to the queue >&2; exit 3",
			wantErr: []string{"exited", "exit status 3", "before it had run 1s", "cannot connect to the queue"}},
		{name: "exits after a while", command: "sleep 0.4; echo giving up; exit 0",
			wantErr: []string{"exit status 0", "giving up"}},
		{name: "stays up", command: "echo working; exec sleep 100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSupervisor(t, Options{})
			dir := shortDir(t)
			spec := Spec{Name: "app/worker.1", Command: []string{"sh", "-c", tt.command},
				LogPath: filepath.Join(dir, "w.log"), Restart: true, SettleTime: time.Second}
			start := time.Now()
			err := s.Start(context.Background(), spec)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				if took := time.Since(start); took < time.Second {
					t.Errorf("Start returned after %s, before the settle time", took)
				}
				if st, _ := s.Status(spec.Name); st.State != Running {
					t.Errorf("state %s, want running", st.State)
				}
				return
			}
			if err == nil {
				t.Fatal("start succeeded")
			}
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("error is %T, want *StartError", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, ok := s.Status(spec.Name); ok {
				t.Error("a process that failed to settle is still listed")
			}
			if log := readFile(t, spec.LogPath); countLines(log, "--- hop3: started") != 1 {
				t.Errorf("restarted while settling:\n%s", log)
			}
		})
	}
}

// TestStartReadinessErrors: a process listening on another port than its
// Port, and a health check answering 4xx to a wrong Host, fail fast and
// say what they saw; with the right Host the check passes.
func TestStartReadinessErrors(t *testing.T) {
	t.Parallel()
	needPython(t)
	t.Run("wrong port", func(t *testing.T) {
		t.Parallel()
		s, _ := newTestSupervisor(t, Options{})
		dir := shortDir(t)
		port := reservePort(t)
		spec := Spec{Name: "app/web.1", Command: []string{"python3", "-c", pyHTTP, "tcp", "127.0.0.1:0"},
			Port: port, LogPath: filepath.Join(dir, "w.log"), StartTimeout: time.Minute}
		start := time.Now()
		err := s.Start(context.Background(), spec)
		if err == nil {
			t.Fatal("start succeeded")
		}
		if took := time.Since(start); took > WrongPortAfter+5*time.Second {
			t.Errorf("took %s to see the wrong port", took)
		}
		want := fmt.Sprintf("not $PORT (%d)", port)
		if !strings.Contains(err.Error(), "listens on 127.0.0.1:") || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name the port bound and %s", err, want)
		}
	})
	for _, tt := range []struct {
		name, host string
		ok         bool
	}{
		{name: "health with the app's host", host: "app.example.org", ok: true},
		{name: "health with localhost gets 400", host: "", ok: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSupervisor(t, Options{})
			dir := shortDir(t)
			sock := filepath.Join(dir, "w.sock")
			spec := Spec{Name: "app/web.1", Command: []string{"python3", "-c", pyHTTP, "unix", sock},
				Env: append(envWithPath(), "WANT_HOST=app.example.org"), Socket: sock, HealthPath: "/up",
				HealthHost: tt.host, LogPath: filepath.Join(dir, "w.log"), StartTimeout: time.Minute}
			start := time.Now()
			err := s.Start(context.Background(), spec)
			if tt.ok {
				if err != nil {
					t.Fatalf("start: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("a health check answered 400 passed")
			}
			if took := time.Since(start); took > HealthFailAfter+5*time.Second {
				t.Errorf("took %s to give up on a failing health check", took)
			}
			if !strings.Contains(err.Error(), "GET /up answered 400: host=localhost") {
				t.Errorf("error %q lacks the status and body", err)
			}
		})
	}
}

// TestGroupSockets reads a process group's listeners and accepted
// connections from /proc.
func TestGroupSockets(t *testing.T) {
	t.Parallel()
	needPython(t)
	s, _ := newTestSupervisor(t, Options{})
	spec := startHTTP(t, s, "app/web.1")
	st, _ := s.Status(spec.Name)
	for range 2 {
		c, err := net.Dial("unix", spec.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	eventually(t, 5*time.Second, "two accepted connections", func() bool {
		socks, err := GroupSockets(st.PID)
		return err == nil && socks.Connections == 2
	})
	socks, _ := GroupSockets(st.PID)
	if len(socks.Listeners) != 1 || socks.Listeners[0].Path != spec.Socket || !socks.Listeners[0].Loopback() {
		t.Errorf("listeners = %+v, want the unix socket %s", socks.Listeners, spec.Socket)
	}

	public := Spec{Name: "app/web.2", Command: []string{"python3", "-c", pyHTTP, "tcp", "0.0.0.0:0"},
		LogPath: filepath.Join(shortDir(t), "w.log")}
	if err := s.Start(context.Background(), public); err != nil {
		t.Fatal(err)
	}
	pst, _ := s.Status(public.Name)
	eventually(t, 5*time.Second, "a TCP listener", func() bool {
		socks, err := GroupSockets(pst.PID)
		return err == nil && len(socks.Listeners) == 1
	})
	socks, _ = GroupSockets(pst.PID)
	l := socks.Listeners[0]
	if l.Network != "tcp" || l.Loopback() || !strings.HasPrefix(l.String(), "0.0.0.0:") || l.Port == 0 {
		t.Errorf("listener = %+v (%s), want 0.0.0.0 on a port", l, l)
	}
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", l.Port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 5*time.Second, "one TCP connection", func() bool {
		socks, err := GroupSockets(pst.PID)
		return err == nil && socks.Connections == 1
	})
}

func TestParseHexAddr(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want string
	}{
		{"0100007F:1F90", "127.0.0.1:8080"},
		{"00000000:0050", "0.0.0.0:80"},
		{"00000000000000000000000000000000:01BB", "[::]:443"},
		{"00000000000000000000000001000000:0016", "[::1]:22"},
		{"0000000000000000FFFF00000100007F:1F90", "127.0.0.1:8080"},
	}
	for _, tt := range tests {
		ip, port, err := parseHexAddr(tt.in)
		if err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if got := (Listener{Network: "tcp", IP: ip, Port: port}).String(); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{"", "0100007F", "zz00007F:0050", "0100007F:zz"} {
		if _, _, err := parseHexAddr(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// envWithPath is hop3's own environment, for specs that add to it.
func envWithPath() []string { return os.Environ() }

// TestLiveGroups reads back the groups a supervisor recorded in its pid
// directory, as `hop3 doctor` does from outside.
func TestLiveGroups(t *testing.T) {
	t.Parallel()
	pidDir := filepath.Join(t.TempDir(), "pids")
	s, _ := newTestSupervisor(t, Options{PIDDir: pidDir})
	spec := Spec{Name: "shop/worker.1@v3.2", Command: []string{"sleep", "100"}}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(spec.Name)
	groups, err := LiveGroups(pidDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 1 || groups[0].PGID != st.PID || groups[0].Name != spec.Name {
		t.Fatalf("groups = %+v, want %s with pgid %d", groups, spec.Name, st.PID)
	}
	if err := s.Stop(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	if groups, _ := LiveGroups(pidDir); len(groups) != 0 {
		t.Errorf("groups after stop = %+v", groups)
	}
	if groups, err := LiveGroups(filepath.Join(t.TempDir(), "none")); err != nil || groups != nil {
		t.Errorf("missing dir = %v, %v", groups, err)
	}
}
