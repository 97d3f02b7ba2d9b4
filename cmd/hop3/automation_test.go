package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hop3/internal/router"
)

// fakeCaddy writes a script that lists modules as `caddy list-modules`
// does.
func fakeCaddy(t *testing.T, modules ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "caddy")
	script := "#!/bin/sh\nprintf '%s\\n' http.handlers.reverse_proxy '' '  Standard modules: 1' '' " + strings.Join(modules, " ") + " '' '  Non-standard modules: 1'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestEdgeAutomation: --acme-dns is refused with one line when the Caddy
// hop3 would start lacks the provider's module, and --tls-on-demand and
// --acme-dns are refused where they can not apply.
func TestEdgeAutomation(t *testing.T) {
	t.Setenv("HOP3_ACME_DNS_API_TOKEN", "tok")
	withCF := fakeCaddy(t, "dns.providers.cloudflare")
	without := fakeCaddy(t)
	acme := func() router.Options {
		return router.Options{HTTPAddr: ":80", HTTPSAddr: ":443", TLS: router.TLSACME, Domain: "example.com"}
	}
	tests := []struct {
		name     string
		attached bool
		c        serveConfig
		opts     router.Options
		wantErr  string
		check    func(t *testing.T, o router.Options)
	}{
		{"nothing set", false, serveConfig{}, acme(), "", nil},
		{"dns provider present", false, serveConfig{acmeDNS: "cloudflare", caddyBin: withCF}, acme(), "", func(t *testing.T, o router.Options) {
			if o.ACMEDNS == nil || o.ACMEDNS.Name != "cloudflare" || o.ACMEDNS.Config["api_token"] != "tok" {
				t.Errorf("ACMEDNS = %+v", o.ACMEDNS)
			}
		}},
		{"dns provider missing", false, serveConfig{acmeDNS: "cloudflare", caddyBin: without}, acme(), "has no module dns.providers.cloudflare", nil},
		{"dns with internal tls", false, serveConfig{acmeDNS: "cloudflare", caddyBin: withCF},
			router.Options{HTTPAddr: ":80", HTTPSAddr: ":443", TLS: router.TLSInternal, Domain: "example.com"}, "needs tls acme", nil},
		{"dns on localhost", false, serveConfig{acmeDNS: "cloudflare", caddyBin: withCF},
			router.Options{HTTPAddr: ":80", HTTPSAddr: ":443", TLS: router.TLSACME, Domain: "localhost"}, "no wildcard", nil},
		{"dns bad name", false, serveConfig{acmeDNS: "cloud/flare", caddyBin: withCF}, acme(), "want a Caddy module name", nil},
		{"on demand", false, serveConfig{tlsOnDemand: true}, acme(), "", func(t *testing.T, o router.Options) {
			if !strings.HasPrefix(o.OnDemandAsk, "http://127.0.0.1:") || !strings.HasSuffix(o.OnDemandAsk, router.AskPath) {
				t.Errorf("OnDemandAsk = %q", o.OnDemandAsk)
			}
		}},
		{"on demand with tls off", false, serveConfig{tlsOnDemand: true}, router.Options{HTTPAddr: ":80"}, "needs --tls internal or acme", nil},
		{"on demand attached", true, serveConfig{tlsOnDemand: true}, acme(), "do not apply with --caddy-admin", nil},
		{"dns attached", true, serveConfig{acmeDNS: "cloudflare", caddyBin: withCF}, acme(), "do not apply with --caddy-admin", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := &edge{attached: tc.attached}
			t.Cleanup(e.close)
			opts := tc.opts
			err := e.automation(context.Background(), tc.c, &opts, func(string) bool { return false }, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("automation error = %v, want one line with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, opts)
			}
		})
	}
}

func TestDNSProviderFromEnv(t *testing.T) {
	t.Parallel()
	p, err := dnsProvider(" Cloudflare ", []string{"HOP3_ACME_DNS=cloudflare", "HOP3_ACME_DNS_API_TOKEN=a=b", "HOP3_ACME_DNS_ZONE_ID=z", "HOP3_ACME_EMAIL=x", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "cloudflare" || len(p.Config) != 2 || p.Config["api_token"] != "a=b" || p.Config["zone_id"] != "z" {
		t.Errorf("provider = %+v", p)
	}
	if _, err := dnsProvider("cloudflare", []string{"HOP3_ACME_DNS_API-TOKEN=x"}); err == nil {
		t.Errorf("a setting key with '-' was accepted")
	}
}
