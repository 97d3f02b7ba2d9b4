package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// certListing is the certificates part of `domains APP --json`.
type certListing struct {
	Certificates []struct {
		Host      string     `json:"host"`
		State     string     `json:"state"`
		NotAfter  *time.Time `json:"not_after"`
		LastError string     `json:"last_error"`
	} `json:"certificates"`
}

// appCert returns the first certificate `domains APP --json` lists (the
// app's own host).
func appCert(d *daemon, u user, app string) (host, state, lastErr string, notAfter *time.Time, err error) {
	out, stderr, code := d.ssh(u, "domains", app, "--json")
	if code != 0 {
		return "", "", "", nil, fmt.Errorf("domains --json: %d %s", code, stderr)
	}
	var l certListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return "", "", "", nil, fmt.Errorf("domains --json: %v: %s", err, out)
	}
	if len(l.Certificates) == 0 {
		return "", "", "", nil, fmt.Errorf("domains --json lists no certificate: %s", out)
	}
	c := l.Certificates[0]
	return c.Host, c.State, c.LastError, c.NotAfter, nil
}

// lastServerLine is the last line hop3 printed during a push, before git's
// own "To ..." summary.
func lastServerLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "To ") {
			break
		}
		last = l
	}
	return last
}

// TestCertStatusInternal: with --tls internal a push ends with the https
// URL, and `domains APP` and the metrics show the certificate Caddy's
// local CA issued, read from Caddy's storage, with its expiry.
func TestCertStatusInternal(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	maddr := loopbackPort(t)
	d, ready := startRouterDaemon(t, root, nil, "--tls", "internal", "--https-addr", "127.0.0.1:0", "--metrics-addr", maddr)
	_, httpsPort, _ := strings.Cut(ready["https"], ":")
	alice := newUser(t, "alice")
	d.register(alice)
	out := newWorkdir(t, routerApp("web", nil)).mustPush(d, alice, "web")
	if last := lastServerLine(out); !strings.Contains(last, "is live at https://web.localhost:"+httpsPort+"/") {
		t.Errorf("push output does not end with the https URL: %q\n%s", last, out)
	}
	eventually(t, 30*time.Second, func() error {
		host, state, _, notAfter, err := appCert(d, alice, "web")
		if err != nil {
			return err
		}
		if host != "web.localhost" || state != "valid" || notAfter == nil || !notAfter.After(time.Now()) {
			return fmt.Errorf("certificate of %s: %s until %v", host, state, notAfter)
		}
		return nil
	})
	// The metrics read the same storage (after their cache expires).
	eventually(t, 30*time.Second, func() error {
		m, err := opsFetch("http://" + maddr + "/metrics")
		if err != nil {
			return err
		}
		if !strings.Contains(m, `hop3_cert_expiry_seconds{host="web.localhost"} `) || !strings.Contains(m, `hop3_cert_failing{host="web.localhost"} 0`) {
			return fmt.Errorf("metrics lack web.localhost's certificate")
		}
		return nil
	})
	text, _, _ := d.ssh(alice, "domains", "web")
	if want := "web.localhost (default)  valid until " + time.Now().UTC().Format("2006-01-02")[:4]; !strings.Contains(text, want) {
		t.Errorf("domains lacks %q:\n%s", want, text)
	}
}

