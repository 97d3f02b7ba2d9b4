package buildpacks

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A build sees an allow-list of hop3's environment, never the rest.
func TestBuildEnvIsClean(t *testing.T) {
	t.Setenv("HOP3_SECRET_CANARY", "leak")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "leak")
	t.Setenv("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
	dir := t.TempDir()
	cache := filepath.Join(dir, "cache")
	b := newBuilder(Spec{Dir: dir, CacheDir: cache, TempDir: "/tmp/app-tmp", Env: map[string]string{"APP_SETTING": "1"}}, dir)
	for k, v := range b.env {
		if strings.Contains(v, "leak") {
			t.Errorf("build sees %s=%s", k, v)
		}
	}
	for k, want := range map[string]string{
		"HOME": filepath.Join(cache, "home"), "TMPDIR": "/tmp/app-tmp", "APP_SETTING": "1",
		"SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt", "PATH": os.Getenv("PATH"),
	} {
		if b.env[k] != want {
			t.Errorf("%s = %q, want %q", k, b.env[k], want)
		}
	}
}

// Built as an app's user, a tool runs as that user, and PATH keeps only
// the directories the user can search.
func TestBuildAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	u := &syscall.Credential{Uid: 62911, Gid: 62911, Groups: []uint32{}}
	closed, err := os.MkdirTemp("", "closed")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(closed)
	os.Chmod(closed, 0o700)
	if got := reachablePath(closed+":/usr/bin:/bin", u); got != "/usr/bin:/bin" {
		t.Errorf("reachablePath = %q", got)
	}
	var out bytes.Buffer
	err = runCommand(context.Background(), command{label: "id", argv: []string{"/usr/bin/id", "-u"}, as: u}, &out)
	if err != nil || strings.TrimSpace(out.String()) != "62911" {
		t.Fatalf("id -u as the app: %q %v", out.String(), err)
	}
}
