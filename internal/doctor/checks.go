package doctor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"hop3/internal/layout"
	"hop3/internal/router"
)

const installFix = "sudo scripts/install.sh"

// Disk thresholds: a build needs room for a release and a virtualenv.
const (
	DiskWarn = 2 << 30
	DiskFail = 500 << 20
)

// MinCaddy is the oldest Caddy hop3 drives: the admin API features and
// JSON config it uses are those of 2.7.
var MinCaddy = [2]int{2, 7}

var caddyVersionRe = regexp.MustCompile(`v?(\d+)\.(\d+)(?:\.(\d+))?`)

func (c *checker) caddy(ctx context.Context) Result {
	const name = "caddy"
	fix := installFix + " (Caddy into /opt/hop3/tools), or set HOP3_CADDY_BIN"
	bin, found := c.find(c.cfg.CaddyBin)
	if !found {
		return fail(name, "Caddy not found ("+bin+")", fix)
	}
	out, err := c.sys.Exec(ctx, bin, "version")
	if err != nil {
		return fail(name, fmt.Sprintf("%s version: %v", bin, err), fix)
	}
	v := firstLine(out)
	v, _, _ = strings.Cut(v, " ")
	m := caddyVersionRe.FindStringSubmatch(v)
	if m == nil {
		return warn(name, fmt.Sprintf("%s: unrecognised version %q", bin, v), "use Caddy 2.7 or newer")
	}
	major, _ := strconv.Atoi(m[1])
	minor, _ := strconv.Atoi(m[2])
	if major < MinCaddy[0] || (major == MinCaddy[0] && minor < MinCaddy[1]) {
		return fail(name, fmt.Sprintf("Caddy %s at %s is older than 2.7", v, bin), fix)
	}
	return ok(name, fmt.Sprintf("Caddy %s (%s)", v, bin))
}

func (c *checker) caddyAdmin(ctx context.Context) Result {
	const name = "caddy-admin"
	l := layout.New(c.cfg.Root)
	socks := router.AdminSockets(l.HeldAdminSocket(), l.Caddy())
	sock := socks[len(socks)-1]
	for _, s := range socks {
		if _, err := os.Lstat(s); err == nil {
			sock = s
			break
		}
	}
	if !c.running {
		return warn(name, "hop3 is not running, so neither is its Caddy", "systemctl start hop3 (or hop3 serve)")
	}
	code, err := c.sys.AdminGet(ctx, sock, "/config/")
	if err != nil {
		return fail(name, "Caddy's admin socket "+sock+" does not answer: "+oneLine(err), "read "+router.LogPath(l.Caddy())+" and journalctl -u hop3; hop3 restarts Caddy when it dies")
	}
	if code != 200 {
		return fail(name, fmt.Sprintf("Caddy's admin socket %s answers %d to GET /config/", sock, code), "read "+router.LogPath(l.Caddy()))
	}
	return ok(name, "Caddy answers on "+sock)
}

func (c *checker) git(ctx context.Context) Result {
	const name = "git"
	bin, found := c.find("git")
	if !found {
		return fail(name, "git not found: pushes are received by git receive-pack", "apt-get install git")
	}
	out, err := c.sys.Exec(ctx, bin, "--version")
	if err != nil {
		return fail(name, "git --version: "+oneLine(err), "apt-get install --reinstall git")
	}
	return ok(name, firstLine(out))
}

func (c *checker) python(ctx context.Context) Result {
	const name = "python"
	bin, found := c.find("python3")
	if !found {
		return warn(name, "python3 not found: Python apps can not be built", "apt-get install python3 python3-venv")
	}
	out, err := c.sys.Exec(ctx, bin, "--version")
	if err != nil {
		return warn(name, "python3 --version: "+oneLine(err), "apt-get install --reinstall python3")
	}
	return ok(name, firstLine(out)+" ("+bin+")")
}

func (c *checker) venv(ctx context.Context) Result {
	const name = "venv/pip"
	bin, found := c.find("python3")
	if !found {
		return skip(name, "skipped: no python3")
	}
	if _, err := c.sys.Exec(ctx, bin, "-c", "import venv, ensurepip"); err != nil {
		return warn(name, "python3 has no venv/ensurepip module: builds without uv can not make virtualenvs", "apt-get install python3-venv")
	}
	return ok(name, "python3 -m venv and pip are available")
}

func (c *checker) uv(ctx context.Context) Result {
	const name = "uv"
	prog := c.cfg.UV
	if prog == "" {
		prog = "uv"
	}
	bin, found := c.find(prog)
	if !found {
		return warn(name, "uv not found ("+bin+"): Python builds fall back to python3 -m venv and pip, which is slower", installFix+" (uv into /opt/hop3/tools), or set HOP3_UV")
	}
	out, err := c.sys.Exec(ctx, bin, "--version")
	if err != nil {
		return warn(name, bin+" --version: "+oneLine(err), installFix)
	}
	return ok(name, firstLine(out)+" ("+bin+")")
}

