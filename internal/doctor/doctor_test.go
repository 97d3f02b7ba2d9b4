package doctor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"hop3/internal/router"
	"hop3/internal/store"
)

// validCert is a 90-day certificate with left to go.
func validCert(host string, left time.Duration) router.CertStatus {
	end := time.Now().Add(left)
	return router.CertStatus{Host: host, State: router.CertValid, NotAfter: end, NotBefore: end.Add(-90 * 24 * time.Hour)}
}

// fakeFile is enough of an os.FileInfo for the checks.
type fakeFile struct{ mode os.FileMode }

func (f fakeFile) Name() string       { return "f" }
func (f fakeFile) Size() int64        { return 0 }
func (f fakeFile) Mode() os.FileMode  { return f.mode }
func (f fakeFile) ModTime() time.Time { return time.Time{} }
func (f fakeFile) IsDir() bool        { return f.mode.IsDir() }
func (f fakeFile) Sys() any           { return nil }

type fakeResolver map[string][]string

func (r fakeResolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type nopListener struct{ net.Listener }

func (nopListener) Close() error { return nil }

// healthy is a server where everything is in place and hop3 is running:
// the ports are held by hop3, Caddy answers, DNS points here.
func healthy(t *testing.T) (Config, System) {
	root := t.TempDir()
	cfg := Config{
		Root: root, Domain: "example.com", TLS: "acme",
		CaddyBin: "/opt/hop3/tools/bin/caddy", UV: "/opt/hop3/tools/bin/uv",
		SSHAddr: ":2222", HTTPAddr: ":80", HTTPSAddr: ":443", PIDDir: filepath.Join(root, "run", "pids"),
		ACMEDNS: "cloudflare",
	}
	files := map[string]bool{
		"/opt/hop3/tools/bin/caddy": true, "/opt/hop3/tools/bin/uv": true,
		filepath.Join(root, "hop3.db"): true, root: true,
	}
	path := map[string]string{"git": "/usr/bin/git", "python3": "/usr/bin/python3", "node": "/usr/bin/node",
		"npm": "/usr/bin/npm", "go": "/usr/local/go/bin/go", "timedatectl": "/usr/bin/timedatectl"}
	outputs := map[string]string{
		"/opt/hop3/tools/bin/caddy version":            "v2.11.7 h1:yj0Y4fYZGPkSvibBJ1sTWE33xC0fxztVyXEW5iIdUT4=\n",
		"/opt/hop3/tools/bin/caddy list-modules":       "http.handlers.reverse_proxy\n\n  Standard modules: 1\n\ndns.providers.cloudflare\n\n  Non-standard modules: 1\n",
		"/opt/hop3/tools/bin/uv --version":             "uv 0.13.9\n",
		"/usr/bin/git --version":                       "git version 2.39.5\n",
		"/usr/bin/python3 --version":                   "Python 3.11.2\n",
		"/usr/bin/python3 -c import venv, ensurepip":   "",
		"/usr/bin/node --version":                      "v18.19.0\n",
		"/usr/local/go/bin/go version":                 "go version go1.26.8 linux/amd64\n",
		"/usr/bin/timedatectl show -p NTPSynchronized": "NTPSynchronized=yes\n",
	}
	sys := System{
		Statfs: func(string) (uint64, uint64, error) { return 40 << 30, 80 << 30, nil },
		LookPath: func(name string) (string, error) {
			if p, ok := path[name]; ok {
				return p, nil
			}
			return "", errors.New("not found")
		},
		Exec: func(ctx context.Context, name string, args ...string) (string, error) {
			key := strings.Join(append([]string{name}, args...), " ")
			if out, ok := outputs[key]; ok {
				return out, nil
			}
			return "", fmt.Errorf("unexpected command %q", key)
		},
		Resolver: fakeResolver{"hop3-check-abc.example.com": {"203.0.113.5"}},
		InterfaceAddrs: func() ([]net.Addr, error) {
			return []net.Addr{&net.IPNet{IP: net.ParseIP("127.0.0.1")}, &net.IPNet{IP: net.ParseIP("203.0.113.5")}}, nil
		},
		Listen: func(network, addr string) (net.Listener, error) {
			return nil, &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
		},
		PortOwner: func(port int) (Process, error) {
			if port == 2222 {
				return Process{PID: 100, Name: "hop3", Hop3: true}, nil
			}
			return Process{PID: 101, Name: "caddy", Hop3: true}, nil
		},
		Answers:  func(ctx context.Context, socket string) bool { return true },
		AdminGet: func(ctx context.Context, socket, path string) (int, error) { return 200, nil },
		Stat: func(p string) (os.FileInfo, error) {
			if files[p] {
				return fakeFile{mode: 0o755}, nil
			}
			return nil, fs.ErrNotExist
		},
		CheckStore:      func(ctx context.Context, path string) error { return nil },
		Random:          func() string { return "abc" },
		Lstat:           os.Lstat,
		ReadFile:        os.ReadFile,
		CanSwitch:       func() error { return nil },
		PublicListeners: func(string) (map[string][]string, error) { return nil, nil },
		LandlockABI:     func() int { return 7 },
		Certificates: func(dir string) []router.CertStatus {
			if filepath.Base(dir) != "caddy" {
				t.Errorf("certificates read from %s", dir)
			}
			return []router.CertStatus{validCert("web.example.com", 60*24*time.Hour)}
		},
	}
	os.Chmod(root, 0o711)
	os.MkdirAll(filepath.Join(root, "run"), 0o711)
	os.WriteFile(filepath.Join(root, "run", "isolation"), []byte("on\n"), 0o600)
	os.WriteFile(filepath.Join(root, "hop3.db"), nil, 0o600)
	return cfg, sys
}

func find(t *testing.T, results []Result, name string) Result {
	t.Helper()
	for _, r := range results {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no check %s in %v", name, results)
	return Result{}
}

var allChecks = []string{"caddy", "caddy-admin", "git", "python", "venv/pip", "uv", "node", "go", "disk",
	"port-http", "port-https", "port-ssh", "dns", "clock", "sqlite", "isolation", "state-root", "listeners", "sandbox", "certificates", "dns-provider"}

func TestHealthy(t *testing.T) {
	cfg, sys := healthy(t)
	results := Run(context.Background(), cfg, sys)
	var names []string
	for _, r := range results {
		names = append(names, r.Name)
		if r.Verdict != OK {
			t.Errorf("%s: %s %s (fix: %s)", r.Name, r.Verdict, r.Detail, r.Fix)
		}
		if strings.Contains(r.Detail, "\n") {
			t.Errorf("%s: detail is not one line: %q", r.Name, r.Detail)
		}
	}
	if strings.Join(names, " ") != strings.Join(allChecks, " ") {
		t.Errorf("checks = %v, want %v", names, allChecks)
	}
	if Failed(results) {
		t.Error("Failed = true")
	}
	if got := find(t, results, "caddy").Detail; !strings.Contains(got, "v2.11.7") {
		t.Errorf("caddy detail %q does not name the version", got)
	}
	if got := find(t, results, "sandbox").Detail; !strings.Contains(got, "Landlock ABI 7") {
		t.Errorf("sandbox detail %q does not name the ABI", got)
	}
	if got := find(t, results, "port-http").Detail; !strings.Contains(got, "held by hop3") {
		t.Errorf("port-http detail %q", got)
	}
	var b strings.Builder
	if err := Write(&b, results); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(allChecks) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(allChecks), b.String())
	}
	for i, l := range lines {
		if f := strings.Fields(l); len(f) < 3 || f[0] != "ok" || f[1] != allChecks[i] {
			t.Errorf("line %q", l)
		}
		if strings.Contains(l, "fix:") {
			t.Errorf("an ok line carries a fix: %q", l)
		}
	}
}

