package supervisor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A Spec's User runs the process, its one-off commands and its terminal
// sessions as that uid and gid with no supplementary groups, and the
// terminal belongs to that user.
func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	t.Parallel()
	s, err := New(Options{PIDDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	u := &Credential{UID: 62901, GID: 62902}
	const want = "62901 62902 62902"
	script := `echo "$(id -u) $(id -g) $(id -G)"`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var out bytes.Buffer
	code, err := s.Run(ctx, Spec{Name: "run", Command: []string{"/bin/sh", "-c", script}, Dir: "/", User: u}, nil, &out, &out)
	if err != nil || code != 0 || strings.TrimSpace(out.String()) != want {
		t.Errorf("Run: %d %v %q, want %q", code, err, out.String(), want)
	}

	term := &fakeTerm{in: strings.NewReader("")}
	code, err = s.RunTerminal(ctx, Spec{Name: "tty", Command: []string{"/bin/sh", "-c", script + `; stat -c '%u' "$(tty)"`}, Dir: "/", User: u}, term, WinSize{Cols: 80, Rows: 24}, nil)
	if err != nil || code != 0 || !strings.Contains(term.String(), want) || !strings.Contains(term.String(), "62901\r\n") {
		t.Errorf("RunTerminal: %d %v %q, want %q and a terminal owned by 62901", code, err, term.String(), want)
	}

	// t.TempDir's parent is closed to other users.
	dir, err := os.MkdirTemp("", "hop3-user")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	outFile := filepath.Join(dir, "out")
	if err := s.Start(ctx, Spec{Name: "sup", Command: []string{"/bin/sh", "-c", script + " > " + outFile + "; sleep 30"}, Dir: "/", User: u, Restart: true}); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background(), "sup")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(outFile)
		if strings.TrimSpace(string(b)) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("supervised process wrote %q, want %q", b, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
