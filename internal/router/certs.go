package router

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Certificate states, as commands, doctor and metrics show them.
const (
	CertValid   = "valid"   // a certificate for the host is stored and not expired
	CertPending = "pending" // none yet, and no failure logged
	CertFailing = "failing" // none valid, and Caddy logged why
)

// CertStatus is what hop3 knows of one host's certificate.
type CertStatus struct {
	Host     string
	State    string    // CertValid, CertPending or CertFailing
	NotAfter time.Time // expiry of the stored certificate; zero without one
	// NotBefore is the stored certificate's start: with NotAfter, its
	// lifetime, which says when Caddy renews it (a third of it left).
	NotBefore time.Time
	Issuer    string // storage key of the issuer that holds it, e.g. "local"
	// LastError is Caddy's last "could not get certificate" error for the
	// host since its certificate was stored (or ever, without one).
	LastError string
	ErrorAt   time.Time
}

// String is the one-line form `domains` shows.
func (s CertStatus) String() string {
	switch s.State {
	case CertValid:
		return "valid until " + s.NotAfter.UTC().Format(time.DateOnly)
	case CertFailing:
		return "failing: " + s.LastError
	default:
		return CertPending
	}
}

// Warning is the line that tells a failing certificate: at the end of a
// push, and again on each command about its app while it fails. It is ""
// unless the state is CertFailing.
func (s CertStatus) Warning() string {
	if s.State != CertFailing {
		return ""
	}
	return "certificate failing for " + s.Host + ": " + s.LastError
}

// certCacheTTL bounds how often the storage and the log are read again: a
// command or a metrics scrape per second must not reread them each time.
const certCacheTTL = 5 * time.Second

// certLogTail is how much of the end of caddy.log is searched for
// failures: enough for many retry rounds, little enough to read per scrape.
const certLogTail = 1 << 20

// Certs reads certificate status from a managed Caddy's directory: the
// certificates in its storage (<dir>/data/caddy/certificates/<issuer>/
// <host>/<host>.crt) and the failures in its JSON log (<dir>/caddy.log).
// Caddy keeps no other record a reader outside it can see without the
// admin API, which lists no managed certificates.
type Certs struct {
	dir string
	now func() time.Time

	mu      sync.Mutex
	readAt  time.Time
	stored  map[string]storedCert // host -> latest expiry
	fails   map[string]certFailure
	success map[string]time.Time // host -> last "obtained successfully"
}

type storedCert struct {
	notAfter  time.Time
	notBefore time.Time
	modTime   time.Time
	issuer    string
}

type certFailure struct {
	err string
	at  time.Time
}

// NewCerts reads certificate status below dir, a managed Caddy's
// directory (ProcessOptions.Dir).
func NewCerts(dir string) *Certs {
	return &Certs{dir: dir, now: time.Now}
}

// refreshLocked rereads storage and log when the cache is stale, and
// returns the time now.
func (c *Certs) refreshLocked() time.Time {
	now := c.now()
	if c.stored == nil || now.Sub(c.readAt) >= certCacheTTL || now.Before(c.readAt) {
		c.stored = readStoredCerts(filepath.Join(c.dir, "data", "caddy", "certificates"))
		c.fails, c.success = readCertLog(LogPath(c.dir))
		c.readAt = now
	}
	return now
}

// Status returns the status of each host's certificate, in order.
func (c *Certs) Status(hosts []string) []CertStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.refreshLocked()
	out := make([]CertStatus, len(hosts))
	for i, h := range hosts {
		h = strings.ToLower(h)
		s := CertStatus{Host: h, State: CertPending}
		sc, ok := c.stored[certKey(h)]
		f, failed := c.fails[h]
		obtained := c.success[h]
		if w := coveringWildcard(h); !ok && w != "" {
			// Caddy gets no certificate of its own for a host a managed
			// wildcard covers (--acme-dns): the wildcard's is the host's.
			sc, ok = c.stored[certKey(w)]
			if wf, wfailed := c.fails[w]; !failed && wfailed {
				f, failed, obtained = wf, true, c.success[w]
			}
		}
		if ok {
			s.NotAfter, s.NotBefore, s.Issuer = sc.notAfter, sc.notBefore, sc.issuer
		}
		if failed && ok && !f.at.After(sc.modTime) {
			failed = false // the failure came before the stored certificate
		}
		if failed && !f.at.After(obtained) {
			failed = false
		}
		if failed {
			s.LastError, s.ErrorAt = f.err, f.at
		}
		switch {
		case ok && now.Before(sc.notAfter):
			s.State = CertValid
		case failed:
			s.State = CertFailing
		}
		out[i] = s
	}
	return out
}

