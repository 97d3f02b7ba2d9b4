package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"hop3/internal/appname"
	"hop3/internal/hostclaim"
	"hop3/internal/staticserve"
)

// ServerName is the key of hop3's server under apps/http/servers. In
// attached mode it is the only part of someone else's config hop3 touches.
const ServerName = "hop3"

// HTTPServerName is the key of hop3's plain-HTTP server when Caddy serves
// on inherited sockets with TLS on (see Options.ListenFDs): Caddy decides
// per server, not per socket, whether a listener speaks TLS.
const HTTPServerName = "hop3_http"

// Ids of the objects hop3 addresses through /id/.
const (
	serverID   = "hop3_server"
	catchAllID = "hop3_catchall"
	errorID    = "hop3_error"
	appPrefix  = "hop3_app_"

	// The plain-HTTP server's copies, in the two-server layout.
	httpIDPrefix = "hop3_http_"
)

// File descriptors of the inherited sockets in Caddy's process (see
// Options.ListenFDs): 0-2 are stdio, ExtraFiles start at 3. Each TCP
// socket is passed twice, at fd N and N+altFDOffset, and successive
// configs alternate between the two numbers (see DefaultReloadOverlap).
// HTTP/3's UDP socket keeps one number: two QUIC listeners reading one
// socket would steal each other's packets.
const (
	HTTPFD      = 3
	HTTPSFD     = 4
	HTTP3FD     = 5 // UDP
	altFDOffset = 3 // HTTP at 6, HTTPS at 7
	// AdminFD is the admin API's unix socket when hop3 binds it
	// (Listeners.Admin): Caddy then serves its admin API on a socket whose
	// path it can not reach itself.
	AdminFD = 8
)

// DefaultReloadOverlap is how long, after a config change, the old config
// keeps serving beside the new one before it shuts down (Caddy's
// shutdown_delay). Caddy provisions a new config while the old one still
// accepts connections, and is often too busy then to read their requests;
// without the overlap the old server's shutdown closes those connections
// unanswered. Caddy applies shutdown_delay only to listeners that go away,
// which is why successive configs name the inherited sockets by
// alternating descriptor numbers. Each change takes this much longer.
const DefaultReloadOverlap = 100 * time.Millisecond

// DefaultUpstreamWait is how long a request waits for an app that does not
// answer (restarting, crashed) before it gets the 502 page.
const DefaultUpstreamWait = 10 * time.Second

// streamCloseDelay keeps WebSockets and other upgraded connections open
// across config reloads; without it every admin change closes them all.
const streamCloseDelay = "8h"

// TLSMode says how the edge terminates TLS.
type TLSMode int

const (
	// TLSOff serves plain HTTP only.
	TLSOff TLSMode = iota
	// TLSInternal serves HTTPS with certificates from Caddy's local CA.
	TLSInternal
	// TLSACME serves HTTPS with certificates obtained from an ACME CA.
	TLSACME
)

// String returns the name ParseTLSMode accepts.
func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSInternal:
		return "internal"
	case TLSACME:
		return "acme"
	default:
		return "TLSMode(" + strconv.Itoa(int(m)) + ")"
	}
}

// ParseTLSMode parses "off", "internal" or "acme".
func ParseTLSMode(s string) (TLSMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "off", "":
		return TLSOff, nil
	case "internal":
		return TLSInternal, nil
	case "acme":
		return TLSACME, nil
	default:
		return TLSOff, fmt.Errorf("parse tls mode %q: want off, internal or acme", s)
	}
}

