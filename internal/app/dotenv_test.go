package app

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeDotenv(t testing.TB, content string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readRepoEnv reads dir's ENV and .env and expands ENV against base, as a
// deploy does for its processes.
func readRepoEnv(dir string, base map[string]string) (map[string]string, error) {
	files, err := readRepoEnvFiles(dir)
	if err != nil {
		return nil, err
	}
	return files.vars(base)
}

// readDotenv is readRepoEnv without a base, as a deploy does for its build.
func readDotenv(dir string) (map[string]string, error) { return readRepoEnv(dir, nil) }

func TestReadDotenv(t *testing.T) {
	good := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"A=1\nB=two words\n", map[string]string{"A": "1", "B": "two words"}},
		{"# comment\nexport A=\"x y\"\r\nB='$A'\n", map[string]string{"A": "x y", "B": "$A"}},
		{"A=1\nB=${A}2\n", map[string]string{"A": "1", "B": "12"}},
		// Not expanded against hop3's own environment.
		{"H=$HOME\n", map[string]string{"H": ""}},
		{"a.b=1\n", map[string]string{"a.b": "1"}},
	}
	for _, tc := range good {
		env, err := readDotenv(writeDotenv(t, tc.in))
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if len(env) != len(tc.want) {
			t.Errorf("%q = %q, want %q", tc.in, env, tc.want)
		}
		for k, v := range tc.want {
			if env[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.in, k, env[k], v)
			}
		}
	}

	bad := []struct{ in, want string }{
		{"A=1\nMY-VAR=2\nX=3\n", `.env: line 2: unexpected character "-" in variable name`},
		{"A=1\r\n\r\nB C D\n", ".env: line 3: unexpected character"},
		{"A=\"unterminated\nB=2\n", ".env: unterminated quoted value"},
		{"=x\n", `.env: an entry has no name (value "x")`},
		{"A=1\nDEBUG", `.env: an entry has no name (value "DEBUG")`},
		{"A='x'y", `.env: an entry has no name (value "y")`},
		{"A B=1\n", `.env: invalid name "A B"`},
		{"A=a\x00b\n", `.env: "A": a value may not contain a NUL byte`},
		{"A=1\n" + strings.Repeat("#", maxDotenvSize), ".env: larger than 1024 KiB"},
		{"X=1\n" + strings.Repeat("Y", 5000) + "-\n", ".env: line 2: unexpected character"},
	}
	for _, tc := range bad {
		_, err := readDotenv(writeDotenv(t, tc.in))
		if err == nil {
			t.Errorf("%.40q: accepted", tc.in)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tc.want) {
			t.Errorf("%.40q: error %q, want it to start with %q", tc.in, msg, tc.want)
		}
		if strings.ContainsAny(msg, "\r\n") || len(msg) > 200 {
			t.Errorf("%.40q: error is not one short line: %q", tc.in, msg)
		}
	}
}

// FuzzReadDotenv feeds .env content to the parser a deploy reads it with:
// it must not panic, must fail with one short line, and what it accepts
// must be usable as a process environment.
func FuzzReadDotenv(f *testing.F) {
	for _, s := range []string{
		"A=1\n", "export A=\"x\\ny\"\n", "A='x'y", "=x", "DEBUG", "A B=1", "A=a\x00b",
		"A=\"unterminated\nB=2", "MY-VAR=1", "K: v", "A=${B}\nB=$A", "# c\n\n\r\nA=1 # c\n", "é=1",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		env, err := parseDotenvBytes(content)
		if err != nil {
			// readDotenv prefixes ".env: ".
			if msg := err.Error(); msg == "" || strings.ContainsAny(msg, "\r\n") || len(msg) > 240 {
				t.Fatalf("error %q is not one short line", msg)
			}
			return
		}
		for k, v := range env {
			if k == "" || strings.ContainsAny(k, "= \t\r\n\x00") {
				t.Fatalf("accepted the name %q", k)
			}
			if strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("accepted a NUL byte in %s", k)
			}
		}
	})
}

// The repository's ENV (piku's file) is read as piku reads it, expanded
// against hop3's values of piku's variables; .env wins over it.
func TestReadRepoEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ENV", "# piku settings\nUPLOADS = $DATA_ROOT/up\nNGINX_SERVER_NAME=a.example.com\nQUOTED=\"kept\"\nBOTH=from ENV\n")
	base := map[string]string{"DATA_ROOT": "/srv/data/shop"}
	env, err := readRepoEnv(dir, base)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"UPLOADS": "/srv/data/shop/up", "NGINX_SERVER_NAME": "a.example.com", "QUOTED": `"kept"`, "BOTH": "from ENV"}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("ENV alone:\n got %v\nwant %v", env, want)
	}
	if len(base) != 1 {
		t.Errorf("the base environment was changed: %v", base)
	}
	write(".env", "BOTH=from .env\n")
	if env, err = readRepoEnv(dir, base); err != nil || env["BOTH"] != "from .env" || env["UPLOADS"] != "/srv/data/shop/up" {
		t.Errorf("ENV and .env: %v, %v", env, err)
	}
	// Without a base (the build's view), piku's variables stay as written.
	if env, err = readDotenv(dir); err != nil || env["UPLOADS"] != "$DATA_ROOT/up" {
		t.Errorf("readDotenv: %v, %v", env, err)
	}
	for _, bad := range []string{"A=1\nnot a setting\n", "=x\n", "A B=1\n", "A=\x00\n"} {
		write("ENV", bad)
		if _, err := readRepoEnv(dir, base); err == nil || !strings.HasPrefix(err.Error(), "ENV: ") {
			t.Errorf("ENV %q: %v", bad, err)
		}
	}
	// The release may be the app's to write: a link out of it is not read.
	os.Remove(filepath.Join(dir, "ENV"))
	os.Symlink("/etc/hostname", filepath.Join(dir, "ENV"))
	if _, err := readRepoEnv(dir, base); err == nil || !strings.Contains(err.Error(), "ENV") {
		t.Errorf("ENV linked out of the release: %v", err)
	}
	// A directory named ENV is not piku's file.
	os.Remove(filepath.Join(dir, "ENV"))
	os.Mkdir(filepath.Join(dir, "ENV"), 0o755)
	if env, err := readRepoEnv(dir, base); err != nil || len(env) != 1 {
		t.Errorf("ENV directory: %v, %v", env, err)
	}
}