// All returns the status of every host with a stored certificate or a
// logged failure, sorted by host. Hosts no app routes any more stay in it
// until Caddy cleans its storage and the failure leaves the log's tail.
func (c *Certs) All() []CertStatus {
	c.mu.Lock()
	c.refreshLocked()
	hosts := map[string]bool{}
	for k := range c.stored {
		hosts[strings.ReplaceAll(k, "wildcard_", "*")] = true
	}
	for h := range c.fails {
		hosts[h] = true
	}
	c.mu.Unlock()
	return c.Status(slices.Sorted(maps.Keys(hosts)))
}

// ExpiresSoon reports whether a valid certificate is close enough to its
// end that renewal looks stuck: under 14 days left and under a quarter
// of its lifetime (Caddy renews with a third left, so a short-lived
// certificate, such as the local CA's 12-hour ones, is not flagged all
// the time).
func (s CertStatus) ExpiresSoon(now time.Time) bool {
	left := s.NotAfter.Sub(now)
	return s.State == CertValid && left < 14*24*time.Hour && left < s.NotAfter.Sub(s.NotBefore)/4
}

// coveringWildcard is the wildcard name that covers host ("*.b.c" for
// "a.b.c"), or "" for a name of one label or a wildcard.
func coveringWildcard(host string) string {
	first, rest, ok := strings.Cut(host, ".")
	if !ok || first == "*" || !strings.Contains(rest, ".") {
		return ""
	}
	return "*." + rest
}

// certKey is the directory name Caddy's storage gives host (certmagic's
// safe key: lower case, "*" spelled "wildcard_").
func certKey(host string) string {
	return strings.ReplaceAll(strings.ToLower(host), "*", "wildcard_")
}

// readStoredCerts maps each host directory under certificates/<issuer>/ to
// the stored certificate that expires last, whichever issuer holds it.
func readStoredCerts(root string) map[string]storedCert {
	out := map[string]storedCert{}
	issuers, _ := os.ReadDir(root)
	for _, is := range issuers {
		if !is.IsDir() {
			continue
		}
		hosts, _ := os.ReadDir(filepath.Join(root, is.Name()))
		for _, h := range hosts {
			if !h.IsDir() {
				continue
			}
			file := filepath.Join(root, is.Name(), h.Name(), h.Name()+".crt")
			cert, mod, ok := leaf(file)
			if ok && cert.NotAfter.After(out[h.Name()].notAfter) {
				out[h.Name()] = storedCert{notAfter: cert.NotAfter, notBefore: cert.NotBefore, modTime: mod, issuer: is.Name()}
			}
		}
	}
	return out
}

// leaf returns the first certificate in a PEM file (the leaf: Caddy
// stores the chain leaf first) and the file's mtime.
func leaf(file string) (*x509.Certificate, time.Time, bool) {
	f, err := os.Open(file)
	if err != nil {
		return nil, time.Time{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return nil, time.Time{}, false
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<20))
	if err != nil {
		return nil, time.Time{}, false
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, time.Time{}, false
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, time.Time{}, false
	}
	return cert, fi.ModTime(), true
}

// readCertLog returns, per host, the last "could not get certificate"
// error and the time of the last "certificate obtained successfully" in
// the tail of Caddy's JSON log.
func readCertLog(file string) (map[string]certFailure, map[string]time.Time) {
	fails, success := map[string]certFailure{}, map[string]time.Time{}
	f, err := os.Open(file)
	if err != nil {
		return fails, success
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > certLogTail {
		if _, err := f.Seek(fi.Size()-certLogTail, io.SeekStart); err != nil {
			return fails, success
		}
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		fail := bytes.Contains(line, []byte("could not get certificate"))
		if !fail && !bytes.Contains(line, []byte("certificate obtained successfully")) {
			continue
		}
		var e struct {
			TS         float64 `json:"ts"`
			Msg        string  `json:"msg"`
			Identifier string  `json:"identifier"`
			Error      string  `json:"error"`
		}
		if json.Unmarshal(line, &e) != nil || e.Identifier == "" {
			continue
		}
		host := strings.ToLower(e.Identifier)
		at := time.Unix(0, int64(e.TS*float64(time.Second)))
		if fail {
			fails[host] = certFailure{err: oneLineErr(e.Error), at: at}
		} else {
			success[host] = at
		}
	}
	return fails, success
}

// oneLineErr folds Caddy's error into one line of bounded length.
func oneLineErr(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "unknown error"
	}
	return s
}