// Options configures the edge as a whole.
type Options struct {
	HTTPAddr    string  // e.g. "127.0.0.1:8080" or ":80"
	HTTPSAddr   string  // used when TLS != TLSOff, e.g. ":443"
	TLS         TLSMode // TLSOff, TLSInternal or TLSACME
	ACMEEmail   string  // account email for TLSACME
	ACMECA      string  // ACME directory URL, e.g. a staging CA; empty means Caddy's default
	AdminListen string  // "unix//<root>/caddy/admin.sock|0600"
	Domain      string  // default app domain, for the 404 page text only

	// ListenFDs makes Caddy serve on sockets hop3 bound (see Listen) and
	// passes to every Caddy it starts: HTTP as fd 3, HTTPS as fd 4,
	// instead of binding HTTPAddr and HTTPSAddr itself. The same sockets,
	// hence the same accept queues, then live through every config reload
	// and every Caddy restart. HTTPAddr and HTTPSAddr must still name the
	// sockets' addresses: their ports go into redirects and Caddy's
	// http_port/https_port. Only a Caddy hop3 starts can inherit them.
	ListenFDs bool

	// ReloadOverlap applies with ListenFDs: 0 means DefaultReloadOverlap,
	// a negative value turns the overlap off.
	ReloadOverlap time.Duration

	// UpstreamWait is how long a request keeps retrying an app that does
	// not accept connections before it gets the 502 page; 0 means
	// DefaultUpstreamWait.
	UpstreamWait time.Duration

	// ACME issuer settings beyond the CA, for TLSACME only.
	// ACMECARoot is a PEM file of the roots the ACME server's own
	// certificate chains to (a private CA); Caddy must be able to read it.
	ACMECARoot string
	// ACMEEABKeyID and ACMEEABHMAC bind the ACME account to an account
	// at the CA (External Account Binding: ZeroSSL, Google Trust Services,
	// most corporate CAs); the HMAC key is base64url, as the CA gives it.
	// They apply to ACMECA only.
	ACMEEABKeyID, ACMEEABHMAC string
	// ACMEFallback are more ACME directory URLs, tried in order when
	// ACMECA fails to issue.
	ACMEFallback []string

	// OnDemandAsk turns on on-demand TLS: Caddy gets a host's
	// certificate at its first TLS handshake, after asking this URL
	// (Caddy's tls.permission.http endpoint; see AskHandler) whether an
	// app claims the host. Empty: certificates for every routed host are
	// obtained when the route appears.
	OnDemandAsk string
	// ACMEDNS, for TLSACME with a Domain, gets one wildcard certificate
	// for *.<Domain> through ACME's DNS-01 challenge, solved by this
	// Caddy DNS provider module; every app under the domain shares it.
	ACMEDNS *DNSProvider

	// Metrics turns on Caddy's per-host HTTP metrics (request counts and
	// latencies by host, on the admin endpoint's /metrics). Off by default:
	// they cost CPU on every request.
	Metrics bool
}

// DNSProvider is a Caddy DNS provider module (dns.providers.<Name>) and
// its settings, e.g. {"api_token": "..."}, as its JSON config takes them.
type DNSProvider struct {
	Name   string
	Config map[string]string
}

var dnsNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// Validate checks the provider's name and setting keys: they become a
// module ID and JSON keys.
func (p DNSProvider) Validate() error {
	if !dnsNameRe.MatchString(p.Name) {
		return fmt.Errorf("dns provider %q: want a Caddy module name such as cloudflare", p.Name)
	}
	for k := range p.Config {
		if !dnsNameRe.MatchString(k) || k == "name" {
			return fmt.Errorf("dns provider %s: setting %q: want lower-case letters, digits and _", p.Name, k)
		}
	}
	return nil
}

// Module is the Caddy module ID the provider needs, e.g.
// dns.providers.cloudflare.
func (p DNSProvider) Module() string { return "dns.providers." + p.Name }

// Route is everything the edge needs to know about one app.
type Route struct {
	App       string
	Hosts     []string // non-empty
	Upstreams []string // Caddy dial addresses: "unix//abs/web.sock" or "127.0.0.1:5001"
	// Static makes the app a static site: StaticServer answers every
	// request.
	Static bool
	// StaticPaths are URL prefixes ("/static") that StaticServer answers
	// before the app: /static/x.css and everything below /static/.
	StaticPaths []string
	// StaticServer is the dial address ("unix//abs/static.sock") of the
	// app's own static file server, required with Static or StaticPaths.
	// Caddy never opens an app's files itself: a file server running as
	// Caddy would follow the app's symlinks with Caddy's rights.
	StaticServer string
	Stopped      bool  // answer 503 with the "app stopped" page
	HTTPSOnly    bool  // redirect http to https (308); ignored with TLSOff
	MaxBodySize  int64 // 0 = unlimited

	// PHPRoot makes the app a PHP site, Caddy's php_fastcgi done without
	// Caddy reading the app's files: Upstreams is php-fpm's FastCGI
	// socket and PHPRoot the document root php-fpm is given
	// (SCRIPT_FILENAME is PHPRoot plus the script's path). GET and HEAD go
	// to StaticServer first, which answers a static file or names the
	// script to run (staticserve.ScriptHeader); other methods run the
	// .php path they name, else the front controller, /index.php.
	PHPRoot string
}

// Validate reports the first problem that would make the route unsafe or
// meaningless in Caddy's config.
func (r Route) Validate() error {
	if err := appname.Validate(r.App); err != nil {
		return fmt.Errorf("validate route: %w", err)
	}
	if err := r.validate(); err != nil {
		return fmt.Errorf("validate route %s: %w", r.App, err)
	}
	return nil
}

