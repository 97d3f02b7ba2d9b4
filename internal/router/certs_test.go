package router

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// storeCert writes a certificate for host expiring at notAfter where
// Caddy's storage keeps it, with mtime mod.
func storeCert(t *testing.T, dir, issuer, host string, notAfter, mod time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, NotBefore: notAfter.Add(-90 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	k := certKey(host)
	d := filepath.Join(dir, "data", "caddy", "certificates", issuer, k)
	if err := os.MkdirAll(d, 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(d, k+".crt")
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(f, mod, mod); err != nil {
		t.Fatal(err)
	}
}

func logLine(at time.Time, msg, host, errText string) string {
	return fmt.Sprintf(`{"level":"error","ts":%d.5,"logger":"tls.obtain","msg":%q,"identifier":%q,"issuer":"acme.test-directory","error":%q}`+"\n",
		at.Unix(), msg, host, errText)
}

func TestCertsStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	day := 24 * time.Hour
	storeCert(t, dir, "acme.test-directory", "valid.test", now.Add(60*day), now.Add(-2*day))
	storeCert(t, dir, "local", "valid.test", now.Add(1*day), now.Add(-day)) // an older issuer's, earlier expiry
	storeCert(t, dir, "acme.test-directory", "expired.test", now.Add(-day), now.Add(-91*day))
	storeCert(t, dir, "acme.test-directory", "renewfail.test", now.Add(10*day), now.Add(-80*day))
	storeCert(t, dir, "acme.test-directory", "*.wild.test", now.Add(30*day), now.Add(-day))
	storeCert(t, dir, "acme.test-directory", "oldfail.test", now.Add(30*day), now.Add(-day))
	var log strings.Builder
	log.WriteString("not json\n")
	log.WriteString(`{"level":"info","msg":"could not get certificate from issuer"}` + "\n") // no identifier
	log.WriteString(logLine(now.Add(-3*day), "could not get certificate from issuer", "oldfail.test", "old"))
	log.WriteString(logLine(now.Add(-time.Hour), "could not get certificate from issuer", "failing.test", "first"))
	log.WriteString(logLine(now.Add(-time.Minute), "could not get certificate from issuer", "Failing.test",
		"HTTP 400 urn:ietf:params:acme:error:connection\n  - connection refused"))
	log.WriteString(logLine(now.Add(-time.Minute), "could not get certificate from issuer", "renewfail.test", "rate limited"))
	log.WriteString(logLine(now.Add(-time.Hour), "could not get certificate from issuer", "recovered.test", "transient"))
	log.WriteString(logLine(now.Add(-time.Minute), "certificate obtained successfully", "recovered.test", ""))
	log.WriteString(logLine(now.Add(-time.Minute), "could not get certificate from issuer", "*.failwild.test", "dns provider: no zone"))
	log.WriteString(logLine(now.Add(-time.Minute), "could not get certificate from issuer", "own.wild.test", "own failure"))
	if err := os.WriteFile(filepath.Join(dir, "caddy.log"), []byte(log.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	c := NewCerts(dir)
	c.now = func() time.Time { return now }
	tests := []struct {
		host, state, str, lastErr string
	}{
		{"valid.test", CertValid, "valid until 2026-07-31", ""},
		{"VALID.test", CertValid, "valid until 2026-07-31", ""},
		{"expired.test", CertPending, "pending", ""},
		{"none.test", CertPending, "pending", ""},
		{"failing.test", CertFailing, "failing: HTTP 400 urn:ietf:params:acme:error:connection - connection refused", "HTTP 400 urn:ietf:params:acme:error:connection - connection refused"},
		{"renewfail.test", CertValid, "valid until 2026-06-11", "rate limited"},
		{"*.wild.test", CertValid, "valid until 2026-07-01", ""},
		{"oldfail.test", CertValid, "valid until 2026-07-01", ""},
		{"recovered.test", CertPending, "pending", ""},
		// A host under a stored or failing wildcard shows the wildcard's.
		{"app.wild.test", CertValid, "valid until 2026-07-01", ""},
		{"app.failwild.test", CertFailing, "failing: dns provider: no zone", "dns provider: no zone"},
		{"a.app.wild.test", CertPending, "pending", ""},
		{"own.wild.test", CertValid, "valid until 2026-07-01", "own failure"},
	}
	hosts := make([]string, len(tests))
	for i, tc := range tests {
		hosts[i] = tc.host
	}
	got := c.Status(hosts)
	for i, tc := range tests {
		s := got[i]
		if s.Host != strings.ToLower(tc.host) || s.State != tc.state || s.String() != tc.str || s.LastError != tc.lastErr {
			t.Errorf("%s: %+v (%q), want state %s, %q, last error %q", tc.host, s, s.String(), tc.state, tc.str, tc.lastErr)
		}
	}
	if got[0].Issuer != "acme.test-directory" {
		t.Errorf("valid.test issuer = %q, want the one expiring last", got[0].Issuer)
	}

	// Cached: a certificate stored now shows after the cache expires.
	storeCert(t, dir, "acme.test-directory", "none.test", now.Add(90*day), now)
	if s := c.Status([]string{"none.test"})[0]; s.State != CertPending {
		t.Errorf("within the cache time: %+v", s)
	}
	now = now.Add(certCacheTTL)
	if s := c.Status([]string{"none.test"})[0]; s.State != CertValid {
		t.Errorf("after the cache time: %+v", s)
	}
}

func TestCertsMissingDir(t *testing.T) {
	t.Parallel()
	s := NewCerts(filepath.Join(t.TempDir(), "nope")).Status([]string{"a.test"})
	if len(s) != 1 || s[0].State != CertPending {
		t.Errorf("Status = %+v", s)
	}
}

func TestCertsAll(t *testing.T) {
	t.Parallel()
	now := time.Now()
	dir := t.TempDir()
	storeCert(t, dir, "local", "b.test", now.Add(time.Hour), now)
	storeCert(t, dir, "local", "*.w.test", now.Add(time.Hour), now)
	log := logLine(now, "could not get certificate from issuer", "a.test", "boom")
	if err := os.WriteFile(filepath.Join(dir, "caddy.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range NewCerts(dir).All() {
		got = append(got, s.Host+" "+s.State)
	}
	if want := "*.w.test valid, a.test failing, b.test valid"; strings.Join(got, ", ") != want {
		t.Errorf("All = %s, want %s", strings.Join(got, ", "), want)
	}
}

func TestCertExpiresSoon(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	tests := []struct {
		name      string
		state     string
		life, end time.Duration // lifetime, and time left
		want      bool
	}{
		{"90 days, 40 left", CertValid, 90 * day, 40 * day, false},
		{"90 days, 20 left: renewal due, not late", CertValid, 90 * day, 20 * day, false},
		{"90 days, 13 left", CertValid, 90 * day, 13 * day, true},
		{"local 12 h, 5 h left", CertValid, 12 * time.Hour, 5 * time.Hour, false},
		{"local 12 h, 2 h left", CertValid, 12 * time.Hour, 2 * time.Hour, true},
		{"failing", CertFailing, 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := CertStatus{State: tc.state, NotAfter: now.Add(tc.end), NotBefore: now.Add(tc.end - tc.life)}
			if got := s.ExpiresSoon(now); got != tc.want {
				t.Errorf("ExpiresSoon = %v, want %v", got, tc.want)
			}
		})
	}
}
