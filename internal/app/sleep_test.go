package app

import (
	"strings"
	"testing"
	"time"

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
				usage: func(pgids []int) map[int]supervisor.Usage {
					out := map[int]supervisor.Usage{}
					for _, g := range pgids {
						out[g] = supervisor.Usage{CPU: cur.cpu[g]}
					}
					return out
				},
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
				got, _ := tr.observe("a", s.pgids, at.Add(time.Duration(i)*5*time.Second))
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
		err := m.ValidateConfig(t.Context(), "a", map[string]string{SleepAfterKey: tt.v})
		if (err != nil) != tt.wantErr {
			t.Errorf("SLEEP_AFTER=%s: %v, want error %v", tt.v, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("SLEEP_AFTER=%s: error on several lines: %q", tt.v, err)
		}
	}
}
