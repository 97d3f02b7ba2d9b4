package app

import (
	"context"
	"io/fs"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// DiskUsage is the disk one app takes, by part, in bytes of allocated
// blocks: its repository, its kept releases (and their build logs), its
// dependency environments and its DATA_DIR.
type DiskUsage struct {
	Repo, Releases, Envs, Data int64
	At                         time.Time // when it was measured
}

// Total is the sum of the parts.
func (d DiskUsage) Total() int64 { return d.Repo + d.Releases + d.Envs + d.Data }

// DiskRefresh is how often every app's disk use is measured again; a deploy
// measures its app again at once.
const DiskRefresh = 10 * time.Minute

// diskCache holds the last measure of each app's disk use: walking a
// node_modules tree takes long, so commands read the cache and never wait
// for a walk.
type diskCache struct {
	mu    sync.Mutex
	usage map[string]DiskUsage
	stale chan string // apps to measure again, "" for all
}

func newDiskCache() *diskCache {
	return &diskCache{usage: map[string]DiskUsage{}, stale: make(chan string, 64)}
}

// DiskUsage returns app's last measured disk use; false before the first
// measure.
func (m *Manager) DiskUsage(app string) (DiskUsage, bool) {
	m.disk.mu.Lock()
	defer m.disk.mu.Unlock()
	d, ok := m.disk.usage[app]
	return d, ok
}

// DiskTotal returns app's last measured disk use in bytes; false before
// the first measure.
func (m *Manager) DiskTotal(app string) (int64, bool) {
	d, ok := m.DiskUsage(app)
	return d.Total(), ok
}

// DiskUsages returns every app's last measured disk use.
func (m *Manager) DiskUsages() map[string]DiskUsage {
	m.disk.mu.Lock()
	defer m.disk.mu.Unlock()
	out := make(map[string]DiskUsage, len(m.disk.usage))
	for a, d := range m.disk.usage {
		out[a] = d
	}
	return out
}

// diskChanged asks for app to be measured again, without waiting.
func (m *Manager) diskChanged(app string) {
	select {
	case m.disk.stale <- app:
	default: // a full queue measures everything soon anyway
	}
}

// WatchDisk measures every app's disk use now and every interval, and an
// app again when a deploy changed it, until ctx ends. One walk runs at a
// time, at low cost to the commands and deploys it runs beside.
func (m *Manager) WatchDisk(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	m.measureAll(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.measureAll(ctx)
		case app := <-m.disk.stale:
			m.measure(app)
		}
	}
}

func (m *Manager) measureAll(ctx context.Context) {
	apps, err := m.cfg.Store.Apps(ctx)
	if err != nil {
		m.log.Warn("measure disk use", "err", err)
		return
	}
	live := map[string]bool{}
	for _, a := range apps {
		if ctx.Err() != nil {
			return
		}
		live[a.Name] = true
		m.measure(a.Name)
	}
	m.disk.mu.Lock()
	for a := range m.disk.usage {
		if !live[a] {
			delete(m.disk.usage, a) // destroyed
		}
	}
	m.disk.mu.Unlock()
}

// measure walks app's directories and records what they take.
func (m *Manager) measure(app string) {
	d := DiskUsage{
		Repo:     dirUsage(m.paths.Repo(app)),
		Releases: dirUsage(m.paths.Releases(app)),
		Envs:     dirUsage(m.paths.Envs(app)),
		Data:     dirUsage(m.paths.Data(app)),
		At:       time.Now(),
	}
	m.disk.mu.Lock()
	m.disk.usage[app] = d
	m.disk.mu.Unlock()
}

// dirUsage is the disk a tree takes, as du counts it: allocated blocks,
// each hard-linked file once, symlinks not followed. A missing tree is 0.
func dirUsage(root string) int64 {
	var total int64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(root, func(_ string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // gone meanwhile, or unreadable: count what can be read
		}
		info, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			total += info.Size()
			return nil
		}
		if st.Nlink > 1 && !e.IsDir() {
			id := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[id] {
				return nil
			}
			seen[id] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}
