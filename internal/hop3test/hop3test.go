// Package hop3test is the harness that drives hop3 the way its users do:
// the real hop3 binary built once, started on loopback with a root, Caddy
// and uv; users with real SSH keys; git work trees pushed with the real git
// and ssh clients; HTTP requests through Caddy, alone or as load.
//
// The end-to-end tests, the router's integration tests and the benchmarks
// share it. Functions that take a testing.TB fail or skip the test; the
// others return an error, for callers (the benchmarks) that have no test.
package hop3test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// RepoRoot is the root of hop3's source tree, found from this file's place
// in it: tests and benchmarks run from the tree, never from an installed
// copy.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Build compiles cmd/hop3 into dir and returns the binary's path. dir is
// made searchable by every user: apps' users may run hop3 too, as an
// attacker's code would, and the isolation tests must fail for the right
// reason.
func Build(dir string, ldflags ...string) (string, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("build hop3: %w", err)
	}
	bin := filepath.Join(dir, "hop3")
	args := []string{"build"}
	if len(ldflags) > 0 {
		args = append(args, "-ldflags", strings.Join(ldflags, " "))
	}
	cmd := exec.Command("go", append(args, "-o", bin, "./cmd/hop3")...)
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build hop3: %v\n%s", err, out)
	}
	return bin, nil
}

// FindTool finds a binary installed by scripts/setup.sh: $HOP3_<NAME>_BIN,
// then .tools/bin/<name> in the source tree, then PATH. A tool in a
// directory apps' users cannot reach (a checkout under a closed home) is
// copied where they can, since builds run it as those users.
func FindTool(name string) (string, error) {
	if v := os.Getenv("HOP3_" + strings.ToUpper(name) + "_BIN"); v != "" {
		return v, nil
	}
	p := filepath.Join(RepoRoot(), ".tools", "bin", name)
	if _, err := os.Stat(p); err == nil {
		return reachable(p)
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found: run scripts/setup.sh (make setup), or set HOP3_%s_BIN", name, strings.ToUpper(name))
}

// Tool is FindTool failing the test when the tool is missing.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := FindTool(name)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// SharedCache is where builds keep uv/npm/go caches across tests and runs.
// Apps build as their own users, each in a cache of its own under it (by
// uid, so the first app of every test shares one): it must be reachable by
// them, so a checkout under a closed home directory uses the system's
// temporary directory instead.
func SharedCache() string {
	if v := os.Getenv("HOP3_TEST_CACHE"); v != "" && searchableByAll(filepath.Dir(v)) {
		return v
	}
	return filepath.Join(os.TempDir(), "hop3-test-cache")
}

// searchableByAll reports whether every user may pass through dir and each
// directory above it.
func searchableByAll(dir string) bool {
	// A directory not made yet will be made with a searchable mode.
	for {
		if _, err := os.Stat(dir); err == nil || filepath.Dir(dir) == dir {
			break
		}
		dir = filepath.Dir(dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for p := real; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

var (
	reachableMu    sync.Mutex
	reachableTools = map[string]string{}
)

// reachable returns the tool at path, or a copy of it in the shared cache
// when apps' users (who run uv in builds) could not reach it.
func reachable(path string) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil || searchableByAll(filepath.Dir(real)) {
		return path, nil
	}
	reachableMu.Lock()
	defer reachableMu.Unlock()
	if p, ok := reachableTools[path]; ok {
		return p, nil
	}
	b, err := os.ReadFile(real)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(SharedCache(), "tools")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Written aside and renamed: another test process may be running the
	// copy an earlier run left.
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return "", err
	}
	cp := filepath.Join(dir, filepath.Base(path))
	if err := os.Rename(tmp.Name(), cp); err != nil {
		return "", err
	}
	reachableTools[path] = cp
	return cp, nil
}

// ShortTemp returns a short temporary directory, removed when the test
// ends: unix socket paths under a root must stay below 108 bytes, and
// t.TempDir() names can be long.
func ShortTemp(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "h3")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// OpenTemp is ShortTemp that every user may write: apps run as their own
// users, and a test that shares files with an app's processes needs it.
func OpenTemp(tb testing.TB) string {
	tb.Helper()
	dir := ShortTemp(tb)
	if err := os.Chmod(dir, 0o1777); err != nil {
		tb.Fatal(err)
	}
	return dir
}
