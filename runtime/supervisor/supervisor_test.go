package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStateString(t *testing.T) {
	t.Parallel()
	for st, want := range map[State]string{
		Starting: "starting", Running: "running", Backoff: "backoff",
		Stopping: "stopping", Exited: "exited", Crashed: "crashed", State(0): "state(0)",
	} {
		if got := st.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", int(st), got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	long := "/" + strings.Repeat("s", 120)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no name", Spec{Command: []string{"true"}}, "empty name"},
		{"no command", Spec{Name: "a"}, "empty command"},
		{"socket and port", Spec{Name: "a", Command: []string{"true"}, Socket: "/tmp/x.sock", Port: 80}, "both socket and port"},
		{"long socket", Spec{Name: "a", Command: []string{"true"}, Socket: long}, "longer than"},
		{"health without check", Spec{Name: "a", Command: []string{"true"}, HealthPath: "/"}, "health path without"},
		{"health not absolute", Spec{Name: "a", Command: []string{"true"}, Port: 80, HealthPath: "up"}, "does not start with /"},
		{"scheduled with port", Spec{Name: "a", Command: []string{"true"}, Port: 80, Schedule: every(time.Minute)}, "scheduled job"},
		{"missing executable", Spec{Name: "a", Command: []string{"no-such-command-hop3"}}, "not found"},
		{"ok", Spec{Name: "a", Command: []string{"true"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := validate(&tt.spec)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				if tt.spec.StartTimeout != DefaultStartTimeout || tt.spec.StopTimeout != DefaultStopTimeout || tt.spec.LogMaxBytes != DefaultLogMaxBytes {
					t.Errorf("defaults not applied: %+v", tt.spec)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("validate = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	rest := " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 4242 0 0"
	tests := []struct {
		name    string
		line    string
		want    procStat
		wantErr bool
	}{
		{"plain", "123 (sleep) S 1 123 123" + rest, procStat{state: 'S', pgrp: 123, start: 4242}, false},
		{"spaces and parens in name", "77 (a) b (c)) Z 1 70 70" + rest, procStat{state: 'Z', pgrp: 70, start: 4242}, false},
		{"truncated", "77 (x) S 1 2", procStat{}, true},
		{"no name", "garbage", procStat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseProcStat(tt.line)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	self, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if self.pgrp != syscall.Getpgrp() || self.start == 0 {
		t.Errorf("own stat = %+v, pgrp want %d", self, syscall.Getpgrp())
	}
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg := &logRegistry{logger: discardLogger(), files: map[string]*logFile{}}
	lf, err := reg.acquire(filepath.Join(dir, "a.log"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	w := &lineWriter{out: lf}
	w.Write([]byte("one\ntw"))
	w.marker("started pid 1") // must not split "two"
	w.Write([]byte("o\nthr"))
	w.Write([]byte("ee"))
	w.flush()
	w.marker("exited: exit status 0")
	reg.release(lf)

	got := readFile(t, filepath.Join(dir, "a.log"))
	want := "one\n--- hop3: started pid 1\ntwo\nthree\n--- hop3: exited: exit status 0\n"
	if got != want {
		t.Errorf("log = %q, want %q", got, want)
	}
	tail := w.lastLines()
	if len(tail) != 5 || tail[2] != "two" {
		t.Errorf("tail = %q", tail)
	}
	for i := range 30 {
		fmt.Fprintf(w, "l%d\n", i)
	}
	if tail := w.lastLines(); len(tail) != tailLines || tail[tailLines-1] != "l29" {
		t.Errorf("tail after 30 lines = %q", tail)
	}
}

func TestStartReadiness(t *testing.T) {
	t.Parallel()
	if _, err := resolveCommand("python3", "", nil); err != nil {
		t.Skip("python3 not available")
	}
	tests := []struct {
		name   string
		health string
		status string
		useTCP bool
	}{
		{name: "socket opened late"},
		{name: "port opened late", useTCP: true},
		{name: "socket with health", health: "/up", status: "200"},
		{name: "port with health redirect counts as up", health: "/up", status: "302", useTCP: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSupervisor(t, Options{})
			dir := shortDir(t)
			status := tt.status
			if status == "" {
				status = "200"
			}
			spec := Spec{Name: "app/web.1", LogPath: filepath.Join(dir, "web.log"), HealthPath: tt.health, StartTimeout: 20 * time.Second}
			var dial func() (net.Conn, error)
			if tt.useTCP {
				spec.Port = reservePort(t)
				spec.Command = pyCommand("tcp", fmt.Sprint(spec.Port), "0.4", status)
				dial = func() (net.Conn, error) { return net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", spec.Port)) }
			} else {
				spec.Socket = filepath.Join(dir, "web.sock")
				spec.Command = pyCommand("unix", spec.Socket, "0.4", status)
				dial = func() (net.Conn, error) { return net.Dial("unix", spec.Socket) }
			}
			if err := s.Start(context.Background(), spec); err != nil {
				t.Fatalf("start: %v", err)
			}
			// Start returned: the server must be accepting now.
			c, err := dial()
			if err != nil {
				t.Fatalf("not accepting after Start returned: %v", err)
			}
			c.Close()
			st, ok := s.Status(spec.Name)
			if !ok || st.State != Running || st.PID <= 0 {
				t.Fatalf("status = %+v, %v", st, ok)
			}
			if err := s.Stop(context.Background(), spec.Name); err != nil {
				t.Fatalf("stop: %v", err)
			}
			assertGroupGone(t, st.PID)
			if _, ok := s.Status(spec.Name); ok {
				t.Error("stopped process still listed")
			}
		})
	}
}

func TestStartFailures(t *testing.T) {
	t.Parallel()
	if _, err := resolveCommand("python3", "", nil); err != nil {
		t.Skip("python3 not available")
	}
	tests := []struct {
		name     string
		command  func(sock string) []string
		timeout  time.Duration
		wantErr  []string
		wantTail []string
	}{
		{
			name: "exits before ready",
			command: func(string) []string {
				return []string{"sh", "-c", "echo boom-stdout; echo boom-stderr >&2; exit 1"}
			},
			wantErr:  []string{"exited before ready: exit status 1", "boom-stdout", "boom-stderr"},
			wantTail: []string{"boom-stdout", "boom-stderr", "--- hop3: exited: exit status 1"},
		},
		{
			name:    "health answers 500",
			command: func(sock string) []string { return pyCommand("unix", sock, "0", "500") },
			// Long enough for Python to start on a loaded machine.
			timeout:  4 * time.Second,
			wantErr:  []string{"not ready after 4s", "answered 500", "server listening"},
			wantTail: []string{"server listening", "--- hop3: exited: signal: killed"},
		},
		{
			name: "never listens, children too",
			command: func(string) []string {
				return []string{"sh", "-c", "echo waiting; sleep 100 & sleep 100"}
			},
			timeout:  500 * time.Millisecond,
			wantErr:  []string{"not ready after 500ms", "waiting"},
			wantTail: []string{"waiting"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newTestSupervisor(t, Options{})
			dir := shortDir(t)
			sock := filepath.Join(dir, "w.sock")
			events, unsub := s.Subscribe()
			defer unsub()
			spec := Spec{
				Name: "app/web.1", Command: tt.command(sock), Socket: sock, HealthPath: "/",
				LogPath: filepath.Join(dir, "w.log"), StartTimeout: tt.timeout,
			}
			err := s.Start(context.Background(), spec)
			if err == nil {
				t.Fatal("start succeeded")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("error is %T, want *StartError", err)
			}
			for _, w := range tt.wantTail {
				found := false
				for _, l := range se.LogTail {
					found = found || strings.Contains(l, w)
				}
				if !found {
					t.Errorf("tail %q lacks %q", se.LogTail, w)
				}
			}
			// Nothing left: no entry, no process group, no pid file.
			if _, ok := s.Status(spec.Name); ok {
				t.Error("failed start left an entry")
			}
			waitEvent(t, events, 5*time.Second, isTo(spec.Name, Starting))
			pids, _ := os.ReadDir(s.opts.PIDDir)
			if len(pids) != 0 {
				t.Errorf("pid files left: %v", pids)
			}
			if !strings.Contains(readFile(t, spec.LogPath), "--- hop3: started pid ") {
				t.Error("no start marker in log")
			}
			pgid := startedPID(t, spec.LogPath)
			assertGroupGone(t, pgid)
		})
	}
}

// startedPID reads the pid from the last start marker of a log.
func startedPID(t *testing.T, logPath string) int {
	t.Helper()
	pid := 0
	for _, l := range strings.Split(readFile(t, logPath), "\n") {
		if v, ok := strings.CutPrefix(l, "--- hop3: started pid "); ok {
			fmt.Sscan(v, &pid)
		}
	}
	if pid == 0 {
		t.Fatal("no start marker in log")
	}
	return pid
}

func TestStopKillsWholeGroup(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := t.TempDir()
	spec := Spec{Name: "app/worker.1", Command: []string{"sh", "-c", "sleep 100 & sleep 100"}, Restart: true, LogPath: filepath.Join(dir, "w.log")}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(spec.Name)
	eventually(t, 5*time.Second, "both sleeps", func() bool { return len(liveMembers(st.PID)) >= 2 })
	if files, _ := os.ReadDir(s.opts.PIDDir); len(files) != 1 {
		t.Errorf("pid files while running: %d, want 1", len(files))
	}
	if err := s.Stop(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, st.PID)
	if files, _ := os.ReadDir(s.opts.PIDDir); len(files) != 0 {
		t.Errorf("pid files after stop: %d", len(files))
	}
	log := readFile(t, spec.LogPath)
	if !strings.Contains(log, fmt.Sprintf("--- hop3: started pid %d\n", st.PID)) || !strings.Contains(log, "--- hop3: exited: signal: terminated\n") {
		t.Errorf("log markers missing:\n%s", log)
	}
	if err := s.Stop(context.Background(), spec.Name); !errors.Is(err, ErrNotFound) {
		t.Errorf("second stop = %v, want ErrNotFound", err)
	}
}

func TestStopEscalatesToKill(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	// An ignored SIGTERM is inherited by the sleep, so only SIGKILL ends it.
	spec := Spec{Name: "stubborn", Command: []string{"sh", "-c", "trap '' TERM; sleep 100; true"}, StopTimeout: 300 * time.Millisecond}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(spec.Name)
	eventually(t, 5*time.Second, "sleep started", func() bool { return len(liveMembers(st.PID)) >= 2 })
	events, unsub := s.Subscribe()
	defer unsub()
	start := time.Now()
	if err := s.Stop(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < spec.StopTimeout {
		t.Error("stop returned before the grace period: SIGTERM should have been ignored")
	}
	assertGroupGone(t, st.PID)
	waitEvent(t, events, time.Second, func(ev Event) bool { return ev.From == Running && ev.To == Stopping })
	waitEvent(t, events, time.Second, func(ev Event) bool { return ev.From == Stopping && ev.To == Exited })
}

func TestRestartAfterKill(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{MinUptime: 50 * time.Millisecond})
	events, unsub := s.Subscribe()
	defer unsub()
	spec := Spec{Name: "app/web.1", Command: []string{"sh", "-c", "sleep 100 & sleep 100"}, Restart: true, Labels: map[string]string{"kind": "web"}}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	first, _ := s.Status(spec.Name)
	eventually(t, 5*time.Second, "both sleeps", func() bool { return len(liveMembers(first.PID)) >= 2 })
	time.Sleep(100 * time.Millisecond) // past MinUptime: a long run
	if err := syscall.Kill(first.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Backoff))
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Running))
	second, _ := s.Status(spec.Name)
	if second.PID == first.PID || second.PID == 0 {
		t.Errorf("pid after restart = %d (was %d)", second.PID, first.PID)
	}
	if second.Restarts != 1 || second.LastExit != "signal: killed" || second.Labels["kind"] != "web" {
		t.Errorf("status after restart = %+v", second)
	}
	// The killed leader's background child must not survive the restart.
	assertGroupGone(t, first.PID)
}

func TestCrashLoop(t *testing.T) {
	t.Parallel()
	s, logs := newTestSupervisor(t, Options{MaxRestarts: 3})
	events, unsub := s.Subscribe()
	defer unsub()
	dir := t.TempDir()
	spec := Spec{Name: "app/worker.1", Command: []string{"sh", "-c", "echo failing; exit 3"}, Restart: true, LogPath: filepath.Join(dir, "w.log")}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 10*time.Second, isTo(spec.Name, Crashed))
	st, _ := s.Status(spec.Name)
	if st.State != Crashed || st.Restarts != 3 || st.LastExit != "exit status 3" || st.PID != 0 {
		t.Errorf("status = %+v", st)
	}
	log := logs.String()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "component=supervisor") ||
		!strings.Contains(log, spec.LogPath) || !strings.Contains(log, `last_exit="exit status 3"`) {
		t.Errorf("crash not logged loudly:\n%s", log)
	}
	if got := countLines(readFile(t, spec.LogPath), "--- hop3: started pid"); got != 4 {
		t.Errorf("%d starts in log, want 4", got)
	}
	// Stays down.
	time.Sleep(100 * time.Millisecond)
	if st, _ := s.Status(spec.Name); st.State != Crashed || st.Restarts != 3 {
		t.Errorf("crashed process moved on: %+v", st)
	}
	// Start refuses a running name but replaces a crashed one; Reset first.
	if err := s.Reset(spec.Name); err != nil {
		t.Fatalf("reset: %v", err)
	}
	waitEvent(t, events, 10*time.Second, isTo(spec.Name, Crashed))
	if st, _ := s.Status(spec.Name); st.Restarts != 7 {
		t.Errorf("restarts after reset round = %d, want 7", st.Restarts)
	}
	if err := s.Start(context.Background(), Spec{Name: spec.Name, Command: []string{"sleep", "100"}}); err != nil {
		t.Fatalf("start over a crashed process: %v", err)
	}
	if st, _ := s.Status(spec.Name); st.State != Running || st.Restarts != 0 {
		t.Errorf("replacement status = %+v", st)
	}
	if err := s.Reset(spec.Name); !errors.Is(err, ErrNotCrashed) {
		t.Errorf("reset of a running process = %v", err)
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := shortDir(t)
	spec := Spec{Name: "a", Command: []string{"sleep", "100"}}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), spec); !errors.Is(err, ErrAlreadyStarted) {
		t.Errorf("second start = %v, want ErrAlreadyStarted", err)
	}
	// Two names may not claim one socket.
	sock := filepath.Join(dir, "x.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := s.Start(context.Background(), Spec{Name: "b", Command: []string{"sleep", "100"}, Socket: sock, StartTimeout: time.Second}); !errors.Is(err, ErrSocketInUse) {
		t.Errorf("start on a live socket = %v, want ErrSocketInUse", err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("live socket was removed: %v", err)
	}
}

func TestStaleSocketRemoved(t *testing.T) {
	t.Parallel()
	if _, err := resolveCommand("python3", "", nil); err != nil {
		t.Skip("python3 not available")
	}
	s, _ := newTestSupervisor(t, Options{})
	dir := shortDir(t)
	sock := filepath.Join(dir, "web.sock")
	// Leave a socket file with nobody listening, as a SIGKILLed server does.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("stale socket not left: %v", err)
	}
	spec := Spec{Name: "web", Command: pyCommand("unix", sock, "0", "200"), Socket: sock, StartTimeout: 20 * time.Second}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatalf("start over a stale socket: %v", err)
	}
	// Not a socket at all: refused, left alone.
	file := filepath.Join(dir, "file.sock")
	os.WriteFile(file, []byte("x"), 0o600)
	err = s.Start(context.Background(), Spec{Name: "web2", Command: []string{"sleep", "1"}, Socket: file})
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("start on a regular file = %v", err)
	}
}

func TestLogRotation(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "logs", "app", "worker.1.log")
	const max = 2000
	spec := Spec{
		Name:        "rot",
		Command:     []string{"sh", "-c", `i=0; while [ $i -lt 200 ]; do echo "line $i ........................................"; i=$((i+1)); done`},
		LogPath:     logPath,
		LogMaxBytes: max,
	}
	events, unsub := s.Subscribe()
	defer unsub()
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 10*time.Second, isTo("rot", Exited))
	cur, old := readFile(t, logPath), readFile(t, logPath+".1")
	if old == "" {
		t.Fatal("no rotated file")
	}
	for name, content := range map[string]string{"current": cur, "old": old} {
		if len(content) > max {
			t.Errorf("%s file is %d bytes, max %d", name, len(content), max)
		}
		if !strings.HasSuffix(content, "\n") {
			t.Errorf("%s file does not end with a whole line", name)
		}
	}
	if !strings.HasSuffix(cur, "--- hop3: exited: exit status 0\n") {
		t.Errorf("current file does not end with the exit marker:\n%s", cur)
	}
	// The two files hold the newest lines, in order and without a gap; the
	// oldest are gone.
	var nums []int
	for _, l := range strings.Split(old+cur, "\n") {
		var n int
		if _, err := fmt.Sscanf(l, "line %d ", &n); err == nil {
			nums = append(nums, n)
		}
	}
	if len(nums) == 0 || nums[len(nums)-1] != 199 || nums[0] == 0 {
		t.Fatalf("lines kept: %v", nums)
	}
	for i := 1; i < len(nums); i++ {
		if nums[i] != nums[i-1]+1 {
			t.Fatalf("gap in kept lines: %v", nums)
		}
	}
	if files, _ := filepath.Glob(logPath + "*"); len(files) != 2 {
		t.Errorf("log files = %v, want 2", files)
	}
	st, _ := s.Status("rot")
	if st.State != Exited || st.LastExit != "exit status 0" || st.LogPath != logPath {
		t.Errorf("status = %+v", st)
	}
}

