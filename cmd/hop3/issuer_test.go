package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hop3/internal/router"
)

// testRootPEM is a self-signed CA certificate in PEM.
func testRootPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestEdgeIssuer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "root.pem")
	caddyPEM := testRootPEM(t)
	os.WriteFile(pemFile, []byte(caddyPEM), 0o600)
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not pem"), 0o600)
	tests := []struct {
		name     string
		attached bool
		c        serveConfig
		wantErr  string
		wantRoot string
	}{
		{"nothing set", false, serveConfig{}, "", ""},
		{"root copied for caddy", false, serveConfig{acmeCARoot: pemFile}, "", "acme-ca-root.pem"},
		{"root missing", false, serveConfig{acmeCARoot: filepath.Join(dir, "nope.pem")}, "--acme-ca-root: open", ""},
		{"root not pem", false, serveConfig{acmeCARoot: junk}, "holds no PEM certificate", ""},
		{"attached", true, serveConfig{acmeEABKeyID: "k", acmeEABHMAC: "m"}, "do not apply with --caddy-admin", ""},
		{"attached without issuer flags", true, serveConfig{}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caddyDir := t.TempDir()
			e := &edge{caddyDir: caddyDir, attached: tc.attached}
			var opts router.Options
			err := e.issuer(tc.c, &opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("issuer error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantRoot == "" {
				if opts.ACMECARoot != "" {
					t.Errorf("ACMECARoot = %q", opts.ACMECARoot)
				}
				return
			}
			if opts.ACMECARoot != filepath.Join(caddyDir, tc.wantRoot) {
				t.Errorf("ACMECARoot = %q, want it in Caddy's directory", opts.ACMECARoot)
			}
			if b, err := os.ReadFile(opts.ACMECARoot); err != nil || string(b) != caddyPEM {
				t.Errorf("copy: %v %q", err, b)
			}
		})
	}
}
