package addons

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"hop3/internal/layout"
	"hop3/runtime/supervisor"
)

// PostgreSQL tells its clients apart only by role and password, and a URL
// holds both: an app given another app's URL could use it. So apps do not
// reach the cluster's socket (it is the postgres user's alone): each app
// with a PostgreSQL add-on gets a socket of its own, in a directory only
// its user may enter, served by hop3, which reads the connection's startup
// message and passes it on only for a role of that app's add-ons, to the
// database of the same name.

// Protocol codes of the first message on a PostgreSQL connection.
const (
	pgProtocol3   = 196608
	pgSSLRequest  = 80877103
	pgGSSRequest  = 80877104
	pgCancel      = 80877102
	maxStartupLen = 10000
)

func appSockDir(root, app string) string {
	return filepath.Join(layout.New(root).Addons(), "run", app)
}

// startup is a parsed startup message.
type startup struct {
	raw    []byte // the whole message, to pass on
	code   uint32
	params map[string]string
}

// readStartup reads a startup message, answering 'N' to encryption
// requests (a unix socket needs none) until the real one comes.
func readStartup(r *bufio.Reader, w io.Writer) (startup, error) {
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return startup{}, err
		}
		n := binary.BigEndian.Uint32(hdr[:4])
		code := binary.BigEndian.Uint32(hdr[4:])
		if n < 8 || n > maxStartupLen {
			return startup{}, fmt.Errorf("bad startup message length %d", n)
		}
		body := make([]byte, n-8)
		if _, err := io.ReadFull(r, body); err != nil {
			return startup{}, err
		}
		if code == pgSSLRequest || code == pgGSSRequest {
			if _, err := w.Write([]byte{'N'}); err != nil {
				return startup{}, err
			}
			continue
		}
		s := startup{raw: append(hdr[:], body...), code: code, params: map[string]string{}}
		if code == pgProtocol3 {
			parts := splitNUL(body)
			for i := 0; i+1 < len(parts); i += 2 {
				s.params[parts[i]] = parts[i+1]
			}
		}
		return s, nil
	}
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i == start {
				break
			}
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// allowed tells whether a startup message may reach the cluster for an app
// whose add-ons own roles: the role must be one of them, the database its
// own, and no replication.
func allowed(s startup, roles map[string]bool) error {
	switch s.code {
	case pgCancel:
		return nil // carries a backend's secret key, which only its client knows
	case pgProtocol3:
	default:
		return fmt.Errorf("unsupported protocol %d", s.code)
	}
	user := s.params["user"]
	db := s.params["database"]
	if db == "" {
		db = user
	}
	if _, ok := s.params["replication"]; ok {
		return errors.New("replication connections are not allowed")
	}
	if !roles[user] {
		return fmt.Errorf("role %q is not an add-on of this app", user)
	}
	if db != user {
		return fmt.Errorf("role %q may connect only to database %q", user, user)
	}
	return nil
}

// pgError is an ErrorResponse a client shows as a FATAL error.
func pgError(msg string) []byte {
	var body []byte
	for _, f := range [][2]string{{"S", "FATAL"}, {"V", "FATAL"}, {"C", "28000"}, {"M", msg}} {
		body = append(body, f[0][0])
		body = append(append(body, f[1]...), 0)
	}
	body = append(body, 0)
	out := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)+4))
	return append(out, body...)
}

// proxy is one app's socket onto the cluster.
type proxy struct {
	ln    net.Listener
	roles func() map[string]bool
	wg    sync.WaitGroup
}

// openProxy listens on the app's socket: its directory is hop3's with the
// app's group, 0750, so the app may connect and nobody else (apps have no
// supplementary groups).
func openProxy(root, app string, u *supervisor.Credential, target string, roles func() map[string]bool) (*proxy, error) {
	dir := appSockDir(root, app)
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	mode := os.FileMode(0o750)
	if u == nil {
		mode = 0o700
	} else if err := os.Chown(dir, os.Geteuid(), int(u.GID)); err != nil {
		return nil, fmt.Errorf("give %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, ".s.PGSQL.5432")
	os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("listen for %s's database connections: %w", app, err)
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		ln.Close()
		return nil, err
	}
	p := &proxy{ln: ln, roles: roles}
	p.wg.Add(1)
	go p.serve(target)
	return p, nil
}

func (p *proxy) serve(target string) {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(50 * time.Millisecond)
			continue
		}
		go p.handle(c, target)
	}
}

func (p *proxy) handle(c net.Conn, target string) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	s, err := readStartup(r, c)
	if err != nil {
		return
	}
	if err := allowed(s, p.roles()); err != nil {
		c.Write(pgError(err.Error()))
		return
	}
	c.SetReadDeadline(time.Time{})
	up, err := net.DialTimeout("unix", target, 10*time.Second)
	if err != nil {
		c.Write(pgError("the database server is not running: " + err.Error()))
		return
	}
	defer up.Close()
	if _, err := up.Write(s.raw); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(up, r); closeWrite(up); done <- struct{}{} }()
	go func() { io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if uc, ok := c.(*net.UnixConn); ok {
		uc.CloseWrite()
	}
}

// close stops accepting; connections already made run on until they end.
func (p *proxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

// ensureProxy serves app's database socket if it is not served yet.
func (m *Manager) ensureProxy(ctx context.Context, app string) error {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	if m.proxies == nil {
		m.proxies = map[string]*proxy{}
	}
	if _, ok := m.proxies[app]; ok {
		return nil
	}
	u, err := m.cfg.AppUser(ctx, app)
	if err != nil {
		return err
	}
	p, err := openProxy(m.cfg.Root, app, u, filepath.Join(pgSockDir(m.cfg.Root), ".s.PGSQL.5432"), func() map[string]bool {
		roles := map[string]bool{}
		list, _ := m.list(app) // read without m.mu: the registry file is replaced whole
		for _, a := range list {
			if a.Kind == Postgres {
				roles[ident(a.Name)] = true
			}
		}
		return roles
	})
	if err != nil {
		return err
	}
	m.proxies[app] = p
	return nil
}

// dropProxy stops serving app's database socket.
func (m *Manager) dropProxy(app string) {
	m.pmu.Lock()
	p := m.proxies[app]
	delete(m.proxies, app)
	m.pmu.Unlock()
	if p != nil {
		p.close()
		os.RemoveAll(appSockDir(m.cfg.Root, app))
	}
}
