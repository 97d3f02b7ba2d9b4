package app

import (
	"strings"
	"testing"

	"hop3/internal/router"
	"hop3/internal/ui"
)

func TestManagerURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		http, https string
		want        string
	}{
		{"plain default port", ":80", "", "http://web.example.com/"},
		{"plain other port", "127.0.0.1:8080", "", "http://web.example.com:8080/"},
		{"tls default port", ":80", ":443", "https://web.example.com/"},
		{"tls other port", "127.0.0.1:8080", "127.0.0.1:8443", "https://web.example.com:8443/"},
		{"tls, http port ignored", "127.0.0.1:8080", ":443", "https://web.example.com/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &Manager{cfg: Config{Domain: "example.com", PublicHTTPAddr: tc.http, PublicHTTPSAddr: tc.https}}
			if got := m.URL("web"); got != tc.want {
				t.Errorf("URL = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCertNote(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		certs func([]string) []router.CertStatus
		want  string
	}{
		{"tls off", nil, ""},
		{"valid", state(router.CertStatus{State: router.CertValid}), ""},
		{"pending", state(router.CertStatus{State: router.CertPending}),
			"certificate pending: Caddy is getting one for web.example.com; `domains web` shows when it is there"},
		{"failing", state(router.CertStatus{State: router.CertFailing, LastError: "x509: certificate signed by unknown authority"}),
			"certificate failing for web.example.com: x509: certificate signed by unknown authority"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			m := &Manager{cfg: Config{Domain: "example.com", Certs: tc.certs}}
			m.certNote(ui.New(&b, false), "web")
			if got := strings.TrimSpace(b.String()); !strings.HasSuffix(got, tc.want) || (tc.want == "") != (got == "") {
				t.Errorf("note = %q, want %q", got, tc.want)
			}
		})
	}
}

func state(s router.CertStatus) func([]string) []router.CertStatus {
	return func(hosts []string) []router.CertStatus {
		if len(hosts) != 1 || hosts[0] != "web.example.com" {
			panic("asked for " + strings.Join(hosts, ","))
		}
		s.Host = hosts[0]
		return []router.CertStatus{s}
	}
}
