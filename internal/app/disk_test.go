package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchDisk measures every app at start, and an app again when a
// deploy says it changed, while DiskUsage answers from the cache.
func TestWatchDisk(t *testing.T) {
	t.Parallel()
	m, st, _ := claimsManager(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := st.CreateApp(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	write := func(path string, size int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(m.paths.Data("a"), "db.sqlite"), 200<<10)
	write(filepath.Join(m.paths.Release("a", 1), "app.py"), 64<<10)
	// A hard link is counted once.
	if err := os.Link(filepath.Join(m.paths.Release("a", 1), "app.py"), filepath.Join(m.paths.Release("a", 1), "copy.py")); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.DiskUsage("a"); ok {
		t.Fatal("measured before any walk")
	}
	go m.WatchDisk(ctx, time.Hour)
	d := waitDisk(t, m, func(d DiskUsage) bool { return d.Data > 0 })
	if d.Data < 200<<10 || d.Releases < 64<<10 || d.Releases >= 128<<10 {
		t.Errorf("usage = %+v", d)
	}
	write(filepath.Join(m.paths.Envs("a"), "venv", "lib.so"), 300<<10)
	m.diskChanged("a")
	d = waitDisk(t, m, func(d DiskUsage) bool { return d.Envs > 0 })
	if d.Envs < 300<<10 || d.Total() != d.Repo+d.Releases+d.Envs+d.Data {
		t.Errorf("after a change: %+v", d)
	}
}

func waitDisk(t *testing.T, m *Manager, ok func(DiskUsage) bool) DiskUsage {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if d, measured := m.DiskUsage("a"); measured && ok(d) {
			return d
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("disk use not measured in time")
	return DiskUsage{}
}
