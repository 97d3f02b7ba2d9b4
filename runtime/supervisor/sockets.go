package supervisor

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Listener is a socket a process group listens on.
type Listener struct {
	// Network is "tcp" (IPv4 or IPv6) or "unix".
	Network string
	// IP and Port of a TCP listener.
	IP   net.IP
	Port int
	// Path of a unix listener (empty for an abstract or unnamed one).
	Path string
}

// String is the address as users write it: "127.0.0.1:5999", "[::]:80",
// or the socket's path.
func (l Listener) String() string {
	if l.Network == "unix" {
		return l.Path
	}
	return net.JoinHostPort(l.IP.String(), strconv.Itoa(l.Port))
}

// Loopback reports whether only this machine can connect: a unix socket,
// or TCP on a loopback address. 0.0.0.0 and :: are every interface.
func (l Listener) Loopback() bool {
	return l.Network == "unix" || l.IP.IsLoopback()
}

// Sockets is what a process group holds open, read from /proc.
type Sockets struct {
	Listeners []Listener
	// Connections counts the connections accepted on those listeners and
	// still open: requests in progress, WebSockets, and idle keep-alive
	// connections a proxy keeps for reuse.
	Connections int
}

// GroupSockets reads the sockets held by the live processes of process
// group pgid: its listeners, and how many connections they accepted that are
// still open. It needs permission to read the processes' fd directories.
func GroupSockets(pgid int) (Sockets, error) {
	inodes := map[uint64]bool{}
	for _, pid := range GroupPIDs(pgid) {
		addSocketInodes(pid, inodes)
	}
	var out Sockets
	if len(inodes) == 0 {
		return out, nil
	}
	// Every process of a group shares the leader's network namespace
	// (nothing hop3 starts unshares it), so one view of the tables serves.
	netDir := filepath.Join("/proc", strconv.Itoa(pgid), "net")
	var tcpConns []tcpEntry
	for _, f := range []string{"tcp", "tcp6"} {
		entries, err := readTCPTable(filepath.Join(netDir, f))
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return out, err
		}
		for _, e := range entries {
			if !inodes[e.inode] {
				continue
			}
			switch e.state {
			case tcpListen:
				out.Listeners = append(out.Listeners, Listener{Network: "tcp", IP: e.ip, Port: e.port})
			case tcpEstablished:
				tcpConns = append(tcpConns, e)
			}
		}
	}
	for _, c := range tcpConns {
		if slices.ContainsFunc(out.Listeners, func(l Listener) bool { return l.Network == "tcp" && l.Port == c.port }) {
			out.Connections++
		}
	}
	unix, err := readUnixTable(filepath.Join(netDir, "unix"))
	if err != nil && !os.IsNotExist(err) {
		return out, err
	}
	paths := map[string]bool{}
	for _, u := range unix {
		if inodes[u.inode] && u.listening && u.path != "" {
			out.Listeners = append(out.Listeners, Listener{Network: "unix", Path: u.path})
			paths[u.path] = true
		}
	}
	// An accepted unix connection carries its listener's path.
	for _, u := range unix {
		if inodes[u.inode] && !u.listening && u.connected && paths[u.path] {
			out.Connections++
		}
	}
	return out, nil
}

// GroupPIDs lists the live processes of group pgid, the leader (pid pgid)
// included while it lives.
func GroupPIDs(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil || st.pgrp != pgid || st.state == 'Z' || st.state == 'X' {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// addSocketInodes adds the inodes of the sockets pid has open.
func addSocketInodes(pid int, into map[uint64]bool) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // gone meanwhile, or not ours to read
	}
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		s, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
			into[n] = true
		}
	}
}

// TCP states as /proc/net/tcp writes them.
const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

type tcpEntry struct {
	ip    net.IP
	port  int
	state int
	inode uint64
}

