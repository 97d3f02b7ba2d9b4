package commands

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"hop3/internal/router"
)

// withoutReads drops the backend calls that only read (the listing reads
// the live environment).
func withoutReads(calls []string) []string {
	return slices.DeleteFunc(calls, func(c string) bool { return strings.HasPrefix(c, "LiveEnv ") })
}

// `domains APP` lists every host the app serves: its own, those added with
// domains:add, and those its environment names (HOST_NAME, else piku's
// NGINX_SERVER_NAME), from the live release (config over the repository's
// ENV and .env) or, before the first deploy, from config.
func TestDomainsListsConfigHosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("live", "web: x\n")
	e.app("fresh", "")
	ctx := context.Background()
	if err := e.st.AddDomains(ctx, "live", []string{"added.example.com"}); err != nil {
		t.Fatal(err)
	}
	e.be.liveEnv = map[string]string{"NGINX_SERVER_NAME": "Shop.example.com, www.shop.example.com added.example.com _"}
	var d domainsJSON
	if err := json.Unmarshal([]byte(e.ok("domains", "live", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.ConfigKey != "NGINX_SERVER_NAME" || !slices.Equal(d.FromConfig, []string{"shop.example.com", "www.shop.example.com"}) {
		t.Errorf("domains --json = %+v", d)
	}
	want := "live.localhost (default)\nadded.example.com\nshop.example.com (NGINX_SERVER_NAME)\nwww.shop.example.com (NGINX_SERVER_NAME)\n"
	if r := e.ok("domains", "live"); r.stdout != want {
		t.Errorf("domains = %q, want %q", r.stdout, want)
	}

	if err := e.st.SetConfig(ctx, "fresh", map[string]string{"HOST_NAME": "fresh.example.com", "NGINX_SERVER_NAME": "ignored.example.com"}); err != nil {
		t.Fatal(err)
	}
	if r := e.ok("domains", "fresh"); r.stdout != "fresh.localhost (default)\nfresh.example.com (HOST_NAME)\n" {
		t.Errorf("domains of an app never deployed = %q", r.stdout)
	}
}

// With TLS on, `domains APP` shows each host's certificate.
func TestDomainsCertificates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("web", "web: x\n")
	ctx := context.Background()
	if err := e.st.AddDomains(ctx, "web", []string{"shop.example.com", "new.example.com"}); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2027, 3, 1, 10, 0, 0, 0, time.UTC)
	var asked []string
	e.d.cfg.Certs = func(hosts []string) []router.CertStatus {
		if asked == nil {
			asked = hosts // the listing's call, before the repeated warning's
		}
		out := make([]router.CertStatus, len(hosts))
		for i, h := range hosts {
			out[i] = router.CertStatus{Host: h, State: router.CertPending}
			switch h {
			case "web.localhost":
				out[i] = router.CertStatus{Host: h, State: router.CertValid, NotAfter: end, Issuer: "local"}
			case "shop.example.com":
				out[i] = router.CertStatus{Host: h, State: router.CertFailing, LastError: "x509: certificate signed by unknown authority"}
			}
		}
		return out
	}
	want := "HOST                     CERT\n" +
		"web.localhost (default)  valid until 2027-03-01\n" +
		"new.example.com          pending\n" +
		"shop.example.com         failing: x509: certificate signed by unknown authority\n"
	if r := e.ok("domains", "web"); r.stdout != want {
		t.Errorf("domains =\n%s\nwant\n%s", r.stdout, want)
	}
	if want := []string{"web.localhost", "new.example.com", "shop.example.com"}; !slices.Equal(asked, want) {
		t.Errorf("asked for %v, want %v", asked, want)
	}
	var d domainsJSON
	if err := json.Unmarshal([]byte(e.ok("domains", "web", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Certificates) != 3 {
		t.Fatalf("certificates = %+v", d.Certificates)
	}
	if c := d.Certificates[0]; c.Host != "web.localhost" || c.State != "valid" || c.NotAfter == nil || !c.NotAfter.Equal(end) || c.Issuer != "local" {
		t.Errorf("valid certificate = %+v", c)
	}
	if c := d.Certificates[2]; c.State != "failing" || c.LastError != "x509: certificate signed by unknown authority" || c.NotAfter != nil {
		t.Errorf("failing certificate = %+v", c)
	}
}