func (r Route) validate() error {
	if len(r.Hosts) == 0 {
		return errors.New("no hosts")
	}
	seen := make(map[string]bool, len(r.Hosts))
	for _, h := range r.Hosts {
		if err := validateHost(h); err != nil {
			return err
		}
		if seen[strings.ToLower(h)] {
			return fmt.Errorf("host %q listed twice", h)
		}
		seen[strings.ToLower(h)] = true
	}
	switch {
	case r.Stopped:
		// A stopped app may keep its upstreams; they are simply not used.
	case r.Static && len(r.Upstreams) > 0:
		return errors.New("a static site has no upstreams")
	case !r.Static && len(r.Upstreams) == 0:
		return errors.New("no upstreams and no static site")
	}
	for _, u := range r.Upstreams {
		if err := validateUpstream(u); err != nil {
			return err
		}
	}
	if r.PHPRoot != "" {
		if r.Static {
			return errors.New("a static site is not a PHP site")
		}
		if !filepath.IsAbs(r.PHPRoot) || filepath.Clean(r.PHPRoot) != r.PHPRoot || strings.ContainsAny(r.PHPRoot, "{}\t\n") {
			return fmt.Errorf("PHP document root %q must be an absolute clean path", r.PHPRoot)
		}
	}
	if r.Static || len(r.StaticPaths) > 0 || r.PHPRoot != "" {
		if r.StaticServer == "" {
			return errors.New("static files need a static file server")
		}
		if err := validateUpstream(r.StaticServer); err != nil {
			return fmt.Errorf("static file server: %w", err)
		}
	}
	prefixes := make(map[string]bool, len(r.StaticPaths))
	for _, p := range r.StaticPaths {
		if !strings.HasPrefix(p, "/") || p == "/" || path.Clean(p) != p || strings.ContainsAny(p, "*?[]{}\\% ") {
			return fmt.Errorf("static path prefix %q must be a clean absolute URL path such as /static", p)
		}
		if prefixes[p] {
			return fmt.Errorf("static path prefix %q listed twice", p)
		}
		prefixes[p] = true
	}
	if r.MaxBodySize < 0 {
		return fmt.Errorf("max body size %d is negative", r.MaxBodySize)
	}
	return nil
}

// validateHost applies the host name rule every entry point applies
// (hostclaim.Normalize), so that no route reaches Caddy with a host the
// rest of hop3 would refuse.
func validateHost(h string) error {
	if _, err := hostclaim.Normalize(h); err != nil {
		return fmt.Errorf("host %q is not a valid hostname", h)
	}
	return nil
}

