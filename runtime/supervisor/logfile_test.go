package supervisor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLogLineFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	reg := &logRegistry{logger: discardLogger(), files: map[string]*logFile{}}
	lf, err := reg.acquire(filepath.Join(dir, "a.log"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 5, 6, 7, 891_000_000, time.FixedZone("CET", 3600))
	w := &lineWriter{out: lf, tag: "v3.7", now: func() time.Time { return at }}
	w.Write([]byte("hello world\n\n"))
	w.marker("started pid 1")
	reg.release(lf)
	raw, err := os.ReadFile(filepath.Join(dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-03-04T04:06:07.891Z v3.7 hello world\n" +
		"2026-03-04T04:06:07.891Z v3.7 \n" +
		"2026-03-04T04:06:07.891Z v3.7 --- hop3: started pid 1\n"
	if string(raw) != want {
		t.Errorf("log = %q, want %q", raw, want)
	}
	// The tail shown with start errors holds what the process printed.
	if tail := w.lastLines(); tail[0] != "hello world" {
		t.Errorf("tail = %q", tail)
	}
}

func TestParseLogLine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 4, 4, 6, 7, 891_000_000, time.UTC)
	tests := []struct {
		line string
		want LogLine
		ok   bool
	}{
		{"2026-03-04T04:06:07.891Z v3.7 hello world", LogLine{at, "v3.7", "hello world"}, true},
		{"2026-03-04T04:06:07.891Z v3.7 ", LogLine{at, "v3.7", ""}, true},
		{"2026-03-04T04:06:07.891Z v3.7", LogLine{at, "v3.7", ""}, true},
		{"2026-03-04T04:06:07.891Z -   indented", LogLine{at, "-", "  indented"}, true},
		// A process printing a stamp of its own cannot pass for another
		// time or generation: hop3's stamp comes first.
		{"2026-03-04T04:06:07.891Z v3.7 2020-01-01T00:00:00.000Z v9.9 forged", LogLine{at, "v3.7", "2020-01-01T00:00:00.000Z v9.9 forged"}, true},
		{"hello world", LogLine{}, false},
		{"2026-03-04T04:06:07Z v1.1 no milliseconds", LogLine{}, false},
		{"2026-13-04T04:06:07.891Z v1.1 bad month", LogLine{}, false},
		{"", LogLine{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseLogLine(tt.line)
		if ok != tt.ok || !got.Time.Equal(tt.want.Time) || got.Tag != tt.want.Tag || got.Text != tt.want.Text {
			t.Errorf("ParseLogLine(%q) = %+v, %v; want %+v, %v", tt.line, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLogTag(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"myapp/web.1@v3.7": "v3.7",
		"a@b@v12.40":       "v12.40",
		"myapp/worker.1":   "-",
		"trailing@":        "-",
		"x@two words":      "two_words",
	} {
		if got := logTag(name); got != want {
			t.Errorf("logTag(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestLogLinesTagged runs two generations of a process into one log: each
// line carries the time and the generation that wrote it.
func TestLogLinesTagged(t *testing.T) {
	t.Parallel()
	s, _ := newTestSupervisor(t, Options{})
	logPath := filepath.Join(t.TempDir(), "web.1.log")
	before := time.Now().Add(-time.Second)
	for _, name := range []string{"app/web.1@v1.1", "app/web.1@v2.2"} {
		if err := s.Start(context.Background(), Spec{Name: name, Command: []string{"echo", "hi from " + name}, LogPath: logPath}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "both lines", func() bool {
		raw, _ := os.ReadFile(logPath)
		return strings.Count(string(raw), "hi from") == 2
	})
	raw, _ := os.ReadFile(logPath)
	tags := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		ll, ok := ParseLogLine(l)
		if !ok {
			t.Fatalf("line without time and tag: %q", l)
		}
		if ll.Time.Before(before) || ll.Time.After(time.Now()) {
			t.Errorf("line %q: time %s is off", l, ll.Time)
		}
		if strings.HasPrefix(ll.Text, "hi from ") {
			tags[strings.TrimPrefix(ll.Text, "hi from ")] = ll.Tag
		}
	}
	if tags["app/web.1@v1.1"] != "v1.1" || tags["app/web.1@v2.2"] != "v2.2" {
		t.Errorf("tags = %v", tags)
	}
}
