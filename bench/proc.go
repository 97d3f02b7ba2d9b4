package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/internal/hop3test"
)

// proc is a process the benchmark started, in its own process group, killed
// if the benchmark dies.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startProc runs argv in dir with env added to the benchmark's environment,
// output to logPath.
func startProc(name, dir string, env []string, logPath string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.done
	}
	// Workers that outlived their parent are still in the group.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
}

// logTail returns the last lines of a log file, for error messages.
var logTail = hop3test.LogTail

// pstat is what /proc/<pid>/stat says about a process.
type pstat struct {
	pid, ppid, pgrp int
	comm            string
	ticks           uint64 // utime + stime
	start           uint64 // start time, clock ticks after boot
}

var clockTick = func() uint64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}()

func readStat(pid int) (pstat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return pstat{}, err
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return pstat{}, errors.New("bad stat line")
	}
	f := strings.Fields(s[close+1:])
	// f[0] is the state (field 3); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return pstat{}, errors.New("short stat line")
	}
	ppid, _ := strconv.Atoi(f[1])
	pgrp, _ := strconv.Atoi(f[2])
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	var start uint64
	if len(f) > 19 {
		start, _ = strconv.ParseUint(f[19], 10, 64)
	}
	return pstat{pid: pid, ppid: ppid, pgrp: pgrp, comm: s[open+1 : close], ticks: ut + st, start: start}, nil
}

// allProcs lists every process.
func allProcs() []pstat {
	ents, _ := os.ReadDir("/proc")
	var out []pstat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// groupPIDs lists the processes of a process group.
func groupPIDs(pgid int) []int {
	var out []int
	for _, p := range allProcs() {
		if p.pgrp == pgid {
			out = append(out, p.pid)
		}
	}
	return out
}

// descendants lists pid's children, grandchildren and so on.
func descendants(pid int) []pstat {
	all := allProcs()
	kids := map[int][]pstat{}
	for _, p := range all {
		kids[p.ppid] = append(kids[p.ppid], p)
	}
	var out []pstat
	var walk func(int)
	walk = func(p int) {
		for _, k := range kids[p] {
			out = append(out, k)
			walk(k.pid)
		}
	}
	walk(pid)
	return out
}

func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func environ(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func procCwd(pid int) string {
	d, _ := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	return d
}

// rssKB returns VmRSS of a process in KiB.
func rssKB(pid int) int {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// pssKB returns the proportional set size of a process in KiB.
func pssKB(pid int) int { return readPSS(pid).pss }

// pssSplit is a process's proportional set size, in KiB, and how much of it
// is anonymous memory (heap, stacks: what the process itself allocated)
// and file pages (the interpreter, libraries, the binary: shared with every
// process that maps the same files, so PSS divides them among those).
type pssSplit struct {
	pss, anon, file, shmem int
}

func (p pssSplit) add(q pssSplit) pssSplit {
	return pssSplit{p.pss + q.pss, p.anon + q.anon, p.file + q.file, p.shmem + q.shmem}
}

// readPSS reads /proc/<pid>/smaps_rollup; a process that is gone reads as zero.
func readPSS(pid int) pssSplit {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return pssSplit{}
	}
	return parseSmapsRollup(string(b))
}

func parseSmapsRollup(s string) pssSplit {
	var p pssSplit
	fields := map[string]*int{"Pss": &p.pss, "Pss_Anon": &p.anon, "Pss_File": &p.file, "Pss_Shmem": &p.shmem}
	for _, l := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if f := fields[k]; ok && f != nil {
			*f, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return p
}

// usage is what a set of processes consumed.
type usage struct {
	cpu           time.Duration
	reads, writes uint64 // read and write system calls (/proc/<pid>/io syscr, syscw)
}

// ioCalls reads the read and write system call counts of a process.
func ioCalls(pid int) (r, w uint64) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/io")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr:"); ok {
			r, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		} else if v, ok := strings.CutPrefix(l, "syscw:"); ok {
			w, _ = strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return r, w
}

// cpuMeter samples the CPU time and system calls of process groups.
type cpuMeter struct {
	groups map[string][]int // label -> pgids
	start  map[string][3]uint64
}

func newCPUMeter(groups map[string][]int) *cpuMeter {
	m := &cpuMeter{groups: groups}
	m.start = m.sample()
	return m
}

func (m *cpuMeter) sample() map[string][3]uint64 {
	all := allProcs()
	out := map[string][3]uint64{}
	for label, pgids := range m.groups {
		v := out[label]
		for _, p := range all {
			for _, g := range pgids {
				if p.pgrp == g {
					r, w := ioCalls(p.pid)
					v[0] += p.ticks
					v[1] += r
					v[2] += w
				}
			}
		}
		out[label] = v
	}
	return out
}

// since returns what each group used since the meter was made.
func (m *cpuMeter) since() map[string]usage {
	end := m.sample()
	out := map[string]usage{}
	for label := range m.groups {
		e, s := end[label], m.start[label]
		if e[0] < s[0] || e[1] < s[1] || e[2] < s[2] {
			continue // a process of the group ended meanwhile
		}
		out[label] = usage{
			cpu:    time.Duration(e[0]-s[0]) * time.Second / time.Duration(clockTick),
			reads:  e[1] - s[1],
			writes: e[2] - s[2],
		}
	}
	return out
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// shortDir makes a short temporary directory: unix socket paths must stay
// under 108 bytes.
func shortDir(prefix string) (string, error) {
	return os.MkdirTemp("/tmp", prefix)
}

// copyTree copies a directory of small files.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			if fi.Name() == "node_modules" || fi.Name() == "__pycache__" || fi.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}