func validateUpstream(u string) error {
	if strings.ContainsAny(u, "{}| \t\n") {
		return fmt.Errorf("upstream %q has forbidden characters", u)
	}
	if sock, ok := strings.CutPrefix(u, "unix/"); ok {
		if !filepath.IsAbs(sock) || filepath.Clean(sock) != sock {
			return fmt.Errorf("upstream %q: socket path must be absolute and clean", u)
		}
		// The kernel limits sun_path to 108 bytes including the NUL.
		if len(sock) > 107 {
			return fmt.Errorf("upstream %q: socket path longer than 107 bytes", u)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(u)
	if err != nil || host == "" {
		return fmt.Errorf("upstream %q must be unix//path or host:port", u)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("upstream %q: bad port", u)
	}
	return nil
}

// validateRoutes checks every route and that no two claim the same app or
// host: Caddy would silently send a shared host to whichever came first.
func validateRoutes(routes []Route) error {
	apps := make(map[string]bool, len(routes))
	hosts := make(map[string]string)
	for _, r := range routes {
		if err := r.Validate(); err != nil {
			return err
		}
		if apps[r.App] {
			return fmt.Errorf("validate routes: app %s listed twice", r.App)
		}
		apps[r.App] = true
		for _, h := range r.Hosts {
			h = strings.ToLower(h)
			if other, ok := hosts[h]; ok {
				return fmt.Errorf("validate routes: host %s claimed by both %s and %s", h, other, r.App)
			}
			hosts[h] = r.App
		}
	}
	return nil
}

// validate checks the options for the given config shape.
func (o Options) validate() error {
	if _, err := addrPort(o.HTTPAddr); err != nil {
		return fmt.Errorf("validate options: http addr: %w", err)
	}
	switch o.TLS {
	case TLSOff:
	case TLSInternal, TLSACME:
		if _, err := addrPort(o.HTTPSAddr); err != nil {
			return fmt.Errorf("validate options: https addr: %w", err)
		}
		if o.HTTPSAddr == o.HTTPAddr {
			return errors.New("validate options: http and https addrs are the same")
		}
	default:
		return fmt.Errorf("validate options: unknown tls mode %s", o.TLS)
	}
	if o.Domain != "" {
		if err := validateHost(o.Domain); err != nil {
			return fmt.Errorf("validate options: domain: %w", err)
		}
	}
	if strings.ContainsAny(o.ACMEEmail+o.ACMECA, "{} \t\n") {
		return errors.New("validate options: acme email and ca must not contain braces or spaces")
	}
	if err := o.validateIssuer(); err != nil {
		return fmt.Errorf("validate options: %w", err)
	}
	if err := o.validateAutomation(); err != nil {
		return fmt.Errorf("validate options: %w", err)
	}
	if o.UpstreamWait < 0 {
		return errors.New("validate options: negative upstream wait")
	}
	return nil
}

// validateIssuer checks the ACME issuer settings beyond the CA.
func (o Options) validateIssuer() error {
	set := o.ACMECARoot != "" || o.ACMEEABKeyID != "" || o.ACMEEABHMAC != "" || len(o.ACMEFallback) > 0
	if set && o.TLS != TLSACME {
		return fmt.Errorf("acme ca root, eab and fallback need tls acme, not %s", o.TLS)
	}
	if o.ACMECARoot != "" && !filepath.IsAbs(o.ACMECARoot) {
		return fmt.Errorf("acme ca root %q is not an absolute path", o.ACMECARoot)
	}
	if (o.ACMEEABKeyID == "") != (o.ACMEEABHMAC == "") {
		return errors.New("acme eab needs both a key id and an hmac key")
	}
	if strings.ContainsAny(o.ACMECARoot+o.ACMEEABKeyID+o.ACMEEABHMAC, "{}\t\n") {
		return errors.New("acme ca root and eab must not contain braces or control characters")
	}
	for _, ca := range o.ACMEFallback {
		if err := ValidateACMEURL(ca); err != nil {
			return fmt.Errorf("acme fallback: %w", err)
		}
	}
	return nil
}

// validateAutomation checks on-demand TLS and the DNS-01 wildcard.
func (o Options) validateAutomation() error {
	if o.OnDemandAsk != "" {
		if o.TLS == TLSOff {
			return errors.New("on-demand tls needs tls internal or acme")
		}
		// Caddy expands {placeholders} in the endpoint and fails on
		// unknown ones.
		u, err := url.Parse(o.OnDemandAsk)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(o.OnDemandAsk, "{} \t\n") {
			return fmt.Errorf("on-demand ask endpoint %q is not an http URL", o.OnDemandAsk)
		}
	}
	if o.ACMEDNS == nil {
		return nil
	}
	if o.TLS != TLSACME {
		return fmt.Errorf("acme dns needs tls acme, not %s", o.TLS)
	}
	if err := o.ACMEDNS.Validate(); err != nil {
		return err
	}
	d := strings.ToLower(o.Domain)
	if !strings.Contains(d, ".") || net.ParseIP(d) != nil || strings.HasPrefix(d, "*.") {
		return fmt.Errorf("acme dns: domain %q has no wildcard a CA would issue", o.Domain)
	}
	return nil
}

// ValidateACMEURL checks an ACME directory URL: https, a host, nothing
// Caddy would read as a placeholder.
func ValidateACMEURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || strings.ContainsAny(s, "{} \t\n") {
		return fmt.Errorf("acme directory %q is not an https URL", s)
	}
	return nil
}

// split reports whether hop3 needs two servers, HTTPS and plain HTTP, each
// with every app's route: Caddy turns TLS on for every listener of a server
// with TLS whose port is not http_port, and inherited sockets have no port.
// Per-app admin calls then can not change both servers at once, so the
// router loads the whole config instead.
func (o Options) split() bool { return o.ListenFDs && o.TLS != TLSOff }

// overlap is the shutdown_delay of configs with inherited sockets, or 0.
func (o Options) overlap() time.Duration {
	switch {
	case !o.ListenFDs || o.ReloadOverlap < 0:
		return 0
	case o.ReloadOverlap == 0:
		return DefaultReloadOverlap
	}
	return o.ReloadOverlap
}

// fd names an inherited TCP socket in the given slot (0 or 1).
func fd(n, slot int) string {
	if slot == 1 {
		n += altFDOffset
	}
	return "fd/" + strconv.Itoa(n)
}

func addrPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("%q must be host:port or :port", addr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q: bad port", addr)
	}
	return n, nil
}

// obj is a JSON object of Caddy's config; encoding/json sorts map keys, so
// the output is deterministic and "@id" comes first.
type obj = map[string]any

// Config returns the full Caddy JSON config for POST /load or
// `caddy run --config`.
func Config(opts Options, routes []Route) ([]byte, error) {
	return config(opts, routes, 0)
}

// config is Config with the inherited sockets named by slot's descriptor
// numbers.
func config(opts Options, routes []Route, slot int) ([]byte, error) {
	cfg, err := configObj(opts, routes, slot)
	if err != nil {
		return nil, err
	}
	return marshal(cfg)
}

