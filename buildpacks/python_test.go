package buildpacks

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// checkVenv asserts that venv is complete, holds a working granian and can
// import modules from the release directory dir.
func checkVenv(t *testing.T, venv, dir string, modules ...string) {
	t.Helper()
	if !filepath.IsAbs(venv) {
		t.Fatalf("Venv %q is not absolute", venv)
	}
	if _, err := os.Stat(filepath.Join(venv, markerFile)); err != nil {
		t.Errorf("venv is not marked complete: %v", err)
	}
	// Running the script checks that its shebang names where the venv
	// lives now, not where it was built.
	out := runIn(t, dir, nil, filepath.Join(venv, "bin", "granian"), "--version")
	if !strings.Contains(out, "granian") && !strings.Contains(out, ".") {
		t.Errorf("granian --version: %q", out)
	}
	if len(modules) > 0 {
		runIn(t, dir, nil, filepath.Join(venv, "bin", "python"), "-c", "import "+strings.Join(modules, ", "))
	}
}

func TestPythonRequirements(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "flask-app")
	rep := newRecorder(t)
	spec := testSpec(t, dir, rep)
	res := build(t, spec)

	if !reflect.DeepEqual(res.Packs, []string{"python"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !rep.hasStep("Python app detected") {
		t.Errorf("no detection step:\n%s", rep)
	}
	if len(res.CacheHits) != 0 {
		t.Errorf("first build: CacheHits = %v", res.CacheHits)
	}
	if filepath.Dir(res.Venv) != spec.EnvsDir {
		t.Errorf("Venv %s is not in %s", res.Venv, spec.EnvsDir)
	}
	if !reflect.DeepEqual(res.Envs, []string{res.Venv}) {
		t.Errorf("Envs = %v", res.Envs)
	}
	// The app module itself is imported from the release directory.
	checkVenv(t, res.Venv, dir, "flask", "granian", "app")
	if got := res.Env["VIRTUAL_ENV"]; got != res.Venv {
		t.Errorf("VIRTUAL_ENV = %q", got)
	}
	wantPath := filepath.Join(res.Venv, "bin") + ":" + os.Getenv("PATH")
	if got := res.Env["PATH"]; got != wantPath {
		t.Errorf("PATH = %q, want %q", got, wantPath)
	}
	if names := entries(t, spec.EnvsDir); len(names) != 1 {
		t.Errorf("envs dir holds %v, want just the venv", names)
	}

	// A second push with the same requirements reuses the venv.
	dir2 := fixture(t, "flask-app")
	rep2 := newRecorder(t)
	spec2 := spec
	spec2.Dir, spec2.Report = dir2, rep2
	res2 := build(t, spec2)
	if res2.Venv != res.Venv {
		t.Errorf("second build: Venv = %s, want %s", res2.Venv, res.Venv)
	}
	if !contains(res2.CacheHits, "python-venv") {
		t.Errorf("second build: CacheHits = %v", res2.CacheHits)
	}
	if !rep2.hasStep("Reusing virtualenv (requirements unchanged)") {
		t.Errorf("second build log:\n%s", rep2)
	}

	// A changed requirements.txt builds a new venv and leaves the old one
	// alone: a running release may use it.
	dir3 := fixture(t, "flask-app")
	writeFile(t, filepath.Join(dir3, "requirements.txt"), "flask>=3.0\nsix\n")
	rep3 := newRecorder(t)
	spec3 := spec
	spec3.Dir, spec3.Report = dir3, rep3
	res3 := build(t, spec3)
	if res3.Venv == res.Venv || len(res3.CacheHits) != 0 {
		t.Errorf("changed requirements: Venv = %s (old %s), CacheHits = %v", res3.Venv, res.Venv, res3.CacheHits)
	}
	checkVenv(t, res3.Venv, dir3, "flask", "six")
	if err := exec.Command(filepath.Join(res.Venv, "bin", "python"), "-c", "import six").Run(); err == nil {
		t.Error("the old venv gained six")
	}

	// NoCache builds a fresh venv next to the complete one.
	dir4 := fixture(t, "flask-app")
	spec4 := spec
	spec4.Dir, spec4.Report, spec4.NoCache = dir4, newRecorder(t), true
	res4 := build(t, spec4)
	if res4.Venv == res.Venv || len(res4.CacheHits) != 0 {
		t.Errorf("NoCache: Venv = %s (old %s), CacheHits = %v", res4.Venv, res.Venv, res4.CacheHits)
	}
	checkVenv(t, res4.Venv, dir4, "flask")
	checkVenv(t, res.Venv, dir, "flask")

	// Pruning keeps what is asked for.
	if err := PruneEnvs(spec.EnvsDir, []string{res.Venv, filepath.Base(res3.Venv)}); err != nil {
		t.Fatal(err)
	}
	got := entries(t, spec.EnvsDir)
	want := []string{filepath.Base(res.Venv), filepath.Base(res3.Venv)}
	if len(got) != 2 || !contains(got, want[0]) || !contains(got, want[1]) {
		t.Errorf("after prune: %v, want %v", got, want)
	}
}

func TestPythonPyproject(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "asgi-app")
	rep := newRecorder(t)
	res := build(t, testSpec(t, dir, rep))
	checkVenv(t, res.Venv, dir, "fastapi", "main")
	if !strings.Contains(rep.String(), "from pyproject.toml") {
		t.Errorf("log:\n%s", rep)
	}
	// The app has no [build-system]: it is not a package, and only its
	// dependencies are installed.
	out := runIn(t, dir, nil, filepath.Join(res.Venv, "bin", "python"), "-c",
		"import importlib.metadata as m\ntry:\n m.version('asgi-app'); print('installed')\nexcept m.PackageNotFoundError: print('absent')")
	if strings.TrimSpace(out) != "absent" {
		t.Errorf("the project itself was installed: %q", out)
	}
}

