package supervisor

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat: 1/100 s
// on every architecture Linux runs on, whatever the kernel's tick rate, and
// reading sysconf would need cgo.
const clockTicks = 100

// Usage is what one process group uses.
type Usage struct {
	RSS int64   // resident memory, bytes
	CPU float64 // seconds, user plus system, including waited-for children
}

// GroupUsage sums the usage of every process in each of the given process
// groups, reading procRoot (/proc) once. The supervisor starts each process
// as the leader of its own group, so a supervised pid is also its group id,
// and Granian's workers and a shell's children are counted with their
// leader. A process that exits while it is read is skipped.
func GroupUsage(procRoot string, pgids []int) map[int]Usage {
	out := map[int]Usage{}
	if len(pgids) == 0 {
		return out
	}
	want := make(map[int]bool, len(pgids))
	for _, g := range pgids {
		want[g] = true
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return out
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		st, ok := ParseStat(b)
		if !ok || !want[st.PGrp] {
			continue
		}
		u := out[st.PGrp]
		u.CPU += float64(st.Ticks) / clockTicks
		if statm, err := os.ReadFile(filepath.Join(dir, "statm")); err == nil {
			u.RSS += StatmRSS(statm)
		}
		out[st.PGrp] = u
	}
	return out
}

// Stat is what hop3 reads from /proc/<pid>/stat.
type Stat struct {
	PGrp  int
	Ticks int64 // utime + stime + cutime + cstime, in 1/100 s
}

// ParseStat reads /proc/<pid>/stat. The command name, in parentheses, may
// hold spaces and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Stat{}, false
	}
	// After ')': state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
	// cutime(16) cstime(17).
	f := bytes.Fields(b[i+1:])
	if len(f) < 15 {
		return Stat{}, false
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return Stat{}, false
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return Stat{}, false
		}
		ticks += n
	}
	return Stat{PGrp: pgrp, Ticks: ticks}, true
}

// StatmRSS is the resident size in /proc/<pid>/statm, in bytes.
func StatmRSS(b []byte) int64 {
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * int64(os.Getpagesize())
}
