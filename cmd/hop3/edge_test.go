package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"hop3/internal/isolation"
	"hop3/internal/router"
)

func ownerOf(t *testing.T, path string) (int, int, os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid), fi.Mode() & (os.ModePerm | os.ModeSetgid)
}

// TestCaddyDirs lays out Caddy's directory for its own user over the state
// of a Caddy that ran as hop3's: the state becomes Caddy's without
// following a link out of it, hop3 keeps the directory it writes in, and
// StartCaddy's check accepts the result. With isolation off all is
// hop3's, 0700.
func TestCaddyDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("giving files to another user needs root")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "caddy")
	outside := filepath.Join(base, "outside")
	cert := filepath.Join(dir, "data", "caddy", "certificates", "x.crt")
	for _, f := range []string{outside, cert} {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "data", "link")); err != nil {
		t.Fatal(err)
	}
	iso := isolation.Policy{On: true, Base: 62000}
	if err := caddyDirs(iso, dir, true); err != nil {
		t.Fatal(err)
	}
	const c = 62000
	for _, tc := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{dir, 0, c, 0o750},
		{filepath.Join(dir, "data"), c, c, 0o700},
		{filepath.Join(dir, "config"), c, c, 0o700},
		{filepath.Join(dir, "admin"), c, c, 0o700},
		{cert, c, c, 0o600},
		{outside, 0, 0, 0o600},
	} {
		if uid, gid, mode := ownerOf(t, tc.path); uid != tc.uid || gid != tc.gid || mode != tc.mode {
			t.Errorf("%s: %d:%d %v, want %d:%d %v", tc.path, uid, gid, mode, tc.uid, tc.gid, tc.mode)
		}
	}
	off := filepath.Join(base, "off")
	if err := os.Mkdir(off, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := caddyDirs(isolation.Policy{Base: 62000}, off, true); err != nil {
		t.Fatal(err)
	}
	for _, d := range append([]string{off}, router.OwnDirs(off, true)...) {
		if uid, gid, mode := ownerOf(t, d); uid != 0 || gid != 0 || mode != 0o700 {
			t.Errorf("isolation off: %s is %d:%d %v, want hop3's 0700", d, uid, gid, mode)
		}
	}

	// A Caddy handed the admin socket hop3 holds has no admin directory.
	held := filepath.Join(base, "held")
	if err := caddyDirs(iso, held, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(held, "admin")); !os.IsNotExist(err) {
		t.Errorf("held admin socket: %s/admin made (%v)", held, err)
	}
	for _, d := range router.OwnDirs(held, false) {
		if uid, gid, mode := ownerOf(t, d); uid != c || gid != c || mode != 0o700 {
			t.Errorf("held admin socket: %s is %d:%d %v, want Caddy's 0700", d, uid, gid, mode)
		}
	}
}

func TestCaddyGoEnv(t *testing.T) {
	for _, c := range []struct {
		name  string
		env   map[string]string
		cores int
		want  string // joined with spaces; "" when refused
		err   string
	}{
		{"defaults on 2 cores", nil, 2, "GOMAXPROCS=1 GOGC=400", ""},
		{"defaults on 8 cores", nil, 8, "GOMAXPROCS=4 GOGC=400", ""},
		{"one core", nil, 1, "GOMAXPROCS=1 GOGC=400", ""},
		{"overrides", map[string]string{"HOP3_CADDY_GOMAXPROCS": "2", "HOP3_CADDY_GOGC": "100"}, 2, "GOMAXPROCS=2 GOGC=100", ""},
		{"GC off", map[string]string{"HOP3_CADDY_GOGC": "off"}, 2, "GOMAXPROCS=1 GOGC=off", ""},
		{"bad GOGC", map[string]string{"HOP3_CADDY_GOGC": "lots"}, 2, "", `HOP3_CADDY_GOGC="lots": want a percentage, 1 or more, or off`},
		{"zero GOGC", map[string]string{"HOP3_CADDY_GOGC": "0"}, 2, "", `HOP3_CADDY_GOGC="0"`},
		{"bad GOMAXPROCS", map[string]string{"HOP3_CADDY_GOMAXPROCS": "0"}, 2, "", `HOP3_CADDY_GOMAXPROCS="0": want a count of threads, 1 or more`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := caddyGoEnv(func(k string) string { return c.env[k] }, c.cores)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("caddyGoEnv: %v, %v; want error %q", got, err, c.err)
				}
				return
			}
			if err != nil || strings.Join(got, " ") != c.want {
				t.Fatalf("caddyGoEnv: %q, %v; want %q", got, err, c.want)
			}
		})
	}
}

// TestServeCaddyGoEnv: a bad HOP3_CADDY_GOGC stops serve before it starts
// anything (its root is not even made), with a usage error.
func TestServeCaddyGoEnv(t *testing.T) {
	t.Setenv("HOP3_CADDY_GOGC", "lots")
	root := filepath.Join(t.TempDir(), "root")
	var stdout, stderr bytes.Buffer
	err := serve(context.Background(), []string{"--root", root}, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, `HOP3_CADDY_GOGC="lots"`) {
		t.Fatalf("serve with HOP3_CADDY_GOGC=lots = %v, want a usage error naming it", err)
	}
	if _, err := os.Stat(root); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve made its root before refusing: %v", err)
	}
}
