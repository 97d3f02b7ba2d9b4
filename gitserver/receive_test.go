package gitserver

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The hook git runs is hop3's own executable, written once outside every
// repository, whole even when many pushes write it at once, and quoted so
// that any path works.
func TestWriteHook(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "git", "hooks")
	exe := filepath.Join(t.TempDir(), "it's hop3")
	// A stand-in for hop3 that shows how it was called.
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho \"$0 $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = writeHook(dir, exe)
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("writeHook: %v", err)
		}
	}
	out, err := exec.Command(filepath.Join(dir, "pre-receive")).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != exe+" hook pre-receive" {
		t.Fatalf("running the hook: %v, %q", err, out)
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("hooks directory holds %v, want pre-receive alone", names)
	}
	if err := writeHook(dir, exe); err != nil {
		t.Fatal(err)
	}
}