func configObj(opts Options, routes []Route, slot int) (obj, error) {
	srv, err := serverObj(opts, routes, slot)
	if err != nil {
		return nil, err
	}
	admin := obj{"config": obj{"persist": false}}
	if opts.AdminListen != "" {
		admin["listen"] = opts.AdminListen
	}
	servers := obj{ServerName: srv}
	if opts.split() {
		servers[HTTPServerName] = buildServer(opts, routes, httpIDs, []any{fd(HTTPFD, slot)},
			// Automatic HTTPS would give this server TLS too (its socket
			// has no port to compare with http_port); the HTTPS server
			// manages every certificate.
			obj{"disable": true})
	}
	httpApp := obj{"servers": servers}
	if opts.Metrics {
		httpApp["metrics"] = obj{"per_host": true}
	}
	if d := opts.overlap(); d > 0 {
		httpApp["shutdown_delay"] = d.String()
	}
	apps := obj{"http": httpApp}
	if opts.TLS != TLSOff {
		// http_port tells Caddy which of the server's listeners stays
		// plain HTTP; every other listener gets TLS. With inherited
		// sockets it still sets the ACME challenge ports and the port
		// of Caddy's own redirects.
		httpPort, _ := addrPort(opts.HTTPAddr)
		httpsPort, _ := addrPort(opts.HTTPSAddr)
		httpApp["http_port"] = httpPort
		httpApp["https_port"] = httpsPort
		// Never let Caddy try to install its root into the system
		// trust store (it would ask for a password or fail).
		apps["pki"] = obj{"certificate_authorities": obj{"local": obj{"install_trust": false}}}
		// One policy without subjects covers every host, including
		// hosts of apps added later by Set, so adding an app never
		// needs a second admin call to the tls app. Automatic HTTPS
		// finds the names to manage in the host matchers of the
		// server's top-level routes.
		apps["tls"] = tlsApp(opts)
	}
	return obj{"admin": admin, "apps": apps}, nil
}

// tlsApp is Caddy's tls app: the one catch-all automation policy, after
// the DNS-01 wildcard's policy when there is one.
func tlsApp(opts Options) obj {
	var policies []any
	app := obj{}
	if opts.ACMEDNS != nil {
		// The wildcard is obtained at once ("automate"); Caddy then
		// gets no certificate of its own for a host it covers.
		wildcard := "*." + strings.ToLower(opts.Domain)
		provider := obj{"name": opts.ACMEDNS.Name}
		for k, v := range opts.ACMEDNS.Config {
			provider[k] = v
		}
		dns := issuers(opts)
		for _, is := range dns {
			is.(obj)["challenges"] = obj{"dns": obj{"provider": provider}}
		}
		policies = append(policies, obj{"subjects": []any{wildcard}, "issuers": dns})
		app["certificates"] = obj{"automate": []any{wildcard}}
	}
	catchAll := obj{"issuers": issuers(opts)}
	automation := obj{}
	if opts.OnDemandAsk != "" {
		catchAll["on_demand"] = true
		automation["on_demand"] = obj{"permission": obj{"module": "http", "endpoint": opts.OnDemandAsk}}
	}
	automation["policies"] = append(policies, catchAll)
	app["automation"] = automation
	return app
}

// issuers are the TLS automation policy's issuers, which Caddy tries in
// order: Caddy's local CA, or the ACME CA and then each fallback.
func issuers(opts Options) []any {
	if opts.TLS != TLSACME {
		return []any{obj{"module": "internal"}}
	}
	acme := func(ca string) obj {
		is := obj{"module": "acme"}
		if opts.ACMEEmail != "" {
			is["email"] = opts.ACMEEmail
		}
		if ca != "" {
			is["ca"] = ca
		}
		if opts.ACMECARoot != "" {
			is["trusted_roots_pem_files"] = []string{opts.ACMECARoot}
		}
		return is
	}
	primary := acme(opts.ACMECA)
	if opts.ACMEEABKeyID != "" {
		// An EAB account exists at one CA only.
		primary["external_account"] = obj{"key_id": opts.ACMEEABKeyID, "mac_key": opts.ACMEEABHMAC}
	}
	list := []any{primary}
	for _, ca := range opts.ACMEFallback {
		list = append(list, acme(ca))
	}
	return list
}

// idSet names the objects of one server of hop3's.
type idSet struct {
	server, catchAll, error, app string // app: prefix of app route ids
}

var (
	mainIDs = idSet{serverID, catchAllID, errorID, appPrefix}
	httpIDs = idSet{httpIDPrefix + "server", httpIDPrefix + "catchall", httpIDPrefix + "error", httpIDPrefix + "app_"}
)

