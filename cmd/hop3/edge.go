package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"hop3/internal/isolation"
	"hop3/internal/layout"
	"hop3/internal/router"
)

// edge is hop3's Caddy: a managed one, which hop3 starts and which serves
// on sockets hop3 binds, or someone else's, reached through --caddy-admin,
// where hop3 manages only its own server.
type edge struct {
	rt        *router.Router
	opts      router.Options
	adminSock string            // unix socket of the admin API, for Caddy's metrics; "" over TCP
	listeners *router.Listeners // nil when Caddy binds its addresses
	caddyDir  string
	attached  bool              // someone else's Caddy
	user      *router.User      // a managed Caddy's own user; nil: hop3's
	ask       *router.AskServer // on-demand TLS's permission endpoint; nil when off
}

// newEdge binds the edge's sockets (managed Caddy) or connects to the
// admin API given with --caddy-admin, and returns the router for either.
// A managed Caddy older than 2.9 can not inherit sockets: it binds its
// addresses itself, as someone else's does.
func newEdge(ctx context.Context, c serveConfig, root string, tlsMode router.TLSMode, iso isolation.Policy, logger *slog.Logger) (*edge, error) {
	e := &edge{}
	opts := router.Options{TLS: tlsMode, ACMEEmail: c.acmeEmail, ACMECA: c.acmeCA, Domain: c.domain,
		// Per-host request metrics only when someone scrapes them.
		Metrics: c.metricsAddr != ""}
	var client *router.Client
	var err error
	inherit := c.caddyAdmin == ""
	if inherit {
		v, err := router.CaddyVersion(ctx, c.caddyBin)
		switch {
		case err != nil:
			logger.Warn("caddy version unknown; assuming it inherits sockets", "component", "hop3", "caddy", c.caddyBin, "err", err)
		case !router.InheritsSockets(v):
			logger.Warn("caddy predates inherited sockets: it binds its addresses itself, and its config reloads may reset connections waiting to be accepted",
				"component", "hop3", "caddy", c.caddyBin, "version", v, "want", router.MinInheritVersion)
			inherit = false
		}
	}
	if !inherit {
		// Caddy binds the addresses itself.
		if opts.HTTPAddr, err = concreteAddr(c.httpAddr); err != nil {
			return nil, err
		}
		if tlsMode != router.TLSOff {
			if opts.HTTPSAddr, err = concreteAddr(c.httpsAddr); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case c.caddyAdmin != "":
		if client, err = router.NewClient(c.caddyAdmin); err != nil {
			return nil, usageError("--caddy-admin: %v", err)
		}
		if s, ok := strings.CutPrefix(c.caddyAdmin, "unix/"); ok {
			e.adminSock, _, _ = strings.Cut(s, "|")
		}
		e.attached = true
	case !inherit:
		if err := e.managedDir(root, &opts, iso); err != nil {
			return nil, err
		}
		if client, err = router.NewClient("unix/" + e.adminSock); err != nil {
			return nil, err
		}
	default:
		httpsAddr := ""
		if tlsMode != router.TLSOff {
			httpsAddr = c.httpsAddr
		}
		if e.listeners, err = router.Listen(ctx, c.httpAddr, httpsAddr); err != nil {
			return nil, err
		}
		opts.HTTPAddr, opts.HTTPSAddr, opts.ListenFDs = e.listeners.HTTPAddr(), e.listeners.HTTPSAddr(), true
		if err := e.managedDir(root, &opts, iso); err != nil {
			e.listeners.Close()
			return nil, err
		}
		if e.holdsAdmin() {
			if err := e.bindAdmin(root, &opts, iso); err != nil {
				e.listeners.Close()
				return nil, err
			}
		}
		if client, err = router.NewClient("unix/" + e.adminSock); err != nil {
			e.listeners.Close()
			return nil, err
		}
	}
	if err := e.issuer(c, &opts); err != nil {
		e.close()
		return nil, err
	}
	// The ask endpoint is in Caddy's config, so it listens before the
	// router exists; it reads the router's routes once there is one.
	var claims atomic.Pointer[router.Router]
	if err := e.automation(ctx, c, &opts, func(host string) bool {
		r := claims.Load()
		return r != nil && r.Claims(host)
	}, logger); err != nil {
		e.close()
		return nil, err
	}
	e.opts = opts
	e.rt = router.New(opts, client, logger)
	claims.Store(e.rt)
	return e, nil
}

// dnsEnvPrefix starts the variables that hold the DNS provider's settings:
// HOP3_ACME_DNS_API_TOKEN=x becomes "api_token": "x".
const dnsEnvPrefix = "HOP3_ACME_DNS_"

// automation sets up on-demand TLS (the ask endpoint) and the DNS-01
// wildcard, and refuses a DNS provider the Caddy hop3 starts lacks: Caddy
// would otherwise fail to load any config at all.
func (e *edge) automation(ctx context.Context, c serveConfig, opts *router.Options, claims func(string) bool, logger *slog.Logger) error {
	if !c.tlsOnDemand && c.acmeDNS == "" {
		return nil
	}
	if e.attached {
		return usageError("--tls-on-demand and --acme-dns do not apply with --caddy-admin: that Caddy's own TLS policies issue the certificates")
	}
	if c.tlsOnDemand && opts.TLS == router.TLSOff {
		return usageError("--tls-on-demand needs --tls internal or acme")
	}
	if c.acmeDNS != "" {
		p, err := dnsProvider(c.acmeDNS, os.Environ())
		if err != nil {
			return usageError("--acme-dns: %v", err)
		}
		opts.ACMEDNS = p
		if _, err := router.Config(*opts, nil); err != nil {
			return usageError("--acme-dns: %v", err)
		}
		mods, err := router.CaddyModules(ctx, c.caddyBin)
		if err != nil {
			return fmt.Errorf("--acme-dns: %w", err)
		}
		if msg := p.MissingModule(c.caddyBin, mods); msg != "" {
			return usageError("--acme-dns %s: %s", p.Name, msg)
		}
	}
	if c.tlsOnDemand {
		ask, err := router.ListenAsk(claims, logger)
		if err != nil {
			return err
		}
		e.ask = ask
		opts.OnDemandAsk = ask.URL()
	}
	return nil
}

// dnsProvider reads the provider's settings from environ's HOP3_ACME_DNS_*
// variables.
func dnsProvider(name string, environ []string) (*router.DNSProvider, error) {
	p := &router.DNSProvider{Name: strings.ToLower(strings.TrimSpace(name)), Config: map[string]string{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		key, found := strings.CutPrefix(k, dnsEnvPrefix)
		if !ok || !found {
			continue
		}
		p.Config[strings.ToLower(key)] = v
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// issuer sets the ACME issuer options beyond the CA. A managed Caddy gets
// its own copy of --acme-ca-root in its directory, readable by its group:
// it may run as its own user, who can not read the operator's file.
func (e *edge) issuer(c serveConfig, opts *router.Options) error {
	set := c.acmeCARoot != "" || c.acmeEABKeyID != "" || c.acmeEABHMAC != "" || len(c.acmeFallback) > 0
	if set && e.attached {
		// hop3 adds only its server there; it would silently drop them.
		return usageError("--acme-ca-root, --acme-eab-* and --acme-ca-fallback do not apply with --caddy-admin: that Caddy's own TLS policies issue the certificates")
	}
	opts.ACMEEABKeyID, opts.ACMEEABHMAC, opts.ACMEFallback = c.acmeEABKeyID, c.acmeEABHMAC, c.acmeFallback
	if c.acmeCARoot == "" {
		return nil
	}
	file, err := filepath.Abs(c.acmeCARoot)
	if err != nil {
		return usageError("--acme-ca-root: %v", err)
	}
	pemData, err := os.ReadFile(file)
	if err != nil {
		return usageError("--acme-ca-root: %v", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pemData) {
		return usageError("--acme-ca-root: %s holds no PEM certificate", file)
	}
	opts.ACMECARoot = filepath.Join(e.caddyDir, "acme-ca-root.pem")
	if err := os.WriteFile(opts.ACMECARoot, pemData, 0o600); err != nil {
		return fmt.Errorf("copy acme ca root: %w", err)
	}
	if e.user != nil {
		if err := os.Chown(opts.ACMECARoot, -1, e.user.GID); err != nil {
			return fmt.Errorf("copy acme ca root: %w", err)
		}
		if err := os.Chmod(opts.ACMECARoot, 0o640); err != nil {
			return fmt.Errorf("copy acme ca root: %w", err)
		}
	}
	return nil
}

// managedDir prepares for a Caddy hop3 starts: <root>/caddy (caddyDirs),
// the admin socket in it, and the user Caddy runs as: uid = gid = the uid
// base when apps run as their own users (iso.On), hop3's own otherwise.
// A Caddy of its own user that inherits its sockets gets the admin socket
// hop3 holds (bindAdmin), and no admin directory of its own.
func (e *edge) managedDir(root string, opts *router.Options, iso isolation.Policy) error {
	e.caddyDir = layout.New(root).Caddy()
	if u := iso.Caddy(); u != nil {
		e.user = &router.User{UID: int(u.UID), GID: int(u.GID)}
	}
	if err := caddyDirs(iso, e.caddyDir, !e.holdsAdmin()); err != nil {
		return err
	}
	e.adminSock = router.AdminSocket(e.caddyDir)
	opts.AdminListen = "unix/" + e.adminSock + "|0600"
	return nil
}

// holdsAdmin says hop3 binds the admin socket (bindAdmin): for a Caddy
// of its own user that inherits its sockets.
func (e *edge) holdsAdmin() bool { return e.listeners != nil && e.user != nil }

// bindAdmin gives a Caddy that runs as its own user an admin socket hop3
// binds in <root>/admin, a directory only hop3 may enter, passed as
// router.AdminFD. Caddy dials whatever path an app's socket link names
// (the app owns its socket directory); an admin socket Caddy could reach by
// its path would then answer anyone who asks that app's host.
func (e *edge) bindAdmin(root string, opts *router.Options, iso isolation.Policy) error {
	path := layout.New(root).HeldAdminSocket()
	if err := iso.Dir(filepath.Dir(path), isolation.Private, nil); err != nil {
		return err
	}
	l, err := router.ListenAdmin(path)
	if err != nil {
		return err
	}
	e.listeners.Admin = l
	e.adminSock = path
	opts.AdminListen = "fd/" + strconv.Itoa(router.AdminFD)
	return nil
}

// caddyDirs gives a managed Caddy's directory its owners and modes:
//
//	caddy/         hop3's, group Caddy's, 0750: boot.json (0640) and caddy.log
//	               (0600, written through the descriptor hop3 passes)
//	caddy/config   Caddy's, 0700 (XDG_CONFIG_HOME)
//	caddy/data     Caddy's, 0700 (XDG_DATA_HOME: certificates, ACME account)
//	caddy/admin    Caddy's, 0700: its admin socket, which hop3 (root)
//	               reaches and nobody else; only when Caddy binds it
//	               (bindsAdmin)
//
// Caddy can write nowhere hop3 writes, so it can not plant a link for hop3
// to follow. State left by a Caddy that ran as hop3's user is given to
// Caddy first. With isolation off, every one is hop3's, 0700.
func caddyDirs(iso isolation.Policy, dir string, bindsAdmin bool) error {
	u := iso.Caddy()
	if err := iso.Dir(dir, isolation.AppRead, u); err != nil {
		return err
	}
	for _, d := range router.OwnDirs(dir, bindsAdmin) {
		if _, err := os.Lstat(d); err == nil && u != nil && !isolation.OwnedBy(d, u.UID) {
			if err := iso.Give(d, u); err != nil {
				return err
			}
		}
		if err := iso.Dir(d, isolation.AppOwn, u); err != nil {
			return err
		}
	}
	return nil
}

// start puts routes in place: it starts the managed Caddy with every route
// in its boot config, or adds hop3's server to someone else's Caddy. The
// returned Caddy is nil in the second case.
func (e *edge) start(ctx context.Context, c serveConfig, routes []router.Route, logger *slog.Logger) (*router.Caddy, error) {
	if err := e.rt.SetDesired(routes); err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}
	if e.attached {
		if err := e.rt.Attach(ctx); err != nil {
			return nil, err
		}
		return nil, nil
	}
	caddy, err := router.StartCaddy(ctx, router.ProcessOptions{
		Bin:       c.caddyBin,
		Dir:       e.caddyDir,
		Env:       c.caddyEnv,
		Listeners: e.listeners, // nil when Caddy binds its addresses
		User:      e.user,
	}, e.rt, logger)
	if err != nil {
		return nil, fmt.Errorf("start caddy: %w", err)
	}
	return caddy, nil
}

// readyNote adds the HTTPS address to the ready line when TLS is on.
func (e *edge) readyNote() string {
	if e.opts.TLS == router.TLSOff {
		return ""
	}
	return " https=" + e.opts.HTTPSAddr
}

// close closes the sockets hop3 bound, once Caddy has stopped.
func (e *edge) close() {
	if e.listeners != nil {
		e.listeners.Close()
	}
	if e.ask != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.ask.Close(ctx)
	}
}

// concreteAddr resolves port 0 to a port that was free a moment ago, for
// a Caddy that binds the address itself: someone else's, or one older than
// 2.9 (tests pass port 0). A Caddy that inherits sockets hop3 bound needs
// no guess.
func concreteAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", usageError("bad address %q: %v", addr, err)
	}
	if port != "0" {
		return addr, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", err
	}
	defer l.Close()
	p := l.Addr().(*net.TCPAddr).Port
	if host == "" {
		host = "0.0.0.0"
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// publicHTTPS is the address app URLs use when TLS is on, else "".
func (e *edge) publicHTTPS() string {
	if e.opts.TLS == router.TLSOff {
		return ""
	}
	return e.opts.HTTPSAddr
}

// certs returns the certificate status reader for a managed Caddy with
// TLS on, else nil: someone else's Caddy keeps its storage where hop3 does
// not know.
func (e *edge) certs() func(hosts []string) []router.CertStatus {
	if e.opts.TLS == router.TLSOff || e.attached {
		return nil
	}
	return router.NewCerts(e.caddyDir).Status
}