// TestBroken simulates one broken thing at a time and checks the verdict of
// the check that should notice it, and that the others are unaffected.
func TestBroken(t *testing.T) {
	cases := []struct {
		name    string
		break_  func(cfg *Config, sys *System)
		check   string
		verdict Verdict
		detail  string // in the detail
		fix     string // in the fix
	}{
		{"caddy missing", func(cfg *Config, sys *System) {
			stat := sys.Stat
			sys.Stat = func(p string) (os.FileInfo, error) {
				if strings.HasSuffix(p, "/caddy") {
					return nil, fs.ErrNotExist
				}
				return stat(p)
			}
		}, "caddy", Fail, "Caddy not found", "install.sh"},
		{"caddy too old", func(cfg *Config, sys *System) {
			exec := sys.Exec
			sys.Exec = func(ctx context.Context, name string, args ...string) (string, error) {
				if strings.HasSuffix(name, "caddy") {
					return "2.6.2\n", nil
				}
				return exec(ctx, name, args...)
			}
		}, "caddy", Fail, "older than 2.7", "install.sh"},
		{"caddy admin silent", func(cfg *Config, sys *System) {
			sys.AdminGet = func(ctx context.Context, socket, path string) (int, error) {
				return 0, errors.New("dial unix: connection refused")
			}
		}, "caddy-admin", Fail, "does not answer", "caddy.log"},
		{"hop3 not running", func(cfg *Config, sys *System) {
			sys.Answers = func(ctx context.Context, socket string) bool { return false }
			sys.Listen = func(network, addr string) (net.Listener, error) { return nopListener{}, nil }
		}, "caddy-admin", Warn, "not running", "systemctl start hop3"},
		{"disk nearly full", func(cfg *Config, sys *System) {
			sys.Statfs = func(string) (uint64, uint64, error) { return 300 << 20, 80 << 30, nil }
		}, "disk", Fail, "300 MiB free", "free space"},
		{"disk low", func(cfg *Config, sys *System) {
			sys.Statfs = func(string) (uint64, uint64, error) { return 1 << 30, 80 << 30, nil }
		}, "disk", Warn, "1.0 GiB free", "free space"},
		{"statfs fails", func(cfg *Config, sys *System) {
			sys.Statfs = func(string) (uint64, uint64, error) { return 0, 0, syscall.EIO }
		}, "disk", Fail, "can not read", ""},
		{"corrupt sqlite", func(cfg *Config, sys *System) {
			sys.CheckStore = func(ctx context.Context, path string) error {
				return errors.New("check store: integrity: *** in database main ***\nPage 5: btree")
			}
		}, "sqlite", Fail, "integrity", ".recover"},
		{"app listens on every interface", func(cfg *Config, sys *System) {
			sys.PublicListeners = func(string) (map[string][]string, error) {
				return map[string][]string{"shop/web.1@v3.2": {"0.0.0.0:3000", "[::]:3000"}}, nil
			}
		}, "listeners", Warn, "shop/web.1@v3.2 on 0.0.0.0:3000, [::]:3000", "$HOST (127.0.0.1)"},
		{"no database yet", func(cfg *Config, sys *System) {
			stat := sys.Stat
			sys.Stat = func(p string) (os.FileInfo, error) {
				if strings.HasSuffix(p, "hop3.db") {
					return nil, fs.ErrNotExist
				}
				return stat(p)
			}
		}, "sqlite", Warn, "no database yet", "start hop3"},
		{"no landlock", func(cfg *Config, sys *System) {
			sys.LandlockABI = func() int { return 0 }
		}, "sandbox", Warn, "Landlock missing: uid separation alone holds", "5.13"},
		{"sandbox off", func(cfg *Config, sys *System) {
			cfg.Sandbox = "off"
		}, "sandbox", Warn, "Landlock off", "HOP3_SANDBOX"},
		{"git missing", func(cfg *Config, sys *System) {
			lp := sys.LookPath
			sys.LookPath = func(name string) (string, error) {
				if name == "git" {
					return "", errors.New("not found")
				}
				return lp(name)
			}
		}, "git", Fail, "git not found", "apt-get install git"},
		{"python without venv", func(cfg *Config, sys *System) {
			exec := sys.Exec
			sys.Exec = func(ctx context.Context, name string, args ...string) (string, error) {
				if len(args) > 0 && args[0] == "-c" {
					return "ModuleNotFoundError: No module named 'ensurepip'", errors.New("exit status 1")
				}
				return exec(ctx, name, args...)
			}
		}, "venv/pip", Warn, "no venv", "python3-venv"},
		{"uv missing", func(cfg *Config, sys *System) { cfg.UV = "uv" }, "uv", Warn, "uv not found", "HOP3_UV"},
		{"node missing", func(cfg *Config, sys *System) {
			lp := sys.LookPath
			sys.LookPath = func(name string) (string, error) {
				if name == "node" || name == "npm" {
					return "", errors.New("not found")
				}
				return lp(name)
			}
		}, "node", Warn, "node and npm not found", "nodejs"},
		{"port held by nginx", func(cfg *Config, sys *System) {
			sys.PortOwner = func(port int) (Process, error) { return Process{PID: 77, Name: "nginx"}, nil }
		}, "port-http", Fail, "held by nginx (pid 77)", "systemctl disable --now nginx"},
		{"port in use, owner invisible, hop3 stopped", func(cfg *Config, sys *System) {
			sys.Answers = func(ctx context.Context, socket string) bool { return false }
			sys.PortOwner = func(port int) (Process, error) { return Process{}, errors.New("not visible") }
		}, "port-ssh", Fail, "in use by another program", "ss -ltnp"},
		{"privileged port as a user", func(cfg *Config, sys *System) {
			sys.Answers = func(ctx context.Context, socket string) bool { return false }
			sys.Listen = func(network, addr string) (net.Listener, error) {
				return nil, &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EACCES)}
			}
			sys.PortOwner = func(port int) (Process, error) { return Process{}, errors.New("none") }
		}, "port-https", Warn, "may not bind :443", "CAP_NET_BIND_SERVICE"},
		{"dns missing", func(cfg *Config, sys *System) { sys.Resolver = fakeResolver{} }, "dns", Fail, "does not resolve", "*.example.com"},
		{"dns elsewhere", func(cfg *Config, sys *System) {
			sys.Resolver = fakeResolver{"hop3-check-abc.example.com": {"198.51.100.9"}}
		}, "dns", Warn, "not an address of this host", "NAT"},
		{"localhost", func(cfg *Config, sys *System) { cfg.Domain = "localhost" }, "dns", Skip, "skipped: domain is localhost", ""},
		{"no ntp", func(cfg *Config, sys *System) {
			exec := sys.Exec
			sys.Exec = func(ctx context.Context, name string, args ...string) (string, error) {
				if strings.HasSuffix(name, "timedatectl") {
					return "NTPSynchronized=no\n", nil
				}
				return exec(ctx, name, args...)
			}
		}, "clock", Warn, "not synchronised", "set-ntp"},
		{"no time source", func(cfg *Config, sys *System) {
			exec := sys.Exec
			sys.Exec = func(ctx context.Context, name string, args ...string) (string, error) {
				if strings.HasSuffix(name, "timedatectl") {
					return "System has not been booted with systemd as init system (PID 1). Can't operate.\n", errors.New("exit status 1")
				}
				return exec(ctx, name, args...)
			}
		}, "clock", Skip, "skipped: no time source", ""},
		{"certificate failing", func(cfg *Config, sys *System) {
			sys.Certificates = func(string) []router.CertStatus {
				return []router.CertStatus{validCert("ok.example.com", 60*24*time.Hour),
					{Host: "web.example.com", State: router.CertFailing, LastError: "x509: certificate signed by unknown authority"}}
			}
		}, "certificates", Fail, "1 failing: web.example.com: x509: certificate signed by unknown authority", "--acme-ca-root"},
		{"certificate renewal stuck", func(cfg *Config, sys *System) {
			sys.Certificates = func(string) []router.CertStatus {
				return []router.CertStatus{validCert("web.example.com", 5*24*time.Hour)}
			}
		}, "certificates", Warn, "renewal looks stuck: web.example.com expires", "caddy.log"},
		{"no certificate yet", func(cfg *Config, sys *System) {
			sys.Certificates = func(string) []router.CertStatus { return nil }
		}, "certificates", OK, "none issued yet", ""},
		{"tls off", func(cfg *Config, sys *System) { cfg.TLS = "off" }, "certificates", Skip, "TLS is off", ""},
		{"dns provider missing from caddy", func(cfg *Config, sys *System) { cfg.ACMEDNS = "route53" },
			"dns-provider", Fail, "has no module dns.providers.route53", "github.com/caddy-dns/route53"},
		{"dns provider malformed", func(cfg *Config, sys *System) { cfg.ACMEDNS = "route-53" },
			"dns-provider", Fail, "want a Caddy module name", "--acme-dns"},
		{"no dns provider", func(cfg *Config, sys *System) { cfg.ACMEDNS = "" }, "dns-provider", Skip, "no --acme-dns", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, sys := healthy(t)
			tc.break_(&cfg, &sys)
			results := Run(context.Background(), cfg, sys)
			r := find(t, results, tc.check)
			if r.Verdict != tc.verdict {
				t.Errorf("%s: verdict %s (%s), want %s", tc.check, r.Verdict, r.Detail, tc.verdict)
			}
			if !strings.Contains(r.Detail, tc.detail) {
				t.Errorf("%s: detail %q does not contain %q", tc.check, r.Detail, tc.detail)
			}
			if !strings.Contains(r.Fix, tc.fix) {
				t.Errorf("%s: fix %q does not contain %q", tc.check, r.Fix, tc.fix)
			}
			if strings.Contains(r.Detail, "\n") {
				t.Errorf("detail is not one line: %q", r.Detail)
			}
			if got, want := Failed(results), tc.verdict == Fail; got != want {
				t.Errorf("Failed = %v, want %v", got, want)
			}
			var b strings.Builder
			Write(&b, results)
			line := ""
			for _, l := range strings.Split(b.String(), "\n") {
				if f := strings.Fields(l); len(f) > 1 && f[1] == tc.check {
					line = l
				}
			}
			if !strings.HasPrefix(line, tc.verdict.String()+" ") {
				t.Errorf("printed line %q does not start with %s", line, tc.verdict)
			}
			if tc.fix != "" && !strings.Contains(line, "fix: ") {
				t.Errorf("printed line %q has no fix", line)
			}
		})
	}
}