func TestPartialLinesAndSharedLog(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "shared.log")
	events, unsub := s.Subscribe()
	defer unsub()
	// Two releases of one process write one log; each line stays whole.
	for _, name := range []string{"w@r1", "w@r2"} {
		spec := Spec{
			Name:    name,
			Command: []string{"sh", "-c", `i=0; while [ $i -lt 50 ]; do printf 'part-%s-' "$1"; printf 'end\n'; i=$((i+1)); done; printf 'no newline'`, "sh", name},
			LogPath: logPath,
		}
		if err := s.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		waitEvent(t, events, 10*time.Second, func(ev Event) bool { return ev.To == Exited })
	}
	log := readFile(t, logPath)
	for _, name := range []string{"w@r1", "w@r2"} {
		if got := countLines(log, "part-"+name+"-end"); got != 50 {
			t.Errorf("%s: %d whole lines, want 50\n%s", name, got, log)
		}
	}
	if got := countLines(log, "no newline"); got != 2 {
		t.Errorf("final partial lines = %d, want 2", got)
	}
	if got := countLines(log, "--- hop3: exited: exit status 0"); got != 2 {
		t.Errorf("exit markers = %d, want 2", got)
	}
	for _, l := range strings.Split(strings.TrimSuffix(log, "\n"), "\n") {
		if !strings.HasPrefix(l, "part-") && !strings.HasPrefix(l, "--- hop3: ") && l != "no newline" {
			t.Errorf("torn line %q", l)
		}
	}
}

