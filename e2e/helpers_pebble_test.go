package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pebbleModule is Let's Encrypt's ACME test server, from the Go module
// proxy.
const pebbleModule = "github.com/letsencrypt/pebble/v2"

const pebbleVersion = "v2.10.3"

var (
	pebbleOnce          sync.Once
	pebbleBin, pebbleMD string // binary, module directory (its test certificates)
	pebbleErr           error
)

// pebbleBuild installs Pebble into the shared test cache once (later runs
// reuse it) and returns the binary and the module's directory.
func pebbleBuild(t *testing.T) (bin, modDir string) {
	t.Helper()
	pebbleOnce.Do(func() {
		gobin := filepath.Join(sharedCache(), "pebble-"+pebbleVersion)
		var out []byte
		out, pebbleErr = exec.Command("go", "mod", "download", "-json", pebbleModule+"@"+pebbleVersion).Output()
		if pebbleErr != nil {
			pebbleErr = fmt.Errorf("go mod download %s: %v", pebbleModule, pebbleErr)
			return
		}
		var m struct{ Dir string }
		if pebbleErr = json.Unmarshal(out, &m); pebbleErr != nil {
			return
		}
		pebbleMD = m.Dir
		pebbleBin = filepath.Join(gobin, "pebble")
		if _, err := os.Stat(pebbleBin); err == nil {
			return
		}
		cmd := exec.Command("go", "install", pebbleModule+"/cmd/pebble@"+pebbleVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			pebbleErr = fmt.Errorf("go install pebble: %v\n%s", err, out)
		}
	})
	if pebbleErr != nil {
		t.Skipf("pebble unavailable (needs the Go module proxy): %v", pebbleErr)
	}
	return pebbleBin, pebbleMD
}

// pebble is a running Pebble.
type pebble struct {
	dir      string // ACME directory URL
	caRoot   string // PEM file of the root of Pebble's own HTTPS certificate
	mgmt     string // management address
	mgmtHTTP *http.Client
	log      *syncBuffer // Pebble's output: its orders and validations
}

// startPebble runs Pebble on loopback with its test certificates. Its
// validation asks dns (loopbackDNS) for the app hosts and connects to
// httpPort (HTTP-01) or tlsPort (TLS-ALPN-01) on the answer: really
// validating. With dns empty it skips validation (PEBBLE_VA_ALWAYS_VALID).
func startPebble(t *testing.T, httpPort, tlsPort, dns string) *pebble {
	t.Helper()
	bin, mod := pebbleBuild(t)
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		listen, mgmt := loopbackPort(t), loopbackPort(t)
		cfg := fmt.Sprintf(`{"pebble":{"listenAddress":%q,"managementListenAddress":%q,
			"certificate":%q,"privateKey":%q,"httpPort":%s,"tlsPort":%s,
			"externalAccountBindingRequired":false,"retryAfter":{"authz":1,"order":1},"keyAlgorithm":"ecdsa",
			"profiles":{"default":{"description":"default","validityPeriod":7776000}}}}`,
			listen, mgmt, filepath.Join(mod, "test/certs/localhost/cert.pem"), filepath.Join(mod, "test/certs/localhost/key.pem"),
			httpPort, tlsPort)
		cfgPath := filepath.Join(dir, "pebble.json")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		cmd := exec.Command(bin, "-config", cfgPath)
		cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
		if dns == "" {
			cmd.Env = append(cmd.Env, "PEBBLE_VA_ALWAYS_VALID=1")
		} else {
			cmd.Args = append(cmd.Args, "-dnsserver", dns)
		}
		sb := &syncBuffer{b: &log}
		cmd.Stdout, cmd.Stderr = sb, sb
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-exited })
		roots := x509.NewCertPool()
		caPEM, err := os.ReadFile(filepath.Join(mod, "test/certs/pebble.minica.pem"))
		if err != nil || !roots.AppendCertsFromPEM(caPEM) {
			t.Fatalf("pebble's test root: %v", err)
		}
		p := &pebble{dir: "https://" + listen + "/dir", caRoot: filepath.Join(mod, "test/certs/pebble.minica.pem"), mgmt: mgmt,
			mgmtHTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}, log: sb}
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if resp, err := p.mgmtHTTP.Get(p.dir); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return p
				}
			}
			select {
			case <-exited:
				deadline = time.Time{}
			case <-time.After(100 * time.Millisecond):
			}
		}
		if attempt >= 3 {
			sb.mu.Lock()
			t.Fatalf("pebble did not start:\n%s", log.String())
		}
	}
}

// issuanceRoot writes the root Pebble signs certificates under (made at
// each start) to a file and returns its path.
func (p *pebble) issuanceRoot(t *testing.T) string {
	t.Helper()
	resp, err := p.mgmtHTTP.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || !strings.Contains(string(b), "BEGIN CERTIFICATE") {
		t.Fatalf("pebble root: %d %v %s", resp.StatusCode, err, b)
	}
	f := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// output returns what Pebble printed so far.
func (p *pebble) output() string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	return p.log.b.String()
}

// orders returns how many orders Pebble holds ("There are now N orders in
// the db", printed at each new order).
func (p *pebble) orders() int {
	n := 0
	for _, l := range strings.Split(p.output(), "\n") {
		if _, rest, ok := strings.Cut(l, "There are now "); ok {
			fmt.Sscanf(rest, "%d orders", &n)
		}
	}
	return n
}

// loopbackPort returns a free TCP address on 127.0.0.1.
func loopbackPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// loopbackDNS answers every A query with 127.0.0.1 and every other query
// with no records, over UDP and TCP on one port of 127.0.0.1, so Pebble's
// validation reaches hop3 for any app host. It returns the address.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	for attempt := 0; ; attempt++ {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		ln.Close()
		if attempt > 10 {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n]); resp != nil {
				pc.WriteTo(resp, addr)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, int(l[0])<<8|int(l[1]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					resp := dnsAnswer(q)
					if resp == nil {
						return
					}
					c.Write(append([]byte{byte(len(resp) >> 8), byte(len(resp))}, resp...))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// dnsAnswer builds the reply to one query (RFC 1035 wire format).
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || q[4] != 0 || q[5] != 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := int(q[i+1])<<8 | int(q[i+2])
	resp := []byte{q[0], q[1], 0x84 | q[2]&0x01, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}
	resp = append(resp, question...)
	if qtype == 1 { // A
		resp[7] = 1
		resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	}
	return resp
}
