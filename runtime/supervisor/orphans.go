package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const (
	orphanTermGrace = 5 * time.Second
	orphanKillGrace = 2 * time.Second
)

// orphan is a process group named by a pid file.
type orphan struct {
	pgid int
	path string
}

// CleanupOrphans kills the process groups left behind by a previous hop3
// that died without stopping them: SIGTERM, then SIGKILL to those still
// alive after a grace period. Call it at startup, before any Supervisor
// uses pidDir. When hop3 dies, Pdeathsig kills each group's leader, but not
// its children (Granian's workers keep serving on the inherited socket).
//
// A pid file whose leader is alive with a different start time names a pid
// that was reused by an unrelated process: that group is left alone. It
// returns how many groups were signalled; the pid files are removed.
func CleanupOrphans(pidDir string, logger *slog.Logger) (int, error) {
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("component", "supervisor")
	entries, err := os.ReadDir(pidDir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cleanup orphans: %w", err)
	}
	var (
		targets []orphan
		errs    []error
	)
	for _, e := range entries {
		path := filepath.Join(pidDir, e.Name())
		if e.IsDir() {
			continue
		}
		if !strings.HasSuffix(e.Name(), ".pid") {
			if strings.HasSuffix(e.Name(), ".pid.tmp") {
				_ = os.Remove(path)
			}
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("cleanup orphans: %w", err))
			continue
		}
		pgid, start, err := parsePIDFile(b)
		if err != nil {
			logger.Warn("removing unreadable pid file", "path", path, "err", err)
			_ = os.Remove(path)
			continue
		}
		if !orphanMatches(pgid, start) {
			logger.Info("pid file names a reused pid; leaving that process alone", "path", path, "pgid", pgid)
			_ = os.Remove(path)
			continue
		}
		if !groupAlive(pgid) {
			_ = os.Remove(path)
			continue
		}
		if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("cleanup orphans: signal group %d: %w", pgid, err))
			continue
		}
		logger.Warn("terminating orphaned process group", "pgid", pgid, "path", path)
		targets = append(targets, orphan{pgid: pgid, path: path})
	}

	alive := waitAllGone(targets, orphanTermGrace)
	for _, o := range alive {
		logger.Warn("orphaned process group ignored SIGTERM; killing it", "pgid", o.pgid)
		_ = syscall.Kill(-o.pgid, syscall.SIGKILL)
	}
	alive = waitAllGone(alive, orphanKillGrace)
	stuck := map[int]bool{}
	for _, o := range alive {
		stuck[o.pgid] = true
		errs = append(errs, fmt.Errorf("cleanup orphans: group %d survived SIGKILL", o.pgid))
	}
	for _, o := range targets {
		if !stuck[o.pgid] {
			_ = os.Remove(o.path)
		}
	}
	return len(targets), errors.Join(errs...)
}

// orphanMatches reports whether pgid still names the group the pid file was
// written for. If the leader is gone (the usual case, killed by Pdeathsig)
// the group can only be ours: the kernel does not hand out a pid that is
// still in use as a process group id.
func orphanMatches(pgid int, start uint64) bool {
	st, err := readProcStat(pgid)
	if err != nil {
		return true
	}
	return st.start == start && st.pgrp == pgid
}

// waitAllGone polls until every group is gone or timeout passes, and
// returns those still alive.
func waitAllGone(groups []orphan, timeout time.Duration) []orphan {
	deadline := time.Now().Add(timeout)
	for {
		var alive []orphan
		for _, o := range groups {
			if groupAlive(o.pgid) {
				alive = append(alive, o)
			}
		}
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		groups = alive
		time.Sleep(50 * time.Millisecond)
	}
}