func (c *checker) node(ctx context.Context) Result {
	const name = "node"
	node, nodeOK := c.find("node")
	_, npmOK := c.find("npm")
	switch {
	case !nodeOK && !npmOK:
		return warn(name, "node and npm not found: Node.js apps and front ends can not be built", "apt-get install nodejs npm (only if you deploy Node.js)")
	case !npmOK:
		return warn(name, "npm not found: Node.js dependencies can not be installed", "apt-get install npm")
	case !nodeOK:
		return warn(name, "node not found", "apt-get install nodejs")
	}
	out, err := c.sys.Exec(ctx, node, "--version")
	if err != nil {
		return warn(name, "node --version: "+oneLine(err), "apt-get install --reinstall nodejs")
	}
	return ok(name, "Node.js "+firstLine(out)+" with npm")
}

func (c *checker) golang(ctx context.Context) Result {
	const name = "go"
	bin, found := c.find("go")
	if !found {
		return warn(name, "go not found: Go apps can not be built", "install Go from https://go.dev/dl (only if you deploy Go)")
	}
	out, err := c.sys.Exec(ctx, bin, "version")
	if err != nil {
		return warn(name, "go version: "+oneLine(err), "reinstall Go")
	}
	return ok(name, firstLine(out))
}

func (c *checker) disk() Result {
	const name = "disk"
	path := existingParent(c.sys.Stat, c.cfg.Root)
	free, _, err := c.sys.Statfs(path)
	if err != nil {
		return fail(name, "can not read the free space under "+path+": "+oneLine(err), "check that "+c.cfg.Root+" is on a mounted file system")
	}
	detail := fmt.Sprintf("%s free under %s", bytesText(free), path)
	fix := "free space on the file system of " + c.cfg.Root + " (old logs, apt-get clean, docker system prune) or grow the disk"
	switch {
	case free < DiskFail:
		return fail(name, detail+": builds and logs will fail", fix)
	case free < DiskWarn:
		return warn(name, detail+": a large build may not fit", fix)
	}
	return ok(name, detail)
}

// existingParent is path or its nearest existing parent: the root may not
// exist before hop3's first start.
func existingParent(stat func(string) (os.FileInfo, error), path string) string {
	p := filepath.Clean(path)
	for {
		if _, err := stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

func (c *checker) ports() []Result {
	var out []Result
	out = append(out, c.port("port-http", c.cfg.HTTPAddr, "HOP3_HTTP_ADDR"))
	if c.cfg.TLS != "" && c.cfg.TLS != "off" {
		out = append(out, c.port("port-https", c.cfg.HTTPSAddr, "HOP3_HTTPS_ADDR"))
	}
	out = append(out, c.port("port-ssh", c.cfg.SSHAddr, "HOP3_SSH_ADDR"))
	return out
}

// port checks that hop3 can bind addr, or already holds it.
func (c *checker) port(name, addr, env string) Result {
	_, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return fail(name, fmt.Sprintf("bad address %q: %v", addr, err), "set "+env+" to HOST:PORT, e.g. :80")
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return fail(name, fmt.Sprintf("bad port in %q", addr), "set "+env+" to HOST:PORT")
	}
	if port == 0 {
		return ok(name, addr+": any free port")
	}
	l, lerr := c.sys.Listen("tcp", addr)
	if lerr == nil {
		l.Close()
		if c.running {
			return warn(name, addr+" is free although hop3 is running: it listens elsewhere", "compare "+env+" in /etc/hop3/hop3.env with hop3's ready line (journalctl -u hop3)")
		}
		return ok(name, addr+" is free")
	}
	owner, oerr := c.sys.PortOwner(port)
	if oerr == nil && owner.PID > 0 {
		if owner.Hop3 {
			return ok(name, fmt.Sprintf("%s is held by hop3 (%s, pid %d)", addr, owner.Name, owner.PID))
		}
		return fail(name, fmt.Sprintf("%s is held by %s (pid %d)", addr, owner.Name, owner.PID),
			fmt.Sprintf("stop %s (systemctl disable --now %s), or set %s to another port", owner.Name, owner.Name, env))
	}
	switch {
	case errors.Is(lerr, syscall.EACCES):
		return warn(name, fmt.Sprintf("this user may not bind %s (ports below 1024 are privileged)", addr),
			"nothing if hop3 runs from its systemd unit (AmbientCapabilities=CAP_NET_BIND_SERVICE); run hop3 doctor as root to check the port itself")
	case errors.Is(lerr, syscall.EADDRINUSE):
		if c.running {
			return ok(name, addr+" is in use, and hop3 is running (run as root to see which process holds it)")
		}
		return fail(name, addr+" is in use by another program", fmt.Sprintf("find it with: ss -ltnp 'sport = :%d'; stop it or set %s", port, env))
	}
	return fail(name, "can not bind "+addr+": "+oneLine(lerr), "set "+env+" to an address of this host")
}

func (c *checker) dns(ctx context.Context) Result {
	const name = "dns"
	d := strings.ToLower(strings.TrimSuffix(c.cfg.Domain, "."))
	if d == "" || d == "localhost" || strings.HasSuffix(d, ".localhost") {
		return skip(name, "skipped: domain is localhost")
	}
	if net.ParseIP(d) != nil {
		return warn(name, "domain "+d+" is an IP address: apps need names", "hop3 setup --domain example.com, with a wildcard DNS record")
	}
	host := "hop3-check-" + c.sys.Random() + "." + d
	fix := fmt.Sprintf("add DNS records *.%s and %s, type A (and AAAA), pointing at this server", d, d)
	addrs, err := c.sys.Resolver.LookupHost(ctx, host)
	if err != nil || len(addrs) == 0 {
		return fail(name, host+" does not resolve: no wildcard record for *."+d, fix)
	}
	mine := map[string]bool{}
	if ifaddrs, err := c.sys.InterfaceAddrs(); err == nil {
		for _, a := range ifaddrs {
			if ipn, ok := a.(*net.IPNet); ok {
				mine[ipn.IP.String()] = true
			}
		}
	}
	var ours, others []string
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip != nil && mine[ip.String()] {
			ours = append(ours, a)
		} else {
			others = append(others, a)
		}
	}
	if len(ours) == 0 {
		return warn(name, fmt.Sprintf("%s resolves to %s, not an address of this host", host, strings.Join(addrs, ", ")),
			"nothing if this host is reached through NAT at that address; otherwise "+fix)
	}
	detail := fmt.Sprintf("*.%s resolves to %s, an address of this host", d, strings.Join(ours, ", "))
	if len(others) > 0 {
		return warn(name, detail+", and also to "+strings.Join(others, ", "), "remove the records that do not point at this server")
	}
	return ok(name, detail)
}

