package doctor

import (
	"context"
	"fmt"
	"strings"
	"time"

	"hop3/internal/layout"
	"hop3/internal/router"
)

// certificates reports certificates Caddy failed to get, and valid ones
// whose renewal looks stuck (router.CertStatus.ExpiresSoon), from a
// managed Caddy's storage and log under <root>/caddy.
func (c *checker) certificates() Result {
	const name = "certificates"
	if c.cfg.TLS == "" || c.cfg.TLS == "off" {
		return skip(name, "TLS is off")
	}
	if c.sys.Certificates == nil {
		return skip(name, "no certificate storage to read")
	}
	dir := layout.New(c.cfg.Root).Caddy()
	all := c.sys.Certificates(dir)
	now := time.Now()
	var failing, soon []string
	valid := 0
	for _, s := range all {
		switch {
		case s.State == router.CertFailing:
			failing = append(failing, s.Host+": "+s.LastError)
		case s.ExpiresSoon(now):
			soon = append(soon, fmt.Sprintf("%s expires %s", s.Host, s.NotAfter.UTC().Format(time.DateOnly)))
		case s.State == router.CertValid:
			valid++
		}
	}
	log := router.LogPath(dir)
	if len(failing) > 0 {
		return fail(name, fmt.Sprintf("%d failing: %s", len(failing), strings.Join(failing, "; ")),
			"make the ACME CA reachable and trusted (--acme-ca, --acme-ca-root) and ports 80 and 443 reach hop3 from it; details in "+log)
	}
	if len(soon) > 0 {
		return warn(name, "renewal looks stuck: "+strings.Join(soon, "; "), "see the errors in "+log)
	}
	if valid == 0 {
		return ok(name, "none issued yet")
	}
	return ok(name, fmt.Sprintf("%d valid", valid))
}

// dnsProvider checks that the Caddy hop3 starts has the DNS provider
// module --acme-dns names: hop3 serve refuses to start without it.
func (c *checker) dnsProvider(ctx context.Context) Result {
	const name = "dns-provider"
	if c.cfg.ACMEDNS == "" {
		return skip(name, "no --acme-dns")
	}
	p := router.DNSProvider{Name: strings.ToLower(strings.TrimSpace(c.cfg.ACMEDNS))}
	if err := p.Validate(); err != nil {
		return fail(name, err.Error(), "set --acme-dns (HOP3_ACME_DNS) to a Caddy DNS provider's name, e.g. cloudflare")
	}
	bin, found := c.find(c.cfg.CaddyBin)
	if !found {
		return fail(name, "Caddy not found ("+bin+")", "see the caddy check")
	}
	out, err := c.sys.Exec(ctx, bin, "list-modules")
	if err != nil {
		return fail(name, fmt.Sprintf("%s list-modules: %v", bin, err), "see the caddy check")
	}
	if msg := p.MissingModule(bin, router.ParseModules([]byte(out))); msg != "" {
		return fail(name, msg, "install a Caddy with github.com/caddy-dns/"+p.Name+" (xcaddy, or Caddy's download page) and point --caddy-bin at it")
	}
	return ok(name, fmt.Sprintf("Caddy has %s", p.Module()))
}
