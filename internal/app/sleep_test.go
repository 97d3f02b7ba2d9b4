package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

func TestParseSleepAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{" 15m ", 15 * time.Minute, false},
		{"1h30m", 90 * time.Minute, false},
		{"90", 90 * time.Second, false},
		{"0s", 0, false},
		{"-5m", 0, true},
		{"soon", 0, true},
		{"15 minutes", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSleepAfter(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSleepAfter(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "SLEEP_AFTER ") || strings.Contains(err.Error(), "\n")) {
			t.Errorf("ParseSleepAfter(%q) error %q: want one line naming SLEEP_AFTER", tt.in, err)
		}
	}
}

func TestSleepAfterNeedsASocket(t *testing.T) {
	t.Parallel()
	m := &Manager{cfg: Config{SleepAfter: time.Hour}}
	tests := []struct {
		procfile string
		env      map[string]string
		want     time.Duration
	}{
		{"wsgi: app:app\n", nil, time.Hour},
		{"wsgi: app:app\n", map[string]string{"SLEEP_AFTER": "2m"}, 2 * time.Minute},
		{"wsgi: app:app\n", map[string]string{"SLEEP_AFTER": "0"}, 0},
		{"asgi: app:app\nworker: python w.py\n", nil, time.Hour},
		// A waker stands in for a socket, not a port; nothing wakes a
		// worker-only app.
		{"web: python -m http.server $PORT\n", map[string]string{"SLEEP_AFTER": "2m"}, 0},
		{"worker: python w.py\n", map[string]string{"SLEEP_AFTER": "2m"}, 0},
	}
	for _, tt := range tests {
		pf, err := procfile.Parse(strings.NewReader(tt.procfile))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.sleepAfter(release{procfile: pf, env: tt.env}); got != tt.want {
			t.Errorf("sleepAfter(%q, %v) = %v, want %v", tt.procfile, tt.env, got, tt.want)
		}
	}
}