// TestCheckStoreOnRealFiles uses the real SQLite check on a sound database,
// on a file that is not a database, and on one with a damaged page.
func TestCheckStoreOnRealFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := store.Open(good)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 400; i++ {
		if err := s.AddEvent(ctx, store.Event{App: "a", Kind: "deploy", Message: strings.Repeat("x", 200)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if err := checkStore(ctx, good); err != nil {
		t.Fatalf("sound database: %v", err)
	}

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o600)
	if err := checkStore(ctx, garbage); err == nil {
		t.Error("a file of garbage passed the check")
	}

	// Damage pages past the schema: opening works, the integrity check
	// does not pass.
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 16*4096 {
		t.Fatalf("database too small to damage: %d bytes", len(b))
	}
	for i := 8 * 4096; i < 12*4096; i++ {
		b[i] = 0xA5
	}
	damaged := filepath.Join(dir, "damaged.db")
	os.WriteFile(damaged, b, 0o600)
	err = checkStore(ctx, damaged)
	if err == nil {
		t.Fatal("a damaged database passed the check")
	}
	t.Logf("damaged database: %v", err)

	cfg, sys := healthy(t)
	sys.CheckStore = checkStore
	sys.Stat = os.Stat
	cfg.Root = dir
	os.Rename(damaged, filepath.Join(dir, "hop3.db"))
	r := find(t, Run(ctx, cfg, sys), "sqlite")
	if r.Verdict != Fail {
		t.Errorf("sqlite on a damaged database: %s %s", r.Verdict, r.Detail)
	}
}

func TestListenInodes(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1111 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0050 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2222 1 0000000000000000 100 0 0 10 0
   2: 00000000:08AE 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3333 1 0000000000000000 100 0 0 10 0
`
	if got := listenInodes([]byte(tcp), 80); len(got) != 1 || got[0] != "1111" {
		t.Errorf("port 80: %v, want [1111] (the established socket is not listening)", got)
	}
	if got := listenInodes([]byte(tcp), 2222); len(got) != 1 || got[0] != "3333" {
		t.Errorf("port 2222: %v", got)
	}
}

// TestPortOwnerFindsThisProcess listens and expects to be found, by pid.
func TestPortOwnerFindsThisProcess(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	p, err := portOwner("/proc", l.Addr().(*net.TCPAddr).Port)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != os.Getpid() {
		t.Errorf("owner pid %d, want %d", p.PID, os.Getpid())
	}
	if p.Hop3 {
		t.Errorf("the test binary was taken for hop3: %+v", p)
	}
}

// Apps running as hop3's user, or a root others can read, fail with a fix.
func TestIsolationAndStateModes(t *testing.T) {
	cases := []struct {
		name   string
		change func(cfg *Config, sys *System)
		check  string
		want   Verdict
		detail string
	}{
		{"daemon isolates", func(*Config, *System) {}, "isolation", OK, "own user"},
		{"daemon does not", func(cfg *Config, _ *System) {
			os.WriteFile(filepath.Join(cfg.Root, "run", "isolation"), []byte("off hop3 runs as uid 1000 without CAP_SETUID\n"), 0o600)
		}, "isolation", Fail, "without CAP_SETUID"},
		{"not running, turned off", func(cfg *Config, sys *System) {
			sys.Answers = func(context.Context, string) bool { return false }
			cfg.Isolation = "off"
		}, "isolation", Fail, "HOP3_ISOLATION=off"},
		{"not running, no right to switch", func(cfg *Config, sys *System) {
			sys.Answers = func(context.Context, string) bool { return false }
			sys.CanSwitch = func() error { return errors.New("hop3 runs as uid 1000 without CAP_SETUID") }
		}, "isolation", Fail, "uid 1000"},
		{"modes closed", func(*Config, *System) {}, "state-root", OK, "nothing readable"},
		{"root world-readable", func(cfg *Config, _ *System) { os.Chmod(cfg.Root, 0o755) }, "state-root", Fail, "(0755)"},
		{"database readable", func(cfg *Config, _ *System) { os.Chmod(filepath.Join(cfg.Root, "hop3.db"), 0o644) }, "state-root", Fail, "hop3.db (0644)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, sys := healthy(t)
			c.change(&cfg, &sys)
			r := find(t, Run(context.Background(), cfg, sys), c.check)
			if r.Verdict != c.want || !strings.Contains(r.Detail, c.detail) {
				t.Fatalf("%s: %s %q, want %s containing %q", c.check, r.Verdict, r.Detail, c.want, c.detail)
			}
			if r.Verdict == Fail && r.Fix == "" {
				t.Errorf("a failed check without a fix")
			}
		})
	}
}
