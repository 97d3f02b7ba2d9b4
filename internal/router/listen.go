package router

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// Listeners are the edge's sockets. hop3 binds them once, never accepts on
// them, and every Caddy it starts inherits them (Options.ListenFDs): HTTP as
// fd 3, HTTPS as fd 4. A config reload then never rebinds a socket, so no
// connection waiting in an accept queue is reset; and while Caddy restarts
// after a crash, new connections wait in the queue instead of being
// refused.
type Listeners struct {
	HTTP  *net.TCPListener
	HTTPS *net.TCPListener // nil when serving plain HTTP only
	HTTP3 *net.UDPConn     // the HTTPS port over UDP, for HTTP/3; nil without HTTPS
	// Admin, when set, is the admin API's socket (ListenAdmin), passed as
	// AdminFD.
	Admin *net.UnixListener

	httpAddr, httpsAddr string
}

// Listen binds httpAddr and, unless httpsAddr is empty, httpsAddr over TCP
// and UDP (HTTP/3). Port 0 picks a free port; HTTPAddr and HTTPSAddr report
// the port bound, with the host as given.
func Listen(ctx context.Context, httpAddr, httpsAddr string) (*Listeners, error) {
	l := &Listeners{}
	var err error
	if l.HTTP, l.httpAddr, err = listenTCP(ctx, httpAddr); err != nil {
		return nil, fmt.Errorf("listen for http: %w", err)
	}
	if httpsAddr == "" {
		return l, nil
	}
	// With port 0 the UDP port may be taken although the TCP one was
	// free: try another.
	for attempt := 0; ; attempt++ {
		if l.HTTPS, l.httpsAddr, err = listenTCP(ctx, httpsAddr); err != nil {
			l.HTTP.Close()
			return nil, fmt.Errorf("listen for https: %w", err)
		}
		var lc net.ListenConfig
		pc, uerr := lc.ListenPacket(ctx, "udp", l.httpsAddr)
		if uerr == nil {
			l.HTTP3 = pc.(*net.UDPConn)
			return l, nil
		}
		l.HTTPS.Close()
		if _, p, _ := net.SplitHostPort(httpsAddr); p != "0" || attempt >= 10 {
			l.HTTP.Close()
			return nil, fmt.Errorf("listen for http/3: %w", uerr)
		}
	}
}

func listenTCP(ctx context.Context, addr string) (*net.TCPListener, string, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("%q must be host:port or :port", addr)
	}
	lc := net.ListenConfig{Control: deferAccept}
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	tl := ln.(*net.TCPListener)
	port := tl.Addr().(*net.TCPAddr).Port
	return tl, net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// deferAcceptSeconds is how long the kernel holds a new connection that
// sent nothing before handing it to Caddy anyway.
const deferAcceptSeconds = 5

// deferAccept sets TCP_DEFER_ACCEPT: a connection reaches Caddy's accept
// only once its first bytes (a request, a TLS hello) arrived. A server that
// begins to shut down closes the connections it accepted but has not read
// yet (see the package doc); with the bytes already there, it reads them at
// once, so far fewer fall into that window.
func deferAccept(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, deferAcceptSeconds)
	})
	if err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("set TCP_DEFER_ACCEPT: %w", serr)
	}
	return nil
}

// HTTPAddr is the HTTP socket's address: the host given to Listen and the
// port bound.
func (l *Listeners) HTTPAddr() string { return l.httpAddr }

// HTTPSAddr is the HTTPS socket's address, or "" without one.
func (l *Listeners) HTTPSAddr() string { return l.httpsAddr }

// Close closes the sockets. Connections Caddy already accepted are not
// affected; Caddy holds its own copies of the sockets until it exits.
func (l *Listeners) Close() error {
	var errs []error
	if l.HTTP != nil {
		errs = append(errs, l.HTTP.Close())
	}
	if l.HTTPS != nil {
		errs = append(errs, l.HTTPS.Close())
	}
	if l.HTTP3 != nil {
		errs = append(errs, l.HTTP3.Close())
	}
	if l.Admin != nil {
		errs = append(errs, l.Admin.Close())
	}
	return errors.Join(errs...)
}

// files returns the child's ExtraFiles: entry i becomes fd 3+i. HTTP is at
// HTTPFD and again at HTTPFD+altFDOffset, HTTPS likewise, HTTP/3 at
// HTTP3FD; a nil entry is a closed descriptor.
func (l *Listeners) files() ([]*os.File, error) {
	type filer interface{ File() (*os.File, error) }
	at := map[int]filer{HTTPFD: l.HTTP, HTTPFD + altFDOffset: l.HTTP}
	if l.HTTPS != nil {
		at[HTTPSFD], at[HTTPSFD+altFDOffset], at[HTTP3FD] = l.HTTPS, l.HTTPS, l.HTTP3
	}
	out := make([]*os.File, HTTPSFD+altFDOffset-2) // fds 3 to 7
	if l.Admin != nil {
		at[AdminFD] = l.Admin
		out = append(out, nil)
	}
	for n, s := range at {
		f, err := s.File()
		if err != nil {
			closeFiles(out)
			return nil, fmt.Errorf("pass socket to caddy as fd %d: %w", n, err)
		}
		out[n-3] = f
	}
	return out, nil
}

// ListenAdmin binds the admin API's unix socket at path, mode 0600, for a
// Caddy that inherits it (AdminFD). Its directory should be one Caddy's own
// user can not enter: Caddy dials whatever path an app's socket link names,
// and a link to the admin socket would otherwise hand the admin API to
// anyone who asks the app's host. A socket Caddy only inherits and can not
// reach by its path closes that, whatever the app links to.
func ListenAdmin(path string) (*net.UnixListener, error) {
	if conn, err := net.Dial("unix", path); err == nil {
		conn.Close()
		return nil, fmt.Errorf("listen for caddy's admin API: %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listen for caddy's admin API: %w", err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("listen for caddy's admin API: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen for caddy's admin API: %w", err)
	}
	return l, nil
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

// check reports whether l fits opts: one socket per address Caddy serves,
// on the ports opts name.
func (l *Listeners) check(opts Options) error {
	if l == nil || l.HTTP == nil {
		return errors.New("options want inherited sockets (ListenFDs) but none were given")
	}
	want := []struct {
		name string
		ln   *net.TCPListener
		addr string
	}{{"http", l.HTTP, opts.HTTPAddr}}
	if opts.TLS != TLSOff {
		if l.HTTPS == nil || l.HTTP3 == nil {
			return errors.New("tls is on but no https sockets were given")
		}
		want = append(want, struct {
			name string
			ln   *net.TCPListener
			addr string
		}{"https", l.HTTPS, opts.HTTPSAddr})
	} else if l.HTTPS != nil || l.HTTP3 != nil {
		return errors.New("an https socket was given but tls is off")
	}
	for _, w := range want {
		port, err := addrPort(w.addr)
		if err != nil {
			return fmt.Errorf("%s addr: %w", w.name, err)
		}
		if got := w.ln.Addr().(*net.TCPAddr).Port; got != port {
			return fmt.Errorf("%s socket is bound to port %d but options name %s", w.name, got, w.addr)
		}
	}
	return nil
}
