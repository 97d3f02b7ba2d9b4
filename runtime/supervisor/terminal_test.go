package supervisor

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTerm is the user's side of a terminal session.
type fakeTerm struct {
	in  io.Reader
	mu  sync.Mutex
	out bytes.Buffer
}

func (f *fakeTerm) Read(p []byte) (int, error) { return f.in.Read(p) }
func (f *fakeTerm) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.Write(p)
}
func (f *fakeTerm) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

func TestRunTerminal(t *testing.T) {
	t.Parallel()
	s, err := New(Options{PIDDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	term := &fakeTerm{in: pr}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The command sees a terminal of the size given, and reads a line typed.
	spec := Spec{Name: "tty", Command: []string{"/bin/sh", "-c", `test -t 0 && echo "tty yes"; stty size; read line; echo "got $line"; exit 7`}, Env: []string{"PATH=/usr/bin:/bin"}}
	go func() {
		time.Sleep(300 * time.Millisecond)
		pw.Write([]byte("hello\n"))
	}()
	code, err := s.RunTerminal(ctx, spec, term, WinSize{Cols: 100, Rows: 30}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	out := term.String()
	for _, want := range []string{"tty yes", "30 100", "got hello"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
}