func TestPythonUVLock(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "uvlock-app")
	rep := newRecorder(t)
	res := build(t, testSpec(t, dir, rep))
	checkVenv(t, res.Venv, dir, "markupsafe", "app")
	if !strings.Contains(rep.String(), "from uv.lock") {
		t.Errorf("log:\n%s", rep)
	}
	// The lock pins markupsafe; the version installed must be the locked
	// one, not the newest.
	lock, err := os.ReadFile(filepath.Join(dir, "uv.lock"))
	if err != nil {
		t.Fatal(err)
	}
	out := runIn(t, dir, nil, filepath.Join(res.Venv, "bin", "python"), "-c",
		"import importlib.metadata as m; print(m.version('markupsafe'))")
	if want := `name = "markupsafe"` + "\nversion = \"" + strings.TrimSpace(out) + `"`; !strings.Contains(string(lock), want) {
		t.Errorf("installed markupsafe %s is not the locked version", strings.TrimSpace(out))
	}
	// Dev dependencies stay out.
	if err := exec.Command(filepath.Join(res.Venv, "bin", "python"), "-c", "import six").Run(); err == nil {
		t.Error("the dev dependency six was installed")
	}
}

func TestPythonAppPinsGranian(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "flask-app")
	writeFile(t, filepath.Join(dir, "requirements.txt"), "flask>=3.0\nGranian == "+DefaultGranianVersion+"  # pinned by the app\n")
	rep := newRecorder(t)
	spec := testSpec(t, dir, rep)
	spec.Env["GRANIAN_VERSION"] = "1.0.0" // would conflict if it were added
	res := build(t, spec)
	checkVenv(t, res.Venv, dir, "flask")
	if !strings.Contains(rep.String(), "declares granian") {
		t.Errorf("log:\n%s", rep)
	}
}

func TestPythonMissingPackage(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "flask-app")
	writeFile(t, filepath.Join(dir, "requirements.txt"), "flask\nhop3-no-such-package-e2b9f1\n")
	rep := newRecorder(t)
	spec := testSpec(t, dir, rep)
	_, err := Build(testContext(t), spec)
	if err == nil {
		t.Fatal("Build succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "uv pip install failed (exit status") {
		t.Errorf("error = %q, want one line saying uv pip install failed", msg)
	}
	if !strings.Contains(rep.String(), "hop3-no-such-package-e2b9f1") {
		t.Errorf("uv's own error is not in the output:\n%s", rep)
	}
	if names := entries(t, spec.EnvsDir); len(names) != 0 {
		t.Errorf("a failed build left %v in the envs dir", names)
	}
}

func TestPythonUnknownVersion(t *testing.T) {
	t.Parallel()
	want, err := exec.Command("python3", "-c", "import platform; print(platform.python_version())").Output()
	if err != nil {
		t.Skip("python3 not found")
	}
	dir := fixture(t, "flask-app")
	writeFile(t, filepath.Join(dir, ".python-version"), "3.5\n")
	spec := testSpec(t, dir, newRecorder(t))
	_, err = Build(testContext(t), spec)
	if err == nil {
		t.Fatal("Build succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "Python 3.5 requested by .python-version is not installed; available: ") ||
		!strings.Contains(msg, strings.TrimSpace(string(want))) || strings.Contains(msg, "\n") {
		t.Errorf("error = %q", msg)
	}

	// PYTHON_VERSION wins over the file and takes any patch release of the
	// minor one.
	v := versionParts(strings.TrimSpace(string(want)))
	rep := newRecorder(t)
	spec.Env["PYTHON_VERSION"], spec.Report = fmt.Sprintf("python-%d.%d.999", v[0], v[1]), rep
	res := build(t, spec)
	checkVenv(t, res.Venv, dir, "flask")
}

func TestPythonPipFallback(t *testing.T) {
	t.Parallel()
	dir := fixture(t, "flask-app")
	rep := newRecorder(t)
	spec := testSpec(t, dir, rep)
	spec.Tools.UV = filepath.Join(t.TempDir(), "no-uv-here")
	res := build(t, spec)
	checkVenv(t, res.Venv, dir, "flask", "app")
	if !strings.Contains(rep.String(), "using pip, which is slower") {
		t.Errorf("log:\n%s", rep)
	}
}