func TestEnvPathLookup(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.MkdirAll(bin, 0o755)
	script := "#!/bin/sh\necho \"hello from $GREETING in $PWD\"\n"
	if err := os.WriteFile(filepath.Join(bin, "greet"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	code, err := s.Run(context.Background(), Spec{
		Name: "greet", Command: []string{"greet"}, Dir: dir,
		Env: []string{"PATH=" + bin + ":/usr/bin:/bin", "GREETING=hop3"},
	}, nil, &out, &out)
	if err != nil || code != 0 {
		t.Fatalf("run = %d, %v", code, err)
	}
	if want := "hello from hop3 in " + dir + "\n"; out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	tests := []struct {
		name     string
		command  string
		stdin    string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"exit 0", "true", "", 0, "", ""},
		{"exit 3", "exit 3", "", 3, "", ""},
		{"streams", `read x; echo "got $x"; echo oops >&2; exit 7`, "hello\n", 7, "got hello\n", "oops\n"},
		{"killed", "kill -9 $$", "", 128 + 9, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut strings.Builder
			code, err := s.Run(context.Background(), Spec{Name: tt.name, Command: []string{"sh", "-c", tt.command}},
				strings.NewReader(tt.stdin), &out, &errOut)
			if err != nil {
				t.Fatal(err)
			}
			if code != tt.wantCode || out.String() != tt.wantOut || errOut.String() != tt.wantErr {
				t.Errorf("run = %d, %q, %q; want %d, %q, %q", code, out.String(), errOut.String(), tt.wantCode, tt.wantOut, tt.wantErr)
			}
		})
	}
	t.Run("stdin never closed", func(t *testing.T) {
		t.Parallel()
		pr, pw := io.Pipe()
		defer pw.Close()
		var out strings.Builder
		code, err := s.Run(context.Background(), Spec{Command: []string{"echo", "done"}}, pr, &out, &out)
		if err != nil || code != 0 || out.String() != "done\n" {
			t.Errorf("run = %d, %v, %q", code, err, out.String())
		}
	})
	t.Run("context ends", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		pidFile := filepath.Join(dir, "pid")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		var code int
		var err error
		go func() {
			defer close(done)
			code, err = s.Run(ctx, Spec{Name: "long", Command: []string{"sh", "-c", "echo $$ > " + pidFile + "; sleep 100 & sleep 100"}}, nil, nil, nil)
		}()
		eventually(t, 5*time.Second, "pid file", func() bool { return strings.HasSuffix(readFile(t, pidFile), "\n") })
		var pgid int
		fmt.Sscan(readFile(t, pidFile), &pgid)
		eventually(t, 5*time.Second, "both sleeps", func() bool { return len(liveMembers(pgid)) >= 2 })
		cancel()
		<-done
		if !errors.Is(err, context.Canceled) || code != 128+int(syscall.SIGTERM) {
			t.Errorf("run = %d, %v", code, err)
		}
		assertGroupGone(t, pgid)
	})
	t.Run("missing command", func(t *testing.T) {
		t.Parallel()
		code, err := s.Run(context.Background(), Spec{Command: []string{"/nonexistent/cmd"}}, nil, nil, nil)
		if err == nil || code != -1 {
			t.Errorf("run = %d, %v", code, err)
		}
	})
}

