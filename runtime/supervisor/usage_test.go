package supervisor

import (
	"os"
	"path/filepath"
	"testing"
)

func TestGroupUsage(t *testing.T) {
	t.Parallel()
	proc := t.TempDir()
	write := func(pid, stat, statm string) {
		dir := filepath.Join(proc, pid)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644)
		os.WriteFile(filepath.Join(dir, "statm"), []byte(statm), 0o644)
	}
	// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
	write("100", "100 (granian) S 1 100 100 0 -1 0 0 0 0 0 150 50 0 0 20 0", "1000 10 0 0 0 0 0")
	write("101", "101 (granian worker (1)) S 100 100 100 0 -1 0 0 0 0 0 100 0 0 0 20 0", "1000 20 0 0 0 0 0")
	write("200", "200 (other) S 1 200 200 0 -1 0 0 0 0 0 999 999 0 0 20 0", "1000 99 0 0 0 0 0")
	write("self", "not a pid", "")
	write("300", "garbage", "")
	got := GroupUsage(proc, []int{100})
	page := int64(os.Getpagesize())
	if u := got[100]; u.RSS != 30*page || u.CPU != 3.0 {
		t.Errorf("usage of group 100 = %+v", u)
	}
	if _, ok := got[200]; ok {
		t.Error("a group not asked for was counted")
	}
}

func TestParseStat(t *testing.T) {
	t.Parallel()
	// A command name with spaces and a parenthesis, as comm may have.
	line := "4242 (my (odd) name) S 1 4240 4240 0 -1 4194560 100 0 0 0 150 50 7 3 20 0 1 0 123 1000 200 18446744073709551615\n"
	st, ok := ParseStat([]byte(line))
	if !ok {
		t.Fatal("not parsed")
	}
	if st.PGrp != 4240 || st.Ticks != 150+50+7+3 {
		t.Errorf("ParseStat = %+v, want pgrp 4240, ticks 210", st)
	}
	for _, bad := range []string{"garbage", "1 (a) S 1 x 1", "2 (a) b)) R 1 2 2 0 -1 0 0 0 0 0 1 1"} {
		if _, ok := ParseStat([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 0 0 0 0 12 34 0 0 20 0 1 0")
	f.Add("2 (a) b)) R 1 2 2 0 -1 0 0 0 0 0 1 1")
	f.Fuzz(func(t *testing.T, s string) {
		ParseStat([]byte(s))
	})
}
