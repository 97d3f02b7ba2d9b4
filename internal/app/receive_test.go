package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"hop3/internal/layout"
)

// The hook git runs is hop3's own executable, written once outside every
// repository, whole even when many pushes write it at once, and quoted so
// that any path works.
func TestEnsureHooks(t *testing.T) {
	root := t.TempDir()
	exe := filepath.Join(t.TempDir(), "it's hop3")
	// A stand-in for hop3 that shows how it was called.
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho \"$0 $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manager{cfg: Config{Executable: exe}, paths: layout.New(root)}
	var wg sync.WaitGroup
	dirs := make([]string, 8)
	errs := make([]error, 8)
	for i := range dirs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			dirs[i], errs[i] = m.ensureHooks()
		}(i)
	}
	wg.Wait()
	for i := range dirs {
		if errs[i] != nil || dirs[i] != filepath.Join(root, "git", "hooks") {
			t.Fatalf("ensureHooks = %q, %v", dirs[i], errs[i])
		}
	}
	out, err := exec.Command(filepath.Join(dirs[0], "pre-receive")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != exe+" hook pre-receive" {
		t.Fatalf("running the hook: %v, %q", err, out)
	}
	if names, _ := os.ReadDir(dirs[0]); len(names) != 1 {
		t.Errorf("hooks directory holds %v, want pre-receive alone", names)
	}
	if _, err := m.ensureHooks(); err != nil {
		t.Fatal(err)
	}
}
