package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"hop3/internal/hostclaim"
	"hop3/internal/router"
)

// systemConfigDir holds hop3.env, the settings of the installed service:
// its systemd unit reads it as an EnvironmentFile, and the hop3 CLI reads
// it too, so `hop3 doctor` and `hop3 COMMAND` see the service's root.
const systemConfigDir = "/etc/hop3"

// configFile is the env file of HOP3_* settings: $HOP3_CONFIG, else
// /etc/hop3/hop3.env.
func configFile() string {
	if v := os.Getenv("HOP3_CONFIG"); v != "" {
		return v
	}
	return filepath.Join(systemConfigDir, "hop3.env")
}

// configFileValue reads one variable from the env file, if the file exists
// and sets it. The file is small and read rarely: it is not cached.
func configFileValue(key string) (string, bool) {
	b, err := os.ReadFile(configFile())
	if err != nil {
		return "", false
	}
	for _, kv := range parseEnvFile(b) {
		if kv[0] == key {
			return kv[1], true
		}
	}
	return "", false
}

// parseEnvFile reads KEY=VALUE lines as systemd's EnvironmentFile does for
// the values hop3 writes: blank lines and # comments are skipped, a value
// in double quotes has \" and \\ escapes.
func parseEnvFile(b []byte) [][2]string {
	var out [][2]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
		} else if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
			v = v[1 : len(v)-1]
		}
		out = append(out, [2]string{k, v})
	}
	return out
}

// quoteEnv writes a value so that systemd reads it back unchanged.
func quoteEnv(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\"'\\$#;`") {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

var emailRe = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// setupKeys are the settings `hop3 setup` manages, in the order written.
var setupKeys = []string{"HOP3_ROOT", "HOP3_DOMAIN", "HOP3_TLS", "HOP3_ACME_EMAIL", "HOP3_SSH_ADDR",
	"HOP3_HTTP_ADDR", "HOP3_HTTPS_ADDR", "HOP3_CADDY_BIN", "HOP3_UV", "HOP3_METRICS_ADDR"}

// setup writes the env file the systemd unit reads. Settings not given
// keep their value from an existing file, else take the production default.
func setup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("setup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config-dir", systemConfigDir, "where hop3.env is written")
	vals := map[string]*string{
		"HOP3_ROOT":         fs.String("root", "/var/lib/hop3", "state directory"),
		"HOP3_DOMAIN":       fs.String("domain", "", "apps answer at <app>.<domain> (required)"),
		"HOP3_TLS":          fs.String("tls", "acme", "acme, internal or off"),
		"HOP3_ACME_EMAIL":   fs.String("acme-email", "", "contact address for Let's Encrypt"),
		"HOP3_SSH_ADDR":     fs.String("ssh-addr", ":2222", "SSH address for git push (:22 once the system sshd has moved)"),
		"HOP3_HTTP_ADDR":    fs.String("http-addr", ":80", "HTTP address"),
		"HOP3_HTTPS_ADDR":   fs.String("https-addr", ":443", "HTTPS address"),
		"HOP3_CADDY_BIN":    fs.String("caddy-bin", "/opt/hop3/tools/bin/caddy", "Caddy binary"),
		"HOP3_UV":           fs.String("uv", "/opt/hop3/tools/bin/uv", "uv binary"),
		"HOP3_METRICS_ADDR": fs.String("metrics-addr", "", "Prometheus metrics address, e.g. 127.0.0.1:9323; empty: off"),
	}
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hop3 setup --domain example.com [--acme-email ops@example.com] [--tls acme|internal|off] [--ssh-addr :2222] [--config-dir /etc/hop3]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("setup takes no arguments (got %q)", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// Each key's flag is its name without HOP3_, lowercase, '-' for '_'.
	flagOf := func(key string) string {
		return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(key, "HOP3_")), "_", "-")
	}

	path := filepath.Join(*dir, "hop3.env")
	var existing [][2]string
	if b, err := os.ReadFile(path); err == nil {
		existing = parseEnvFile(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", path, err)
	}
	old := map[string]string{}
	for _, kv := range existing {
		old[kv[0]] = kv[1]
	}
	final := map[string]string{}
	for _, k := range setupKeys {
		v := *vals[k]
		if ov, ok := old[k]; ok && !given[flagOf(k)] {
			v = ov
		}
		final[k] = strings.TrimSpace(v)
	}
	if err := checkSetup(final); err != nil {
		return usageError("%v", err)
	}
	if final["HOP3_TLS"] == "acme" && final["HOP3_ACME_EMAIL"] == "" {
		fmt.Fprintln(stderr, " !     no --acme-email: certificates are still issued, but nobody is told when renewal fails")
	}

	var b strings.Builder
	b.WriteString("# hop3's settings, read by its systemd unit (EnvironmentFile) and by the hop3 CLI.\n")
	b.WriteString("# Written by `hop3 setup`; run it again, or edit this file, then: systemctl restart hop3\n")
	for _, k := range setupKeys {
		if final[k] == "" && (k == "HOP3_ACME_EMAIL" || k == "HOP3_METRICS_ADDR") {
			continue
		}
		fmt.Fprintf(&b, "%s=%s\n", k, quoteEnv(final[k]))
	}
	// Settings added by hand (HOP3_LOG_LEVEL, HOP3_MAX_PUSH_SIZE, ...) stay.
	for _, kv := range existing {
		if !slices.Contains(setupKeys, kv[0]) {
			fmt.Fprintf(&b, "%s=%s\n", kv[0], quoteEnv(kv[1]))
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", *dir, err)
	}
	if err := writeConfigFile(path, []byte(b.String())); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "-----> Wrote %s\n", path)
	for _, k := range setupKeys {
		if final[k] != "" {
			fmt.Fprintf(stdout, "       %s=%s\n", k, final[k])
		}
	}
	fmt.Fprintf(stdout, "-----> Next: point *.%s and %s at this server (DNS A/AAAA records), open ports %s, then:\n",
		final["HOP3_DOMAIN"], final["HOP3_DOMAIN"], portList(final))
	fmt.Fprintln(stdout, "       systemctl restart hop3 && hop3 doctor")
	return nil
}

