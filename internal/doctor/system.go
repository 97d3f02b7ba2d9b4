package doctor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hop3/internal/isolation"
	"hop3/internal/router"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/internal/store"
	"hop3/runtime/sandbox"
	"hop3/runtime/supervisor"
)

// DefaultSystem is the real machine.
func DefaultSystem() System {
	return System{
		Statfs: func(path string) (uint64, uint64, error) {
			var s syscall.Statfs_t
			if err := syscall.Statfs(path, &s); err != nil {
				return 0, 0, err
			}
			return s.Bavail * uint64(s.Bsize), s.Blocks * uint64(s.Bsize), nil
		},
		LookPath: exec.LookPath,
		Exec: func(ctx context.Context, name string, args ...string) (string, error) {
			ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
			return string(out), err
		},
		Resolver:       net.DefaultResolver,
		InterfaceAddrs: net.InterfaceAddrs,
		Listen:         net.Listen,
		PortOwner:      func(port int) (Process, error) { return portOwner("/proc", port) },
		Answers: func(ctx context.Context, socket string) bool {
			var d net.Dialer
			ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			conn, err := d.DialContext(ctx, "unix", socket)
			if err != nil {
				return false
			}
			conn.Close()
			return true
		},
		AdminGet:        adminGet,
		Stat:            os.Stat,
		Lstat:           os.Lstat,
		ReadFile:        os.ReadFile,
		CanSwitch:       isolation.CanSwitch,
		CheckStore:      checkStore,
		PublicListeners: publicListeners,
		LandlockABI:     sandbox.InForce,
		Certificates:    func(dir string) []router.CertStatus { return router.NewCerts(dir).All() },
	}
}

// publicListeners reads the live process groups hop3 recorded and the
// sockets each holds.
func publicListeners(pidDir string) (map[string][]string, error) {
	groups, err := supervisor.LiveGroups(pidDir)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, g := range groups {
		socks, err := supervisor.GroupSockets(g.PGID)
		if err != nil {
			return nil, err
		}
		if p := socks.Public(); len(p) > 0 {
			out[g.Name] = p
		}
	}
	return out, nil
}

func adminGet(ctx context.Context, socket, path string) (int, error) {
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}},
	}
	req, err := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1"+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// checkStore opens the database and runs its integrity checks. Opening it
// may create its -wal and -shm files; when doctor runs as root they are
// given back to the database's owner, so the daemon can still open them.
func checkStore(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	defer func() {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || os.Geteuid() != 0 || st.Uid == 0 {
			return
		}
		for _, suffix := range []string{"-wal", "-shm"} {
			os.Lchown(path+suffix, int(st.Uid), int(st.Gid))
		}
	}()
	s, err := store.Open(path)
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Check(ctx)
}

// portOwner finds the process listening on a TCP port through procRoot:
// the socket's inode from net/tcp and net/tcp6, then the process holding
// it among the fds it is allowed to read.
func portOwner(procRoot string, port int) (Process, error) {
	inodes := map[string]bool{}
	for _, f := range []string{"net/tcp", "net/tcp6"} {
		b, err := os.ReadFile(filepath.Join(procRoot, f))
		if err != nil {
			continue
		}
		for _, ino := range listenInodes(b, port) {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return Process{}, errors.New("no listening socket found")
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return Process{}, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join(procRoot, e.Name(), "fd"))
		if err != nil {
			continue // another user's process
		}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(procRoot, e.Name(), "fd", fd.Name()))
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
				return describeProcess(procRoot, pid), nil
			}
		}
	}
	return Process{}, errors.New("the process holding the port is not visible to this user")
}

// listenInodes reads /proc/net/tcp{,6}: the inodes of sockets listening
// (state 0A) on port.
func listenInodes(b []byte, port int) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Scan() // header
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(hexPort, 16, 32)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, f[9])
	}
	return out
}

// describeProcess names a process, and tells whether it is hop3 or one of
// its descendants (Caddy, started by hop3).
func describeProcess(procRoot string, pid int) Process {
	p := Process{PID: pid, Name: comm(procRoot, pid)}
	cur := pid
	for i := 0; i < 6 && cur > 1; i++ {
		if comm(procRoot, cur) == "hop3" {
			p.Hop3 = true
			break
		}
		cur = ppid(procRoot, cur)
	}
	return p
}

func comm(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return strings.TrimSpace(string(b))
}

func ppid(procRoot string, pid int) int {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}