// TestCertStatusFailing runs --tls acme against an ACME directory whose
// certificate hop3 does not trust: `domains APP` says the certificate is
// failing with Caddy's error, and `hop3 doctor` fails the certificates
// check with that cause.
func TestCertStatusFailing(t *testing.T) {
	t.Parallel()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not an ACME server", http.StatusNotFound)
	}))
	t.Cleanup(untrusted.Close)
	root := shortTemp(t)
	d, _ := startRouterDaemon(t, root, nil, "--tls", "acme", "--https-addr", "127.0.0.1:0",
		"--domain", "example.test", "--acme-ca", untrusted.URL+"/directory")
	alice := newUser(t, "alice")
	d.register(alice)
	out := newWorkdir(t, routerApp("web", nil)).mustPush(d, alice, "web")
	if !strings.Contains(lastServerLine(out), "is live at https://web.example.test:") {
		t.Errorf("push output does not end with the https URL:\n%s", out)
	}
	// No certificate can be there when the push ends.
	if !strings.Contains(out, "certificate pending: ") && !strings.Contains(out, "certificate failing for web.example.test") {
		t.Errorf("push output does not say the certificate is missing:\n%s", out)
	}
	var lastErr string
	eventually(t, 60*time.Second, func() error {
		_, state, e, _, err := appCert(d, alice, "web")
		if err != nil {
			return err
		}
		if state != "failing" {
			return fmt.Errorf("certificate %s, want failing", state)
		}
		lastErr = e
		return nil
	})
	if !strings.Contains(lastErr, "certificate") {
		t.Errorf("last error %q does not say why", lastErr)
	}
	text, _, _ := d.ssh(alice, "domains", "web")
	if !strings.Contains(text, "failing: ") {
		t.Errorf("domains does not show the failure:\n%s", text)
	}
	// The next command about the app says it again, once.
	ps, psErr, _ := d.ssh(alice, "ps", "web")
	if n := strings.Count(psErr, "certificate failing for web.example.test: "); n != 1 {
		t.Errorf("ps says the certificate failure %d times, want once:\n%s%s", n, ps, psErr)
	}
	doc, code := opsRun(t, nil, "doctor", "--root", root, "--tls", "acme", "--domain", "example.test",
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"))
	var line string
	for _, l := range strings.Split(doc, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "certificates" {
			line = l
		}
	}
	if code == 0 || !strings.HasPrefix(line, "fail ") || !strings.Contains(line, "web.example.test") || !strings.Contains(line, "--acme-ca-root") {
		t.Errorf("doctor exit %d, certificates line %q\n%s", code, line, doc)
	}
}

// startPebbleDaemon starts Pebble, validating against hop3's ports through
// a test DNS server that points every host at 127.0.0.1, and hop3 with
// --tls acme on --domain example.test, trusting Pebble through
// --acme-ca-root only, plus extra flags. It returns hop3's HTTPS port.
func startPebbleDaemon(t *testing.T, extra ...string) (*daemon, *pebble, string) {
	t.Helper()
	httpAddr, httpsAddr := loopbackPort(t), loopbackPort(t)
	_, httpPort, _ := strings.Cut(httpAddr, ":")
	_, httpsPort, _ := strings.Cut(httpsAddr, ":")
	p := startPebble(t, httpPort, httpsPort, loopbackDNS(t))
	args := append([]string{"--tls", "acme", "--http-addr", httpAddr, "--https-addr", httpsAddr,
		"--domain", "example.test", "--acme-ca", p.dir, "--acme-ca-root", p.caRoot, "--acme-email", "ops@example.test"}, extra...)
	d, _ := startRouterDaemon(t, shortTemp(t), nil, args...)
	return d, p, httpsPort
}