func TestConcurrentStartStop(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("app/web.%d", i)
			for range 3 {
				if err := s.Start(context.Background(), Spec{Name: name, Command: []string{"sh", "-c", "sleep 100 & sleep 100"}, Restart: true}); err != nil {
					errs <- err
					return
				}
				_ = s.List()
				st, _ := s.Status(name)
				if err := s.Stop(context.Background(), name); err != nil {
					errs <- err
					return
				}
				if m := liveMembers(st.PID); len(m) != 0 {
					errs <- fmt.Errorf("%s: group %d still has %v", name, st.PID, m)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if l := s.List(); len(l) != 0 {
		t.Errorf("list after stops = %v", l)
	}
}

func TestListSorted(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	for _, n := range []string{"c", "a", "b"} {
		if err := s.Start(context.Background(), Spec{Name: n, Command: []string{"sleep", "100"}, Labels: map[string]string{"app": n}}); err != nil {
			t.Fatal(err)
		}
	}
	l := s.List()
	if len(l) != 3 || l[0].Name != "a" || l[1].Name != "b" || l[2].Name != "c" || l[0].Labels["app"] != "a" {
		t.Fatalf("list = %+v", l)
	}
	l[0].Labels["app"] = "changed"
	if st, _ := s.Status("a"); st.Labels["app"] != "a" {
		t.Error("caller's edit of a snapshot leaked into the supervisor")
	}
	if err := s.StopAll(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, st := range l {
		assertGroupGone(t, st.PID)
	}
	if len(s.List()) != 0 {
		t.Error("list not empty after StopAll")
	}
}

func TestStartContextCanceled(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	dir := shortDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	spec := Spec{Name: "slow", Command: []string{"sh", "-c", "echo slow; sleep 100"}, Socket: filepath.Join(dir, "s.sock"), LogPath: filepath.Join(dir, "s.log")}
	err := s.Start(ctx, spec)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("start = %v, want deadline exceeded", err)
	}
	if _, ok := s.Status("slow"); ok {
		t.Error("entry left after canceled start")
	}
	assertGroupGone(t, startedPID(t, spec.LogPath))
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s, logs := newTestSupervisor(t, Options{Clock: clock})
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	release := filepath.Join(dir, "release")
	logPath := filepath.Join(dir, "cron.log")
	// Each run records itself and then waits for the test to let it finish.
	script := fmt.Sprintf(`echo run >> %s; while [ ! -e %s ]; do sleep 0.02; done; rm %s`, runs, release, release)
	spec := Spec{Name: "app/cron.1", Command: []string{"sh", "-c", script}, LogPath: logPath, Schedule: every(time.Minute)}
	events, unsub := s.Subscribe()
	defer unsub()
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(spec.Name); st.State != Exited || st.PID != 0 {
		t.Errorf("before the first tick: %+v", st)
	}
	tick := func() {
		eventually(t, 5*time.Second, "scheduler to wait", func() bool { return clock.pending() == 1 })
		clock.Advance(time.Minute)
	}
	nRuns := func() int { return countLines(readFile(t, runs), "run") }

	tick()
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Running))
	eventually(t, 5*time.Second, "first run", func() bool { return nRuns() == 1 })

	// The first run is still going: this tick is skipped.
	tick()
	eventually(t, 5*time.Second, "skip marker", func() bool { return strings.Contains(readFile(t, logPath), "--- hop3: skipped scheduled run") })
	if !strings.Contains(logs.String(), "scheduled run skipped") {
		t.Error("skip not logged")
	}

	os.WriteFile(release, nil, 0o600)
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Exited))

	tick()
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Running))
	eventually(t, 5*time.Second, "second run", func() bool { return nRuns() == 2 })
	os.WriteFile(release, nil, 0o600)
	waitEvent(t, events, 5*time.Second, isTo(spec.Name, Exited))
	if got := nRuns(); got != 2 {
		t.Errorf("runs = %d, want 2", got)
	}
	if got := countLines(readFile(t, logPath), "--- hop3: started pid"); got != 2 {
		t.Errorf("starts in log = %d, want 2", got)
	}
	st, _ := s.Status(spec.Name)
	if st.State != Exited || st.LastExit != "exit status 0" || st.Restarts != 0 {
		t.Errorf("status = %+v", st)
	}
	if err := s.Stop(context.Background(), spec.Name); err != nil {
		t.Fatal(err)
	}
}