// serverObj builds hop3's server: one server for both ports. Caddy enables
// TLS on every listener except the one on http_port, so a single route list
// serves HTTP and HTTPS and a change to an app is one admin call. With
// inherited sockets and TLS (Options.split) it is the HTTPS server only,
// and HTTPServerName serves plain HTTP with the same routes.
//
// App routes are top-level routes of the server rather than children of
// one "apps" subroute: automatic HTTPS only looks at the host matchers of
// top-level routes, and would manage no certificate otherwise. New routes
// are therefore inserted at index 0 so they stay before the catch-all.
func serverObj(opts Options, routes []Route, slot int) (obj, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := validateRoutes(routes); err != nil {
		return nil, err
	}
	var listen []any
	var autoHTTPS obj
	switch {
	case opts.TLS == TLSOff:
		listen = []any{opts.HTTPAddr}
		if opts.ListenFDs {
			listen = []any{fd(HTTPFD, slot)}
		}
		autoHTTPS = obj{"disable": true}
	case opts.ListenFDs:
		listen = []any{fd(HTTPSFD, slot), "fdgram/" + strconv.Itoa(HTTP3FD)}
		autoHTTPS = obj{"disable_redirects": true}
	default:
		listen = []any{opts.HTTPAddr, opts.HTTPSAddr}
		// hop3 redirects per app (HTTPSOnly); Caddy's automatic
		// redirects would take every app off plain HTTP.
		autoHTTPS = obj{"disable_redirects": true}
	}
	srv := buildServer(opts, routes, mainIDs, listen, autoHTTPS)
	if opts.split() {
		// HTTP/3 needs its own (UDP) socket.
		srv["listen_protocols"] = []any{[]any{"h1", "h2"}, []any{"h3"}}
	}
	return srv, nil
}

// buildServer builds one server of hop3's from validated options and routes.
func buildServer(opts Options, routes []Route, ids idSet, listen []any, autoHTTPS obj) obj {
	placed := orderRoutes(routes, ids.app)
	list := make([]any, 0, len(placed)+1)
	for _, p := range placed {
		list = append(list, appRoute(opts, p.route, p.id))
	}
	list = append(list, catchAllRoute(opts, ids.catchAll))
	return obj{
		"@id":    ids.server,
		"routes": list,
		// Errors inside app routes are answered by each app's subroute;
		// this is the last resort so no error ever ends as an empty page.
		// Error pages live here, once, rather than in every app's route:
		// each app route's size is what every Caddy reload pays for, per
		// app (a third of the time at 1000 apps, BENCHMARKS.md). The app's
		// name comes from the variable its route sets.
		"errors": obj{"routes": []any{
			obj{
				"@id":    ids.error + "_down",
				"match":  []any{obj{"vars": obj{"{http.error.status_code}": []any{"502", "503", "504"}, "{http.vars." + appVar + "}": []any{"*"}}}},
				"handle": []any{errorResponse("{http.error.status_code}", page("{http.vars."+appVar+"} is not answering", "The app {http.vars."+appVar+"} did not answer. It may be starting or restarting; try again in a moment."))},
			},
			obj{
				"@id":    ids.error,
				"handle": []any{errorResponse("{http.error.status_code}", page("{http.error.status_code} {http.error.status_text}", "The request could not be completed."))},
			},
		}},
		"listen":          listen,
		"automatic_https": autoHTTPS,
	}
}

// wildcardID is appended to an app's route id for the route of its
// wildcard hosts (app names have no '_', so it names no other app).
const wildcardID = "_wildcard"

// placedRoute is one top-level route of hop3's server and its id.
type placedRoute struct {
	route Route
	id    string
	wild  int // length of the longest wildcard suffix; 0 for exact hosts
}

// orderRoutes orders app routes so that which app answers a request never
// depends on app names: Caddy takes the first route whose hosts match, and
// an exact host must win over another app's wildcard. An app with both
// kinds gets two routes with the same handling: its exact hosts (the app's
// id) and its wildcards (id + "_wildcard"). Exact routes come first, by app;
// then wildcard routes from the longest suffix to the shortest, then by app
// (two different one-label wildcards never match the same host, so that
// order only keeps the config stable).
func orderRoutes(routes []Route, prefix string) []placedRoute {
	var exact, wild []placedRoute
	for _, r := range routes {
		var hosts, wilds []string
		longest := 0
		for _, h := range r.Hosts {
			if suffix, ok := strings.CutPrefix(h, "*."); ok {
				wilds = append(wilds, h)
				longest = max(longest, len(suffix))
				continue
			}
			hosts = append(hosts, h)
		}
		id := prefix + r.App
		switch {
		case len(wilds) == 0:
			exact = append(exact, placedRoute{route: r, id: id})
		case len(hosts) == 0:
			wild = append(wild, placedRoute{route: r, id: id, wild: longest})
		default:
			e, w := r, r
			e.Hosts, w.Hosts = hosts, wilds
			exact = append(exact, placedRoute{route: e, id: id})
			wild = append(wild, placedRoute{route: w, id: id + wildcardID, wild: longest})
		}
	}
	slices.SortFunc(exact, func(a, b placedRoute) int { return strings.Compare(a.route.App, b.route.App) })
	slices.SortFunc(wild, func(a, b placedRoute) int {
		if a.wild != b.wild {
			return b.wild - a.wild
		}
		return strings.Compare(a.route.App, b.route.App)
	})
	return append(exact, wild...)
}

