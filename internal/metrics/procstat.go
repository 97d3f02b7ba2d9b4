package metrics

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat: 1/100 s
// on every architecture Linux runs on, whatever the kernel's tick rate.
const clockTicks = 100

// usage is what one process group uses.
type usage struct {
	rss int64   // bytes
	cpu float64 // seconds, user plus system, including waited-for children
}

// groupUsage sums the usage of every process in each of the given process
// groups, reading procRoot once. The supervisor starts each process as the
// leader of its own group, so a supervised pid is also its group id, and
// Granian's workers and a shell's children are counted with their leader.
func groupUsage(procRoot string, pgids []int) map[int]usage {
	out := map[int]usage{}
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
		st, ok := parseStat(b)
		if !ok || !want[st.pgrp] {
			continue
		}
		u := out[st.pgrp]
		u.cpu += float64(st.ticks) / clockTicks
		if statm, err := os.ReadFile(filepath.Join(dir, "statm")); err == nil {
			u.rss += statmRSS(statm)
		}
		out[st.pgrp] = u
	}
	return out
}

type stat struct {
	pgrp  int
	ticks int64 // utime + stime + cutime + cstime
}

// parseStat reads /proc/<pid>/stat. The command name, in parentheses, may
// hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (stat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	// After ')': state(3) ppid(4) pgrp(5) ... utime(14) stime(15)
	// cutime(16) cstime(17).
	f := fields(b[i+1:])
	if len(f) < 15 {
		return stat{}, false
	}
	pgrp, err := strconv.Atoi(f[2])
	if err != nil {
		return stat{}, false
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return stat{}, false
		}
		ticks += n
	}
	return stat{pgrp: pgrp, ticks: ticks}, true
}

func fields(b []byte) []string { return strings.Fields(string(b)) }