func portList(v map[string]string) string {
	var ports []string
	for _, k := range []string{"HOP3_HTTP_ADDR", "HOP3_HTTPS_ADDR", "HOP3_SSH_ADDR"} {
		if k == "HOP3_HTTPS_ADDR" && v["HOP3_TLS"] == "off" {
			continue
		}
		if _, p, err := net.SplitHostPort(v[k]); err == nil {
			ports = append(ports, p)
		}
	}
	return strings.Join(ports, ", ")
}

func checkSetup(v map[string]string) error {
	d := strings.ToLower(strings.TrimSuffix(v["HOP3_DOMAIN"], "."))
	if d == "" {
		return errors.New("--domain is required, e.g. --domain example.com (apps answer at <app>.example.com)")
	}
	// Apps answer under the domain: it is one name, not a wildcard.
	if n, err := hostclaim.Normalize(d); err != nil || strings.HasPrefix(n, "*.") {
		return fmt.Errorf("--domain %q is not a host name", v["HOP3_DOMAIN"])
	}
	v["HOP3_DOMAIN"] = d
	if _, err := router.ParseTLSMode(v["HOP3_TLS"]); err != nil {
		return fmt.Errorf("--tls: %v", err)
	}
	if v["HOP3_TLS"] == "acme" && (d == "localhost" || strings.HasSuffix(d, ".localhost")) {
		return errors.New("--tls acme needs a public domain; use --tls internal or off for localhost")
	}
	if e := v["HOP3_ACME_EMAIL"]; e != "" && !emailRe.MatchString(e) {
		return fmt.Errorf("--acme-email %q is not an email address", e)
	}
	for _, k := range []string{"HOP3_SSH_ADDR", "HOP3_HTTP_ADDR", "HOP3_HTTPS_ADDR", "HOP3_METRICS_ADDR"} {
		if v[k] == "" && k == "HOP3_METRICS_ADDR" {
			continue
		}
		_, p, err := net.SplitHostPort(v[k])
		if n, perr := strconv.Atoi(p); err != nil || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--%s %q: use HOST:PORT or :PORT", strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "HOP3_")), "_", "-"), v[k])
		}
	}
	if !filepath.IsAbs(v["HOP3_ROOT"]) {
		return fmt.Errorf("--root %q must be an absolute path", v["HOP3_ROOT"])
	}
	for k, val := range v {
		if strings.ContainsAny(val, "\n\r\x00") {
			return fmt.Errorf("%s: a value may not hold a line break", k)
		}
	}
	return nil
}

// writeConfigFile replaces path atomically, readable by root and, when it
// exists, the hop3 group (the service's user); not by others, as the file
// may hold addresses and mail contacts.
func writeConfigFile(path string, data []byte) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o640); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o640); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if os.Geteuid() == 0 {
		if g, err := user.LookupGroup("hop3"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				os.Chown(tmp, 0, gid)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