// HasWildcard reports whether a route matches a wildcard host: its place
// among the server's routes then depends on the other routes (orderRoutes).
func (r Route) HasWildcard() bool {
	return slices.ContainsFunc(r.Hosts, func(h string) bool { return strings.HasPrefix(h, "*.") })
}

// appVar names the request variable an app's route sets to the app's name.
const appVar = "hop3_app"

// AppID is the "@id" of an app's route.
func AppID(app string) string { return appPrefix + app }

// appRoute builds one app's route with the given id: a host matcher and a
// subroute whose children carry ids derived from it.
func appRoute(opts Options, r Route, id string) obj {
	hosts := make([]any, len(r.Hosts))
	for i, h := range r.Hosts {
		hosts[i] = strings.ToLower(h)
	}
	// The app's name, for the server's error pages.
	sub := []any{obj{"handle": []any{obj{"handler": "vars", appVar: r.App}}}}
	if r.HTTPSOnly && opts.TLS != TLSOff {
		httpsPort, _ := addrPort(opts.HTTPSAddr)
		loc := "https://{http.request.host}{http.request.uri}"
		if httpsPort != 443 {
			loc = "https://{http.request.host}:" + strconv.Itoa(httpsPort) + "{http.request.uri}"
		}
		sub = append(sub, obj{
			"@id":   id + "_redirect",
			"match": []any{obj{"protocol": "http"}},
			"handle": []any{obj{
				"handler":     "static_response",
				"status_code": 308,
				"headers":     obj{"Location": []any{loc}},
			}},
		})
	}
	if r.Stopped {
		sub = append(sub, obj{
			"@id": id + "_stopped",
			"handle": []any{obj{
				"handler":     "static_response",
				"status_code": 503,
				"headers":     obj{"Content-Type": []any{htmlType}, "Retry-After": []any{"60"}},
				"body":        page(r.App+" is stopped", "The app "+r.App+" is stopped. Its owner can start it again."),
			}},
		})
	} else {
		sub = append(sub, serveRoutes(opts, r, id)...)
	}
	return obj{
		"@id":      id,
		"match":    []any{obj{"host": hosts}},
		"terminal": true,
		"handle": []any{obj{
			"handler": "subroute",
			"routes":  sub,
		}},
	}
}

func serveRoutes(opts Options, r Route, id string) []any {
	var sub []any
	if r.MaxBodySize > 0 {
		sub = append(sub, obj{
			"@id":    id + "_limit",
			"handle": []any{obj{"handler": "request_body", "max_size": r.MaxBodySize}},
		})
	}
	if r.Static || len(r.StaticPaths) > 0 {
		static := []any{obj{"dial": r.StaticServer}}
		if r.Static {
			return append(sub, obj{"@id": id + "_files", "handle": []any{proxy(opts, id+"_files_proxy", static, true)}})
		}
		// One route for every prefix: the static server picks the
		// longest itself.
		paths := make([]any, len(r.StaticPaths))
		for i, p := range slices.Sorted(slices.Values(r.StaticPaths)) {
			paths[i] = p + "/*"
		}
		sub = append(sub, obj{
			"@id":    id + "_static",
			"match":  []any{obj{"path": paths}},
			"handle": []any{proxy(opts, id+"_static_proxy", static, true)},
		})
	}
	ups := make([]any, len(r.Upstreams))
	for i, u := range r.Upstreams {
		ups[i] = obj{"dial": u}
	}
	if r.PHPRoot != "" {
		return append(sub, phpRoutes(opts, r, id, ups)...)
	}
	return append(sub, obj{"@id": id + "_app", "handle": []any{proxy(opts, id+"_proxy", ups, false)}})
}

// PHPFrontController is the script that answers every path of a PHP site
// naming no file, relative to the document root, as with Caddy's
// php_fastcgi.
const PHPFrontController = "index.php"

// phpScripts match the paths that name a PHP script, with or without a
// PATH_INFO after it (Caddy's path matcher ignores case).
var phpScripts = []any{"*.php", "*.php/*"}

