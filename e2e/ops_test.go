package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOpsInstall runs scripts/install.sh into a throwaway prefix: first as
// a dry run, which must change nothing, then for real, then again, which
// must find everything in place. System changes (packages, user, owners,
// services) are printed, never made.
func TestOpsInstall(t *testing.T) {
	t.Parallel()
	prefix := t.TempDir()

	out, code := opsScript(t, "scripts/install.sh", "--root", prefix, "--dry-run", "--bin", hop3Bin,
		"--caddy-bin", tool(t, "caddy"), "--uv-bin", tool(t, "uv"))
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, out)
	}
	for _, want := range []string{
		"Dry run: nothing is changed",
		"would run: useradd --system --user-group --home-dir /var/lib/hop3 --shell /usr/sbin/nologin",
		"would run: chown root:root /var/lib/hop3",
		"would run: install -m 0755 " + hop3Bin + " " + prefix + "/usr/local/bin/hop3",
		"would write /etc/systemd/system/hop3.service (mode 0644):",
		"| CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_KILL CAP_NET_BIND_SERVICE",
		"would write /etc/hop3/hop3.env (mode 0640):",
		"would run: systemctl daemon-reload",
		"would run: systemctl enable hop3.service",
		"ufw allow 80,443,2222/tcp",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if entries, _ := os.ReadDir(prefix); len(entries) != 0 {
		t.Fatalf("the dry run wrote into the prefix: %v", entries)
	}

	out, code = opsScript(t, "scripts/install.sh", "--root", prefix, "--bin", hop3Bin,
		"--caddy-bin", tool(t, "caddy"), "--uv-bin", tool(t, "uv"))
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	for _, want := range []string{"would run: useradd", "would run: systemctl enable hop3.service", "would run: systemctl restart hop3.service",
		"wrote /etc/systemd/system/hop3.service", "wrote /etc/hop3/hop3.env"} {
		if !strings.Contains(out, want) {
			t.Errorf("install output lacks %q:\n%s", want, out)
		}
	}
	unit, err := os.ReadFile(filepath.Join(prefix, "etc/systemd/system/hop3.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"User=root", "NoNewPrivileges=yes", "RestrictSUIDSGID=yes",
		"ExecStart=/usr/local/bin/hop3 serve",
		"EnvironmentFile=-/etc/hop3/hop3.env",
		"Environment=HOP3_ROOT=/var/lib/hop3",
		"Environment=HOP3_SSH_ADDR=:2222",
		"Environment=HOP3_HTTP_ADDR=:80",
		"Environment=HOP3_CADDY_BIN=/opt/hop3/tools/bin/caddy",
		"CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_KILL CAP_NET_BIND_SERVICE",
		"Restart=on-failure",
		"KillMode=mixed",
		"WantedBy=multi-user.target",
	} {
		if !strings.Contains("\n"+string(unit)+"\n", "\n"+line+"\n") {
			t.Errorf("unit lacks the line %q:\n%s", line, unit)
		}
	}
	if strings.Contains(string(unit), prefix) {
		t.Errorf("the unit names the prefix; it must name the installed paths:\n%s", unit)
	}
	env, err := os.ReadFile(filepath.Join(prefix, "etc/hop3/hop3.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"HOP3_ROOT=/var/lib/hop3", "HOP3_SSH_ADDR=:2222", "HOP3_UV=/opt/hop3/tools/bin/uv"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("hop3.env lacks %q:\n%s", line, env)
		}
	}
	if fi, err := os.Stat(filepath.Join(prefix, "etc/hop3/hop3.env")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("hop3.env mode: %v %v", fi.Mode(), err)
	}
	// The installed binaries run.
	if v, code := opsRun(t, nil, "version"); code != 0 {
		t.Fatal(v)
	}
	for _, c := range [][]string{{"usr/local/bin/hop3", "version"}, {"opt/hop3/tools/bin/caddy", "version"}, {"opt/hop3/tools/bin/uv", "--version"}} {
		if fi, err := os.Stat(filepath.Join(prefix, c[0])); err != nil || fi.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not an installed executable: %v", c[0], err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(prefix, "usr/local/bin/hop3")); err != nil || len(b) < 1<<20 {
		t.Errorf("usr/local/bin/hop3: %d bytes, %v", len(b), err)
	}
	for d, want := range map[string]os.FileMode{"var/lib/hop3": 0o711, "etc/hop3": 0o750} {
		if fi, err := os.Stat(filepath.Join(prefix, d)); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want a %#o directory", d, fi.Mode(), err, want)
		}
	}

	// Again, with a domain and another SSH port: the settings are written
	// by hop3 setup and the unit follows the port; nothing else changes.
	out, code = opsScript(t, "scripts/install.sh", "--root", prefix, "--bin", hop3Bin,
		"--caddy-bin", tool(t, "caddy"), "--uv-bin", tool(t, "uv"),
		"--ssh-port", "2200", "--domain", "apps.example.com", "--acme-email", "ops@example.com")
	if code != 0 {
		t.Fatalf("second install: exit %d\n%s", code, out)
	}
	for _, want := range []string{"/etc/hop3/hop3.env exists: kept", "Wrote " + prefix + "/etc/hop3/hop3.env", "would run: systemctl restart hop3.service"} {
		if !strings.Contains(out, want) {
			t.Errorf("second install output lacks %q:\n%s", want, out)
		}
	}
	env, _ = os.ReadFile(filepath.Join(prefix, "etc/hop3/hop3.env"))
	for _, line := range []string{"HOP3_ROOT=/var/lib/hop3", "HOP3_DOMAIN=apps.example.com", "HOP3_TLS=acme", "HOP3_ACME_EMAIL=ops@example.com", "HOP3_SSH_ADDR=:2200"} {
		if !strings.Contains(string(env), line+"\n") {
			t.Errorf("hop3.env lacks %q:\n%s", line, env)
		}
	}
	unit, _ = os.ReadFile(filepath.Join(prefix, "etc/systemd/system/hop3.service"))
	if !strings.Contains(string(unit), "Environment=HOP3_SSH_ADDR=:2200\n") {
		t.Errorf("the unit did not follow the SSH port:\n%s", unit)
	}

	// A third run with the same options has nothing to write.
	out, code = opsScript(t, "scripts/install.sh", "--root", prefix, "--bin", hop3Bin,
		"--caddy-bin", tool(t, "caddy"), "--uv-bin", tool(t, "uv"), "--ssh-port", "2200")
	if code != 0 {
		t.Fatalf("third install: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "/etc/systemd/system/hop3.service is up to date") || !strings.Contains(out, "/usr/local/bin/hop3 is up to date") || strings.Contains(out, "would run: systemctl restart") {
		t.Errorf("an unchanged install restarts or rewrites the unit:\n%s", out)
	}

	// Bad options are refused before anything happens.
	if out, code := opsScript(t, "scripts/install.sh", "--root", t.TempDir(), "--ssh-port", "http"); code != 2 {
		t.Errorf("--ssh-port http: exit %d\n%s", code, out)
	}
	if out, code := opsScript(t, "scripts/install.sh", "--root", t.TempDir(), "--bin", hop3Bin, "--caddy-bin", "/bin/true"); code == 0 || !strings.Contains(out, "needs 2.7 or newer") {
		t.Errorf("a Caddy without a version was accepted: exit %d\n%s", code, out)
	}
}

// TestOpsSetup checks that hop3 setup writes the env file the unit reads,
// keeps what it is not told to change, refuses bad settings, and that the
// hop3 CLI reads the file for settings the environment does not give.
func TestOpsSetup(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "hop3.env")
	out, code := opsRun(t, nil, "setup", "--config-dir", dir, "--domain", "Apps.Example.COM.", "--acme-email", "ops@example.com")
	if code != 0 {
		t.Fatalf("setup: exit %d\n%s", code, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"HOP3_ROOT=/var/lib/hop3", "HOP3_DOMAIN=apps.example.com", "HOP3_TLS=acme", "HOP3_ACME_EMAIL=ops@example.com",
		"HOP3_SSH_ADDR=:2222", "HOP3_HTTP_ADDR=:80", "HOP3_HTTPS_ADDR=:443", "HOP3_CADDY_BIN=/opt/hop3/tools/bin/caddy"} {
		if !strings.Contains(string(b), "\n"+line+"\n") {
			t.Errorf("hop3.env lacks %q:\n%s", line, b)
		}
	}
	if strings.Contains(string(b), "HOP3_METRICS_ADDR") {
		t.Errorf("an unset metrics address was written:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode())
	}
	if !strings.Contains(out, "*.apps.example.com") || !strings.Contains(out, "80, 443, 2222") {
		t.Errorf("setup does not tell the DNS records and ports to open:\n%s", out)
	}

	// A setting added by hand survives; settings not given keep their value.
	os.WriteFile(path, append(b, []byte("HOP3_LOG_LEVEL=debug\n")...), 0o640)
	out, code = opsRun(t, nil, "setup", "--config-dir", dir, "--ssh-addr", ":22", "--metrics-addr", "127.0.0.1:9323")
	if code != 0 {
		t.Fatalf("second setup: exit %d\n%s", code, out)
	}
	b, _ = os.ReadFile(path)
	for _, line := range []string{"HOP3_DOMAIN=apps.example.com", "HOP3_ACME_EMAIL=ops@example.com", "HOP3_SSH_ADDR=:22", "HOP3_LOG_LEVEL=debug", "HOP3_METRICS_ADDR=127.0.0.1:9323"} {
		if !strings.Contains(string(b), "\n"+line+"\n") {
			t.Errorf("after the second setup, hop3.env lacks %q:\n%s", line, b)
		}
	}
	if strings.Count(string(b), "HOP3_SSH_ADDR=") != 1 {
		t.Errorf("HOP3_SSH_ADDR written twice:\n%s", b)
	}

	for _, bad := range [][]string{
		{"--domain", "not a domain"},
		{"--domain", "localhost", "--tls", "acme"},
		{"--domain", "example.com", "--acme-email", "nobody"},
		{"--domain", "example.com", "--ssh-addr", "2222"},
		{"--domain", "example.com", "--tls", "maybe"},
		{"--domain", "example.com", "--root", "relative/dir"},
	} {
		bdir := t.TempDir()
		out, code := opsRun(t, nil, append([]string{"setup", "--config-dir", bdir}, bad...)...)
		if code != 2 {
			t.Errorf("setup %v: exit %d, want 2\n%s", bad, code, out)
		}
		if _, err := os.Stat(filepath.Join(bdir, "hop3.env")); err == nil {
			t.Errorf("setup %v wrote a file", bad)
		}
	}
	if out, code := opsRun(t, nil, "setup", "--config-dir", t.TempDir()); code != 2 || !strings.Contains(out, "--domain is required") {
		t.Errorf("setup without a domain: exit %d\n%s", code, out)
	}

	// The CLI takes HOP3_ROOT from the file when the environment has none.
	if _, set := os.LookupEnv("HOP3_ROOT"); !set {
		root := filepath.Join(t.TempDir(), "state")
		cfg := filepath.Join(t.TempDir(), "hop3.env")
		os.WriteFile(cfg, []byte("HOP3_ROOT="+root+"\n"), 0o640)
		out, code := opsRun(t, []string{"HOP3_CONFIG=" + cfg}, "apps")
		if code == 0 || !strings.Contains(out, "not running on "+root) {
			t.Errorf("hop3 apps with HOP3_ROOT only in %s: exit %d\n%s", cfg, code, out)
		}
	}
}

// TestOpsDoctor runs hop3 doctor against a running hop3 (healthy) and
// against broken setups: Caddy missing, a corrupt database.
func TestOpsDoctor(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	base := []string{"doctor", "--root", root, "--http-addr", d.httpAddr, "--ssh-addr", "127.0.0.1:" + d.sshPort,
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off"}

	out, code := opsRun(t, nil, base...)
	lines := opsDoctorLines(t, out)
	if code != 0 {
		t.Errorf("healthy: exit %d\n%s", code, out)
	}
	want := map[string]string{"caddy": "ok", "caddy-admin": "ok", "git": "ok", "uv": "ok", "port-http": "ok", "port-ssh": "ok",
		"dns": "skip", "sqlite": "ok", "listeners": "ok"}
	for check, verdict := range want {
		if lines[check][0] != verdict {
			t.Errorf("healthy: %s = %q, want %s\n%s", check, lines[check], verdict, out)
		}
	}
	// hop3 binds the edge's socket and hands it to Caddy: both hold it.
	if !strings.Contains(lines["port-http"][1], "held by hop3 (") || !strings.Contains(lines["port-ssh"][1], "held by hop3 (hop3") {
		t.Errorf("the ports are not recognised as hop3's:\n%s", out)
	}
	if lines["dns"][1] != "skipped: domain is localhost" {
		t.Errorf("dns: %q", lines["dns"][1])
	}
	if _, ok := lines["port-https"]; ok {
		t.Errorf("HTTPS checked although TLS is off:\n%s", out)
	}
	for _, check := range []string{"python", "venv/pip", "node", "go", "disk", "clock", "toolchain:python3", "toolchain:ruby"} {
		if _, ok := lines[check]; !ok {
			t.Errorf("no %s line:\n%s", check, out)
		}
	}

	// Caddy missing: the caddy check fails and so does the command.
	out, code = opsRun(t, nil, append(base, "--caddy-bin", filepath.Join(t.TempDir(), "caddy"))...)
	lines = opsDoctorLines(t, out)
	if code != 1 || lines["caddy"][0] != "fail" || !strings.Contains(lines["caddy"][1], "fix: ") {
		t.Errorf("Caddy missing: exit %d, caddy = %q\n%s", code, lines["caddy"], out)
	}
	if !strings.Contains(out, "hop3: 1 check(s) failed") {
		t.Errorf("no summary of failures:\n%s", out)
	}

	// A corrupt database under another root (hop3 is not running there).
	bad := shortTemp(t)
	os.WriteFile(filepath.Join(bad, "hop3.db"), []byte(strings.Repeat("this is not SQLite ", 300)), 0o600)
	out, code = opsRun(t, nil, "doctor", "--root", bad, "--http-addr", "127.0.0.1:0", "--ssh-addr", "127.0.0.1:0",
		"--caddy-bin", tool(t, "caddy"), "--uv", tool(t, "uv"), "--domain", "localhost", "--tls", "off")
	lines = opsDoctorLines(t, out)
	if code != 1 || lines["sqlite"][0] != "fail" || !strings.Contains(lines["sqlite"][1], "not a database") {
		t.Errorf("corrupt database: exit %d, sqlite = %q\n%s", code, lines["sqlite"], out)
	}
	if lines["caddy-admin"][0] != "warn" || !strings.Contains(lines["caddy-admin"][1], "not running") {
		t.Errorf("caddy-admin without a daemon: %q", lines["caddy-admin"])
	}
}

// TestOpsMetrics scrapes the metrics endpoint while an app deploys and
// while one of its workers crashes (it exits at once after its first run,
// so the supervisor gives it up), and checks that the counters move: deploys by outcome and
// their duration, builds and cache hits, processes by state, restarts and
// crashes, CPU and memory; Caddy's metrics are served too.
func TestOpsMetrics(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	// Restart backoff runs 60 times faster: a crash takes under a second.
	d, maddr := startOpsDaemon(t, root, []string{"HOP3_TEST_CLOCK_SCALE=60"})
	alice := newUser(t, "alice")
	d.register(alice)
	url := "http://" + maddr + "/metrics"

	m := opsScrape(t, url)
	opsWant(t, m, "hop3_up", 1)
	if m["hop3_goroutines"] < 5 || m["hop3_resident_memory_bytes"] < 1<<20 {
		t.Errorf("hop3's own health: goroutines %v, rss %v", m["hop3_goroutines"], m["hop3_resident_memory_bytes"])
	}
	for k := range m {
		if strings.HasPrefix(k, "hop3_deploys_total") {
			t.Errorf("a deploy counted before any push: %s", k)
		}
	}

	// Scrape continuously during the first deploy.
	var scrapes, scrapeErrs atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			body, err := opsFetch(url)
			if err == nil {
				_, err = opsParse(body)
			}
			if err != nil {
				scrapeErrs.Add(1)
				t.Logf("scrape during deploy: %v", err)
				continue
			}
			scrapes.Add(1)
		}
	}()
	files := wsgiApp("metered v1")
	// The worker's first run outlives its settle time (so the deploy
	// succeeds); every later run exits at once.
	files["Procfile"] = "wsgi: app:app\nworker: test -e \"$DATA_DIR/ran\" || { touch \"$DATA_DIR/ran\"; sleep 2; }; echo giving up; exit 3\n"
	files[".env"] = "SETTLE_TIME=1\n"
	w := newWorkdir(t, files)
	w.mustPush(d, alice, "metered")
	close(stop)
	wg.Wait()
	if scrapes.Load() < 3 || scrapeErrs.Load() > 0 {
		t.Errorf("during the deploy: %d scrapes, %d failed", scrapes.Load(), scrapeErrs.Load())
	}
	wantBody(t, d, "metered.localhost", "/", "metered v1")

	m = opsScrape(t, url)
	opsWant(t, m, `hop3_deploys_total{app="metered",outcome="succeeded"}`, 1)
	opsWant(t, m, `hop3_deploy_duration_seconds_count{app="metered"}`, 1)
	opsWant(t, m, `hop3_deploy_duration_seconds_bucket{app="metered",le="+Inf"}`, 1)
	if s := m[`hop3_deploy_duration_seconds_sum{app="metered"}`]; s <= 0 || s > 600 {
		t.Errorf("deploy duration sum = %v", s)
	}
	opsWant(t, m, `hop3_builds_total{app="metered"}`, 1)
	opsWant(t, m, `hop3_processes{app="metered",kind="wsgi",state="running"}`, 1)
	opsWant(t, m, `hop3_app_host_info{app="metered",host="metered.localhost"}`, 1)
	if m[`hop3_process_resident_memory_bytes{app="metered",kind="wsgi"}`] < 1<<20 {
		t.Errorf("Granian's memory: %v", m[`hop3_process_resident_memory_bytes{app="metered",kind="wsgi"}`])
	}
	if m[`hop3_process_cpu_seconds_total{app="metered",kind="wsgi"}`] <= 0 {
		t.Errorf("Granian's CPU time: %v", m[`hop3_process_cpu_seconds_total{app="metered",kind="wsgi"}`])
	}

	// The worker keeps exiting until it is declared crashed. (One scrape
	// reads the processes before the counters: it may see the crash in
	// one and not yet in the other.)
	eventually(t, 60*time.Second, func() error {
		m = opsScrape(t, url)
		crashes := m[`hop3_process_crashes_total{app="metered",kind="worker"}`]
		crashed := m[`hop3_processes{app="metered",kind="worker",state="crashed"}`]
		if crashes != 1 || crashed != 1 {
			return fmt.Errorf("crashes = %v, crashed processes = %v", crashes, crashed)
		}
		return nil
	})
	opsWant(t, m, `hop3_processes{app="metered",kind="worker",state="running"}`, 0)
	if r := m[`hop3_process_restarts_total{app="metered",kind="worker"}`]; r < 3 {
		t.Errorf("worker restarts = %v, want at least 3 before the crash", r)
	}
	opsWant(t, m, `hop3_processes{app="metered",kind="wsgi",state="running"}`, 1)

	// The crash is in the event log, with why.
	out, err := d.hop3("", "events", "metered")
	if err != nil {
		t.Fatalf("events: %v\n%s", err, out)
	}
	if !strings.Contains(out, "crash") || !strings.Contains(out, "worker.1 crashed after") || !strings.Contains(out, "exit status 3") {
		t.Errorf("events lack the crash:\n%s", out)
	}

	// Key changes made on the server are events too.
	out, err = d.hop3("", "events")
	if err != nil || !strings.Contains(out, "added key alice (admin)") {
		t.Errorf("events lack the key added with hop3 keys add: %v\n%s", err, out)
	}

	// A second deploy reuses the virtualenv; a broken one counts as failed.
	// (The crashing worker would fail it: the fix goes with it.)
	w.commit("v2", map[string]string{"app.py": strings.Replace(files["app.py"], "metered v1", "metered v2", 1),
		"Procfile": "wsgi: app:app\nworker: exec sleep 1000\n"})
	w.mustPush(d, alice, "metered")
	w.commit("broken", map[string]string{"Procfile": "wsgi app:app\n"})
	if out, err := w.push(d, alice, "metered"); err == nil {
		t.Fatalf("a push with a broken Procfile deployed:\n%s", out)
	}
	m = opsScrape(t, url)
	opsWant(t, m, `hop3_deploys_total{app="metered",outcome="succeeded"}`, 2)
	opsWant(t, m, `hop3_deploys_total{app="metered",outcome="failed"}`, 1)
	opsWant(t, m, `hop3_deploy_duration_seconds_count{app="metered"}`, 3)
	opsWant(t, m, `hop3_builds_total{app="metered"}`, 2)
	opsWant(t, m, `hop3_build_cache_hits_total{app="metered",cache="python-venv"}`, 1)

	// Caddy's own metrics, from its admin socket.
	body, err := opsFetch("http://" + maddr + "/caddy/metrics")
	if err != nil {
		t.Fatal(err)
	}
	cm, err := opsParse(body)
	if err != nil {
		t.Fatalf("/caddy/metrics: %v", err)
	}
	found := false
	for k := range cm {
		if strings.HasPrefix(k, "caddy_") {
			found = true
		}
	}
	if !found {
		t.Errorf("/caddy/metrics has no caddy_ metric:\n%.2000s", body)
	}
	// With metrics on, Caddy counts the app's requests by host.
	if !strings.Contains(body, `caddy_http_requests_total{`) || !strings.Contains(body, `host="metered.localhost"`) {
		t.Errorf("/caddy/metrics has no per-host request counts for metered.localhost:\n%.3000s", body)
	}
}
