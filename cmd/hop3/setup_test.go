package main

import (
	"strings"
	"testing"
)

// TestCheckSetupDomain: --domain takes a host name as every other entry
// point reads one (package hostclaim), lowercased and without its trailing
// dot, and refuses a wildcard.
func TestCheckSetupDomain(t *testing.T) {
	settings := func(domain string) map[string]string {
		return map[string]string{
			"HOP3_ROOT": "/var/lib/hop3", "HOP3_DOMAIN": domain, "HOP3_TLS": "off",
			"HOP3_SSH_ADDR": ":22", "HOP3_HTTP_ADDR": ":80", "HOP3_HTTPS_ADDR": ":443",
		}
	}
	good := map[string]string{"example.com": "example.com", "Hop3.Example.COM.": "hop3.example.com", "localhost": "localhost", "192.0.2.7": "192.0.2.7"}
	for in, want := range good {
		v := settings(in)
		if err := checkSetup(v); err != nil || v["HOP3_DOMAIN"] != want {
			t.Errorf("--domain %q: %v, %q; want %q", in, err, v["HOP3_DOMAIN"], want)
		}
	}
	for _, in := range []string{"*.example.com", "a..example.com", "-a.example.com", "a_b.example.com", "example.com:80", "https://example.com", strings.Repeat("a.", 130) + "com"} {
		if err := checkSetup(settings(in)); err == nil || !strings.Contains(err.Error(), "is not a host name") {
			t.Errorf("--domain %q: err = %v, want it refused", in, err)
		}
	}
}
