package commands

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat. Linux
// reports them in 1/100 s on every architecture it runs on, whatever the
// kernel's own tick rate, and reading sysconf would need cgo.
const clockTicks = 100

// usage is what a process group uses: resident memory and CPU time.
type usage struct {
	rss int64   // bytes
	cpu float64 // seconds, user plus system
}

// groupUsage sums the usage of every process in each of the given process
// groups (the supervisor starts each process as the leader of its own
// group, so its pid is the group id), reading procRoot (/proc). A process
// that exits while it is read is skipped.
func groupUsage(procRoot string, pgids []int) map[int]usage {
	out := map[int]usage{}
	if len(pgids) == 0 {
		return out
	}
	want := map[int]bool{}
	for _, g := range pgids {
		want[g] = true
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return out
	}
	page := int64(os.Getpagesize())
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		stat, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue
		}
		pgrp, ticks, ok := parseStat(stat)
		if !ok || !want[pgrp] {
			continue
		}
		u := out[pgrp]
		u.cpu += float64(ticks) / clockTicks
		if statm, err := os.ReadFile(filepath.Join(dir, "statm")); err == nil {
			if f := bytes.Fields(statm); len(f) >= 2 {
				if pages, err := strconv.ParseInt(string(f[1]), 10, 64); err == nil {
					u.rss += pages * page
				}
			}
		}
		out[pgrp] = u
	}
	return out
}

// parseStat reads the process group and utime+stime from /proc/<pid>/stat.
// The command name, in parentheses, may hold spaces and parentheses itself,
// so fields are counted from the last ')'.
func parseStat(b []byte) (pgrp int, ticks int64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	// After ')': state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	g, err1 := strconv.Atoi(string(f[2]))
	ut, err2 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err3 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return g, ut + st, true
}