// readTCPTable parses /proc/net/tcp or tcp6: "sl local_address rem_address
// st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...".
func readTCPTable(path string) ([]tcpEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpEntry
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		e, err := parseTCPLine(sc.Text())
		if err != nil {
			continue
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseTCPLine(line string) (tcpEntry, error) {
	f := strings.Fields(line)
	if len(f) < 10 {
		return tcpEntry{}, fmt.Errorf("parse tcp line: %d fields", len(f))
	}
	ip, port, err := parseHexAddr(f[1])
	if err != nil {
		return tcpEntry{}, err
	}
	st, err := strconv.ParseUint(f[3], 16, 8)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("parse tcp state: %w", err)
	}
	inode, err := strconv.ParseUint(f[9], 10, 64)
	if err != nil {
		return tcpEntry{}, fmt.Errorf("parse tcp inode: %w", err)
	}
	return tcpEntry{ip: ip, port: port, state: int(st), inode: inode}, nil
}

// parseHexAddr reads "0100007F:1F90": the address as the kernel stores it
// (32-bit words in host byte order, little-endian here) and the port in
// big-endian hex.
func parseHexAddr(s string) (net.IP, int, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return nil, 0, fmt.Errorf("parse address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("parse port %q: %w", p, err)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return nil, 0, fmt.Errorf("parse address %q", a)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	if v4 := ip.To4(); v4 != nil && len(raw) == 16 && !ip.Equal(net.IPv6zero) {
		ip = v4 // ::ffff:127.0.0.1
	}
	return ip, int(port), nil
}

type unixEntry struct {
	inode     uint64
	listening bool
	connected bool
	path      string
}

// readUnixTable parses /proc/net/unix: "Num RefCount Protocol Flags Type
// St Inode Path".
func readUnixTable(path string) ([]unixEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []unixEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	sc.Scan() // header
	for sc.Scan() {
		if e, ok := parseUnixLine(sc.Text()); ok {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

const (
	unixAcceptCon   = 0x00010000 // __SO_ACCEPTCON: a listening socket
	unixConnected   = 0x03       // SS_CONNECTED
	unixStreamType  = 0x0001
	unixSeqpktType  = 0x0005
	unixFieldsNoPth = 7
)

func parseUnixLine(line string) (unixEntry, bool) {
	f := strings.Fields(line)
	if len(f) < unixFieldsNoPth {
		return unixEntry{}, false
	}
	flags, err1 := strconv.ParseUint(f[3], 16, 32)
	typ, err2 := strconv.ParseUint(f[4], 16, 16)
	st, err3 := strconv.ParseUint(f[5], 16, 8)
	inode, err4 := strconv.ParseUint(f[6], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return unixEntry{}, false
	}
	if typ != unixStreamType && typ != unixSeqpktType {
		return unixEntry{}, false
	}
	e := unixEntry{inode: inode, listening: flags&unixAcceptCon != 0, connected: st == unixConnected}
	if len(f) > unixFieldsNoPth {
		e.path = strings.Join(f[unixFieldsNoPth:], " ")
	}
	return e, true
}

// Public lists the listeners other machines can reach, as addresses.
func (s Sockets) Public() []string {
	var out []string
	for _, l := range s.Listeners {
		if !l.Loopback() {
			out = append(out, l.String())
		}
	}
	return out
}

// Group is a live process group recorded in a pid directory.
type Group struct {
	PGID int
	Name string // the Spec's name
}

// LiveGroups lists the process groups recorded in pidDir (by this hop3 or
// another) that are still alive, for tools that inspect a running server
// from outside, such as `hop3 doctor`.
func LiveGroups(pidDir string) ([]Group, error) {
	entries, err := os.ReadDir(pidDir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list process groups: %w", err)
	}
	var out []Group
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".pid") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(pidDir, e.Name()))
		if err != nil {
			continue
		}
		pgid, start, err := parsePIDFile(b)
		if err != nil || !orphanMatches(pgid, start) || !groupAlive(pgid) {
			continue
		}
		name := ""
		if f := strings.SplitN(strings.TrimSpace(string(b)), " ", 3); len(f) == 3 {
			name, _ = strconv.Unquote(f[2])
		}
		out = append(out, Group{PGID: pgid, Name: name})
	}
	slices.SortFunc(out, func(a, b Group) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ExposedNotice is the one line hop3 shows (push, ps, doctor) for a
// process that other machines can reach without going through the proxy.
func ExposedNotice(process string, public []string) string {
	return fmt.Sprintf("%s listens on %s, reachable from other machines without Caddy: bind it to $HOST (127.0.0.1)", process, strings.Join(public, ", "))
}
