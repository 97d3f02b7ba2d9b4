package buildpacks

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a Reporter that keeps everything for the test to inspect.
type recorder struct {
	mu    sync.Mutex
	steps []string
	infos []string
	out   bytes.Buffer
	t     *testing.T
}

func newRecorder(t *testing.T) *recorder { return &recorder{t: t} }

func (r *recorder) Step(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, msg)
	r.out.WriteString("-----> " + msg + "\n")
}

func (r *recorder) Info(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.infos = append(r.infos, msg)
	r.out.WriteString("       " + msg + "\n")
}

func (r *recorder) Output() io.Writer { return lockedWriter{r} }

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out.String()
}

func (r *recorder) hasStep(sub string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.steps {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

type lockedWriter struct{ r *recorder }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.r.out.Write(p)
}

// testCache returns the tool cache shared by all tests and test runs, so
// that only the first run downloads anything.
func testCache(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HOP3_TEST_CACHE")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "hop3-test-cache")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// moduleRoot returns the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// testUV locates uv: HOP3_UV, else the module's .tools/bin/uv, else PATH.
func testUV(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HOP3_UV"); p != "" {
		return p
	}
	if p := filepath.Join(moduleRoot(t), ".tools", "bin", "uv"); isExecutable(p) {
		return p
	}
	if p, err := exec.LookPath("uv"); err == nil {
		return p
	}
	t.Skip("uv not found: set HOP3_UV")
	return ""
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found on PATH", name)
	}
	return p
}

// fixture copies testdata/<name> into a fresh release directory.
func fixture(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "release")
	if err := copyTree(context.Background(), filepath.Join("testdata", name), dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testSpec returns a spec for building dir with real tools, a fresh
// environment store and the shared cache.
func testSpec(t *testing.T, dir string, rep Reporter) Spec {
	t.Helper()
	return Spec{
		App:      "test",
		Dir:      dir,
		Env:      map[string]string{},
		CacheDir: testCache(t),
		EnvsDir:  filepath.Join(t.TempDir(), "envs"),
		Tools:    Tools{UV: testUV(t)},
		Report:   rep,
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// build runs Build and fails the test, showing the build log, on error.
func build(t *testing.T, spec Spec) Result {
	t.Helper()
	res, err := Build(testContext(t), spec)
	if err != nil {
		if r, ok := spec.Report.(*recorder); ok {
			t.Logf("build log:\n%s", r)
		}
		t.Fatalf("Build: %v", err)
	}
	return res
}

// runIn runs a program and returns its combined output, failing the test if
// it fails.
func runIn(t *testing.T, dir string, env []string, argv ...string) string {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return string(out)
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