// TestCertPebble runs --tls acme against a real ACME server, Pebble, which
// hop3 trusts through --acme-ca-root only: the push ends with the https
// URL, the app answers over HTTPS with a certificate that chains to
// Pebble's root (checked by curl), and `domains APP --json` shows it valid
// with its expiry. Pebble validates for real: a test DNS server points the
// app's host at 127.0.0.1, and Pebble's challenge ports are hop3's.
func TestCertPebble(t *testing.T) {
	t.Parallel()
	d, p, httpsPort := startPebbleDaemon(t)
	alice := newUser(t, "alice")
	d.register(alice)
	out := newWorkdir(t, routerApp("web", nil)).mustPush(d, alice, "web")
	url := "https://web.example.test:" + httpsPort + "/"
	if last := lastServerLine(out); !strings.Contains(last, "is live at "+url) {
		t.Errorf("push output does not end with %s: %q\n%s", url, last, out)
	}
	var notAfter *time.Time
	eventually(t, 90*time.Second, func() error {
		_, state, lastErr, na, err := appCert(d, alice, "web")
		if err != nil {
			return err
		}
		if state != "valid" || na == nil {
			return fmt.Errorf("certificate %s (%s)", state, lastErr)
		}
		notAfter = na
		return nil
	})
	if left := time.Until(*notAfter); left < 80*24*time.Hour || left > 91*24*time.Hour {
		t.Errorf("certificate expires %v, want Pebble's 90 days", notAfter)
	}
	issuance := p.issuanceRoot(t)
	code, err := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
		"--cacert", issuance, "--resolve", "web.example.test:"+httpsPort+":127.0.0.1", url).CombinedOutput()
	if err != nil || string(code) != "200" {
		t.Errorf("curl --cacert <pebble root> %s: %s %v", url, code, err)
	}
	// The root of Pebble's own HTTPS certificate does not vouch for the
	// app's: the certificate really comes from Pebble's issuance.
	if code, _ := exec.Command("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30",
		"--cacert", p.caRoot, "--resolve", "web.example.test:"+httpsPort+":127.0.0.1", url).CombinedOutput(); string(code) == "200" {
		t.Errorf("curl trusted the app's certificate through Pebble's HTTPS root")
	}
}

// TestCertOnDemand runs --tls-on-demand against Pebble: a TLS handshake
// for a host an app's route claims gets a certificate there and then,
// including a name one of its wildcard hosts covers (no CA would issue
// the wildcard over HTTP-01), while a handshake for a host no app claims
// gets none, and Pebble sees no order for it: hop3's ask endpoint said no
// before Caddy asked the CA.
func TestCertOnDemand(t *testing.T) {
	t.Parallel()
	d, p, httpsPort := startPebbleDaemon(t, "--tls-on-demand")
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("web", nil)).mustPush(d, alice, "web")
	if _, stderr, code := d.ssh(alice, "domains:add", "web", "*.web.example.test"); code != 0 {
		t.Fatalf("domains:add *.web.example.test: %d %s", code, stderr)
	}
	pemRoot, err := os.ReadFile(p.issuanceRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemRoot)
	handshake := func(host string) (*x509.Certificate, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 60 * time.Second}, "tcp", "127.0.0.1:"+httpsPort,
			&tls.Config{ServerName: host, RootCAs: roots})
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0], nil
	}
	for _, host := range []string{"web.example.test", "eu.web.example.test"} {
		eventually(t, 90*time.Second, func() error {
			cert, err := handshake(host)
			if err != nil {
				return fmt.Errorf("handshake for %s: %v", host, err)
			}
			if err := cert.VerifyHostname(host); err != nil || strings.HasPrefix(cert.Subject.CommonName, "*") {
				return fmt.Errorf("certificate for %s names %v", host, cert.DNSNames)
			}
			return nil
		})
	}
	if !strings.Contains(p.output(), "eu.web.example.test") {
		t.Fatalf("pebble's log does not tell the order for eu.web.example.test:\n%s", p.output())
	}
	before := p.orders()
	if before == 0 {
		t.Fatalf("pebble's log counts no orders:\n%s", p.output())
	}
	for _, host := range []string{"other.example.test", "x.eu.web.example.test", "nobody.example.test"} {
		for range 2 {
			if cert, err := handshake(host); err == nil {
				t.Errorf("handshake for unclaimed %s got a certificate for %v", host, cert.DNSNames)
			}
		}
	}
	// An order would have been placed during the handshakes; give
	// Pebble's log a moment to show a late one all the same.
	time.Sleep(2 * time.Second)
	if after := p.orders(); after != before {
		t.Errorf("pebble holds %d orders after the unclaimed handshakes, %d before", after, before)
	}
	for _, host := range []string{"other.example.test", "x.eu.web.example.test", "nobody.example.test"} {
		if strings.Contains(p.output(), host) {
			t.Errorf("pebble saw %s", host)
		}
	}
}