// TestIdleTracker feeds the tracker samples from a fake /proc: CPU
// seconds per process group and connections, and checks how long it
// finds the app idle after each.
func TestIdleTracker(t *testing.T) {
	t.Parallel()
	type sample struct {
		pgids []int
		cpu   map[int]float64
		conns int
		want  time.Duration // idle time after this sample (5 s apart)
	}
	quiet := map[int]float64{10: 1.5, 11: 0.25}
	tests := []struct {
		name    string
		samples []sample
	}{
		{"quiet from the start", []sample{
			{[]int{10, 11}, quiet, 0, 0},
			{[]int{10, 11}, quiet, 0, 5 * time.Second},
			{[]int{11, 10}, quiet, 0, 10 * time.Second}, // order does not matter
		}},
		{"a clock tick is not work", []sample{
			{[]int{10}, map[int]float64{10: 1}, 0, 0},
			{[]int{10}, map[int]float64{10: 1.01}, 0, 5 * time.Second},
		}},
		{"CPU use is work", []sample{
			{[]int{10}, map[int]float64{10: 1}, 0, 0},
			{[]int{10}, map[int]float64{10: 1}, 0, 5 * time.Second},
			{[]int{10}, map[int]float64{10: 1.2}, 0, 0},
			{[]int{10}, map[int]float64{10: 1.2}, 0, 5 * time.Second},
		}},
		{"an open connection is not idle", []sample{
			{[]int{10}, quiet, 0, 0},
			{[]int{10}, quiet, 1, 0},
			{[]int{10}, quiet, 1, 0},
			{[]int{10}, quiet, 0, 5 * time.Second},
		}},
		{"new processes start over", []sample{
			{[]int{10}, quiet, 0, 0},
			{[]int{10}, quiet, 0, 5 * time.Second},
			{[]int{10, 12}, map[int]float64{10: 1.5, 12: 0.5}, 0, 0},
			{[]int{12}, map[int]float64{12: 0.5}, 0, 0},
			{[]int{12}, map[int]float64{12: 0.5}, 0, 5 * time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cur sample
			tr := &idleTracker{
				conns: func(pgid int) int {
					if pgid == cur.pgids[0] {
						return cur.conns
					}
					return 0
				},
				apps: map[string]*idleApp{},
			}
			at := time.Unix(1_700_000_000, 0)
			for i, s := range tt.samples {
				cur = s
				usage := map[int]supervisor.Usage{99: {CPU: 7}} // another app's
				for g, cpu := range s.cpu {
					usage[g] = supervisor.Usage{CPU: cpu}
				}
				got := tr.observe("a", s.pgids, usage, at.Add(time.Duration(i)*5*time.Second))
				if got != s.want {
					t.Fatalf("after sample %d: idle %v, want %v", i, got, s.want)
				}
			}
		})
	}
}

// TestValidateConfigSleepAfter: config:set refuses a SLEEP_AFTER that is no
// duration, with one line, and takes the good ones.
func TestValidateConfigSleepAfter(t *testing.T) {
	t.Parallel()
	m, st, _ := claimsManager(t)
	if _, err := st.CreateApp(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		v       string
		wantErr bool
	}{{"15m", false}, {"0", false}, {"300", false}, {"soon", true}, {"-1h", true}} {
		err := m.ValidateConfig(t.Context(), "a", map[string]string{SleepAfterKey: tt.v}, false)
		if (err != nil) != tt.wantErr {
			t.Errorf("SLEEP_AFTER=%s: %v, want error %v", tt.v, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("SLEEP_AFTER=%s: error on several lines: %q", tt.v, err)
		}
	}
}

// sleepyManager is a Manager with one deployed wsgi app, "a", running.
func sleepyManager(t *testing.T) (*Manager, *store.Store, *fakeSupervisor) {
	t.Helper()
	root, err := os.MkdirTemp("", "sl") // socket paths stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	st, err := store.Open(filepath.Join(root, "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sup := newFakeSupervisor()
	sup.serveSockets(t)
	m, err := New(Config{Root: root, Store: st, Router: nopRouter{}, Supervisor: sup, SleepAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := st.CreateApp(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	rel, err := st.CreateRelease(ctx, "a", strings.Repeat("ab", 20), "alice")
	if err != nil {
		t.Fatal(err)
	}
	dir := m.paths.Release("a", rel.Number)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Procfile"), []byte("wsgi: app:app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.FinishRelease(ctx, "a", rel.Attempt, store.Succeeded, "", `{"venv":"/venv"}`); err != nil {
		t.Fatal(err)
	}
	if err := st.SetLiveRelease(ctx, "a", rel.Number); err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.closeWakers)
	return m, st, sup
}

// getSocket sends a GET over the app's stable socket, as Caddy does.
func getSocket(path string) (int, string, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
	resp, err := client.Get("http://a.localhost/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func asleep(t *testing.T, st *store.Store) bool {
	t.Helper()
	a, err := st.App(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	return !a.Asleep.IsZero()
}

// TestSleepThenWake: Sleep moves the app's socket to a waker and stops
// its processes; the first request starts the live release without settle
// time and is answered by it; the waker goes.
func TestSleepThenWake(t *testing.T) {
	t.Parallel()
	m, st, sup := sleepyManager(t)
	ctx := t.Context()
	if err := m.putToSleep(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if !asleep(t, st) || !m.sleeping("a") {
		t.Fatal("not marked asleep")
	}
	if n := len(sup.List()); n != 0 {
		t.Fatalf("%d processes run while asleep", n)
	}
	code, body, err := getSocket(m.paths.WebSocket("a"))
	if err != nil || code != 200 || !strings.HasPrefix(body, "a/wsgi.1@v1.") {
		t.Fatalf("first request = %d %q %v, want 200 from wsgi.1 of v1", code, body, err)
	}
	if s := sup.last(); s.SettleTime != 0 {
		t.Errorf("woken with settle time %s, want none", s.SettleTime)
	}
	if asleep(t, st) || m.sleeping("a") {
		t.Error("still marked asleep after the wake")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		left, _ := filepath.Glob(filepath.Join(m.paths.Run("a"), "waker-*"))
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("waker sockets left: %v", left)
		}
	}
}

// TestSleepingAppCommands: what each command does to a sleeping app.
func TestSleepingAppCommands(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	out := ui.New(io.Discard, false)
	t.Run("restart wakes it", func(t *testing.T) {
		m, st, sup := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := m.Restart(ctx, "a", out); err != nil {
			t.Fatal(err)
		}
		if asleep(t, st) || len(sup.List()) != 1 {
			t.Fatalf("after restart: asleep %v, %d processes", asleep(t, st), len(sup.List()))
		}
		if code, _, err := getSocket(m.paths.WebSocket("a")); err != nil || code != 200 {
			t.Errorf("request after restart = %d %v", code, err)
		}
	})
	t.Run("scale and config wait for the wake", func(t *testing.T) {
		m, st, sup := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := m.Scale(ctx, "a", map[string]int{"wsgi": 3}, out); err != nil {
			t.Fatal(err)
		}
		if err := m.ApplyConfig(ctx, "a", out); err != nil {
			t.Fatal(err)
		}
		if !asleep(t, st) || len(sup.List()) != 0 {
			t.Fatalf("scale or config woke it: asleep %v, %d processes", asleep(t, st), len(sup.List()))
		}
		if code, _, err := getSocket(m.paths.WebSocket("a")); err != nil || code != 200 {
			t.Fatalf("request = %d %v", code, err)
		}
		if s := sup.last(); !slices.Contains(s.Command, "3") {
			t.Errorf("woken with %v, want the new scale of 3 workers", s.Command)
		}
	})
	t.Run("a change to some kinds waits for the wake", func(t *testing.T) {
		m, st, sup := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		_, r, err := m.liveRelease(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		// As an autoscaler that decided before the app fell asleep would.
		if err := m.activate(ctx, r, map[string]bool{"wsgi": true}, out); err != nil {
			t.Fatal(err)
		}
		if !asleep(t, st) || !m.sleeping("a") || len(sup.List()) != 0 {
			t.Fatalf("after a partial activation: asleep %v, waker %v, %d processes", asleep(t, st), m.sleeping("a"), len(sup.List()))
		}
		if link, _ := os.Readlink(m.paths.WebSocket("a")); !strings.HasPrefix(link, "waker-web.") {
			t.Errorf("web.sock -> %s, want the waker's", link)
		}
	})
	t.Run("stop ends the sleep", func(t *testing.T) {
		m, st, _ := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := m.StopApp(ctx, "a", out); err != nil {
			t.Fatal(err)
		}
		a, _ := st.App(ctx, "a")
		if !a.Asleep.IsZero() || a.State != store.AppStopped || m.sleeping("a") {
			t.Errorf("after stop: asleep %v, state %v", a.Asleep, a.State)
		}
		if left, _ := filepath.Glob(filepath.Join(m.paths.Run("a"), "waker-*")); len(left) > 0 {
			t.Errorf("waker sockets left: %v", left)
		}
	})
	t.Run("a failed wake leaves it asleep", func(t *testing.T) {
		m, st, sup := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		sup.setFailKind("wsgi")
		if code, _, err := getSocket(m.paths.WebSocket("a")); err != nil || code != 503 {
			t.Errorf("request = %d %v, want 503", code, err)
		}
		if !asleep(t, st) || !m.sleeping("a") {
			t.Error("a failed wake marked it awake")
		}
	})
	t.Run("a restart of hop3 keeps it asleep", func(t *testing.T) {
		m, st, sup := sleepyManager(t)
		if err := m.putToSleep(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		m.closeWakers()
		m2, err := New(m.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := m2.Restore(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m2.closeWakers)
		if !asleep(t, st) || !m2.sleeping("a") || len(sup.List()) != 0 {
			t.Fatalf("after Restore: asleep %v, waker %v, %d processes", asleep(t, st), m2.sleeping("a"), len(sup.List()))
		}
		if code, _, err := getSocket(m2.paths.WebSocket("a")); err != nil || code != 200 {
			t.Errorf("request = %d %v", code, err)
		}
	})
}