func (c *checker) clock(ctx context.Context) Result {
	const name = "clock"
	bin, found := c.find("timedatectl")
	if !found {
		return skip(name, "skipped: no time source (timedatectl is not available)")
	}
	out, err := c.sys.Exec(ctx, bin, "show", "-p", "NTPSynchronized")
	if err != nil {
		return skip(name, "skipped: no time source (timedatectl show: "+firstLine(out+" "+err.Error())+")")
	}
	switch strings.TrimSpace(out) {
	case "NTPSynchronized=yes":
		return ok(name, "synchronised by NTP")
	case "NTPSynchronized=no":
		return warn(name, "not synchronised by NTP: certificate checks and logs need a right clock", "timedatectl set-ntp true (and allow outgoing UDP 123)")
	}
	return skip(name, "skipped: no time source (timedatectl says "+strconvQuote(firstLine(out))+")")
}

func (c *checker) sqlite(ctx context.Context) Result {
	const name = "sqlite"
	path := layout.New(c.cfg.Root).DB()
	if _, err := c.sys.Stat(path); errors.Is(err, os.ErrNotExist) {
		return warn(name, "no database yet at "+path, "start hop3 once (systemctl start hop3): it creates it")
	}
	if err := c.sys.CheckStore(ctx, path); err != nil {
		return fail(name, path+": "+oneLine(err), "stop hop3, keep a copy of "+path+", then try: sqlite3 "+path+" .recover | sqlite3 hop3-recovered.db")
	}
	return ok(name, path+": integrity ok")
}

// listeners reports app processes that listen beyond loopback: they can
// be reached without Caddy (its TLS, limits and pages).
func (c *checker) listeners() Result {
	const name = "listeners"
	if c.sys.PublicListeners == nil || c.cfg.PIDDir == "" {
		return skip(name, "no process table to read")
	}
	public, err := c.sys.PublicListeners(c.cfg.PIDDir)
	if err != nil {
		return warn(name, "can not read the apps' sockets: "+oneLine(err), "run doctor as the user hop3 runs as")
	}
	if len(public) == 0 {
		return ok(name, "no app process listens beyond loopback")
	}
	var found []string
	for _, p := range slices.Sorted(maps.Keys(public)) {
		found = append(found, p+" on "+strings.Join(public[p], ", "))
	}
	return warn(name, "reachable without Caddy: "+strings.Join(found, "; "),
		"make the app listen on $HOST (127.0.0.1) and $PORT, then push again")
}

func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func strconvQuote(s string) string { return strconv.Quote(s) }

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