func TestScheduleStopDuringRun(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s, _ := newTestSupervisor(t, Options{Clock: clock})
	spec := Spec{Name: "cron", Command: []string{"sh", "-c", "sleep 100 & sleep 100"}, Schedule: every(time.Hour)}
	events, unsub := s.Subscribe()
	defer unsub()
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "scheduler to wait", func() bool { return clock.pending() == 1 })
	clock.Advance(time.Hour)
	waitEvent(t, events, 5*time.Second, isTo("cron", Running))
	st, _ := s.Status("cron")
	if err := s.Stop(context.Background(), "cron"); err != nil {
		t.Fatal(err)
	}
	assertGroupGone(t, st.PID)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	s, err := New(Options{BackoffBase: time.Second, BackoffMax: 5 * time.Second, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		quick int
		want  time.Duration
	}{
		{0, time.Second}, // after a long run
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{4, 5 * time.Second},
		{40, 5 * time.Second},
	}
	for _, tt := range tests {
		p := &proc{sv: s, quick: tt.quick}
		if got := p.delay(); got != tt.want {
			t.Errorf("delay after %d quick failures = %v, want %v", tt.quick, got, tt.want)
		}
	}
}

func TestStopWhileStartingAndInBackoff(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{BackoffBase: time.Hour, BackoffMax: time.Hour})
	dir := shortDir(t)
	events, unsub := s.Subscribe()
	defer unsub()

	// Stopped before it is ready: Start reports it, nothing is left.
	errc := make(chan error, 1)
	go func() {
		errc <- s.Start(context.Background(), Spec{Name: "never", Command: []string{"sleep", "100"}, Socket: filepath.Join(dir, "n.sock")})
	}()
	ev := waitEvent(t, events, 5*time.Second, isTo("never", Starting))
	st, _ := s.Status("never")
	if err := s.Stop(context.Background(), "never"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "stopped before ready") {
		t.Errorf("start = %v", err)
	}
	if ev.From != Exited {
		t.Errorf("first event from %v, want exited", ev.From)
	}
	assertGroupGone(t, st.PID)

	// Stopped while waiting (an hour) to restart.
	if err := s.Start(context.Background(), Spec{Name: "flaky", Command: []string{"sh", "-c", "exit 1"}, Restart: true}); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, isTo("flaky", Backoff))
	if err := s.Reset("flaky"); !errors.Is(err, ErrNotCrashed) {
		t.Errorf("reset in backoff = %v", err)
	}
	if err := s.Stop(context.Background(), "flaky"); err != nil {
		t.Fatal(err)
	}
	waitEvent(t, events, 5*time.Second, func(ev Event) bool { return ev.Name == "flaky" && ev.From == Backoff && ev.To == Exited })
	if err := s.Reset("flaky"); !errors.Is(err, ErrNotFound) {
		t.Errorf("reset after stop = %v", err)
	}
}