// phpRoutes is Caddy's php_fastcgi with the app's static file server in
// place of Caddy's file matcher and file server, which would open the
// app's files with Caddy's rights. A GET or HEAD asks the static file
// server, which answers a file, or a 404 naming the script to run
// (try_files {path} {path}/index.php index.php); the request is then
// rewritten to that script and handed to php-fpm. Other methods carry a
// body that can be sent only once: they run the script their path names,
// else the front controller.
func phpRoutes(opts Options, r Route, id string, ups []any) []any {
	files := proxy(opts, id+"_php_files_proxy", []any{obj{"dial": r.StaticServer}}, true)
	files["handle_response"] = append([]any{obj{
		"match": obj{"status_code": []any{404}, "headers": obj{staticserve.ScriptHeader: []any{}}},
		"routes": []any{obj{"handle": []any{
			obj{"handler": "rewrite", "uri": "{http.reverse_proxy.header." + staticserve.ScriptHeader + "}"},
			fastCGI(opts, r, id+"_php_script_proxy", ups),
		}}},
	}}, files["handle_response"].([]any)...)
	return []any{
		obj{
			"@id":    id + "_php_files",
			"match":  []any{obj{"method": []any{"GET", "HEAD"}}},
			"handle": []any{files},
		},
		obj{
			"@id":    id + "_php_index",
			"match":  []any{obj{"not": []any{obj{"path": phpScripts}}}},
			"handle": []any{obj{"handler": "rewrite", "uri": "/" + PHPFrontController}},
		},
		obj{"@id": id + "_app", "handle": []any{fastCGI(opts, r, id+"_proxy", ups)}},
	}
}

// fastCGI is a reverse_proxy handler to php-fpm, with the transport
// php_fastcgi gives it.
func fastCGI(opts Options, r Route, id string, ups []any) obj {
	h := proxy(opts, id, ups, false)
	h["transport"] = obj{"protocol": "fastcgi", "root": r.PHPRoot, "split_path": []any{".php"}}
	return h
}

// proxy is a reverse_proxy handler with hop3's settings. For the static
// file server (files), an error it answers (404, 403, 405) becomes a Caddy
// error, so the server's error routes render hop3's page for it.
func proxy(opts Options, id string, ups []any, files bool) obj {
	wait := opts.UpstreamWait
	if wait == 0 {
		wait = DefaultUpstreamWait
	}
	h := obj{
		"@id":       id,
		"handler":   "reverse_proxy",
		"upstreams": ups,
		// Dial errors (the socket is missing or nobody accepts)
		// are retried for every method: requests wait while an app
		// restarts instead of failing.
		"load_balancing": obj{"try_duration": wait.String(), "try_interval": "250ms"},
		// Config changes must never close WebSockets.
		"stream_close_delay": streamCloseDelay,
		// Pass a streamed response on within 25 ms. Flushing every
		// write (-1) costs Caddy a write per header block and 7-14%
		// more CPU per request (BENCHMARKS.md); event streams and
		// bodies of unknown length are flushed at once regardless.
		"flush_interval": "25ms",
		// The transport keeps upstream keep-alive on: turning it off
		// costs 15-25% throughput.
	}
	if files {
		h["handle_response"] = []any{obj{
			"match":  obj{"status_code": []any{4, 5}},
			"routes": []any{obj{"handle": []any{obj{"handler": "error", "status_code": "{http.reverse_proxy.status_code}"}}}},
		}}
	}
	return h
}

func catchAllRoute(opts Options, id string) obj {
	msg := "No app is deployed at this address."
	if opts.Domain != "" {
		msg += " Apps of this server answer at <app>." + opts.Domain + "."
	}
	return obj{
		"@id": id,
		"handle": []any{obj{
			"handler":     "static_response",
			"status_code": 404,
			"headers":     obj{"Content-Type": []any{htmlType}},
			"body":        page("404 no such app", msg),
		}},
	}
}

const htmlType = "text/html; charset=utf-8"

func errorResponse(status, body string) obj {
	return obj{
		"handler":     "static_response",
		"status_code": status,
		"headers":     obj{"Content-Type": []any{htmlType}},
		"body":        body,
	}
}

// page renders one of hop3's pages. Caddy expands {placeholders} in bodies,
// so the markup has no braces of its own.
func page(title, msg string) string {
	t := html.EscapeString(title)
	return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + t + "</title></head>\n" +
		"<body style=\"font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em\">\n" +
		"<h1>" + t + "</h1>\n<p>" + html.EscapeString(msg) + "</p>\n<p style=\"color:#888\">hop3</p>\n</body></html>\n"
}

// marshal encodes indented JSON without escaping <, > and & so the pages
// stay readable in golden files and in GET /config.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal caddy config: %w", err)
	}
	return buf.Bytes(), nil
}
