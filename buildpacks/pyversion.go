package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// interpreter is a Python found on the machine.
type interpreter struct {
	path    string // sys.executable: the real binary, not a pyenv shim
	version string // e.g. "3.11.7"
}

// pyRequest is the Python version an app asks for.
type pyRequest struct {
	text   string // as the app wrote it, normalised: "3.11" or "3.11.7"
	source string // where it came from: "PYTHON_VERSION", ".python-version", "runtime.txt"
	parts  []int  // major[, minor[, patch]]
}

var pyVersionRe = regexp.MustCompile(`(\d+)(?:\.(\d+))?(?:\.(\d+))?`)

// parsePyRequest reads a version as written in .python-version ("3.11",
// "cpython-3.11.7-linux-x86_64-gnu"), runtime.txt ("python-3.11.7") or
// PYTHON_VERSION ("3.11").
func parsePyRequest(raw, source string) (pyRequest, error) {
	m := pyVersionRe.FindStringSubmatch(raw)
	if m == nil {
		return pyRequest{}, fmt.Errorf("cannot read a Python version from %s: %q", source, strings.TrimSpace(raw))
	}
	r := pyRequest{source: source}
	var text []string
	for _, s := range m[1:] {
		if s == "" {
			break
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return pyRequest{}, fmt.Errorf("cannot read a Python version from %s: %q", source, strings.TrimSpace(raw))
		}
		r.parts = append(r.parts, n)
		text = append(text, s)
	}
	r.text = strings.Join(text, ".")
	return r, nil
}

// matches reports whether version satisfies the request on the parts the
// request gives, ignoring the patch level: 3.11 and 3.11.2 both take 3.11.7.
func (r pyRequest) matches(version string) bool {
	have := versionParts(version)
	for i := 0; i < len(r.parts) && i < 2; i++ {
		if i >= len(have) || have[i] != r.parts[i] {
			return false
		}
	}
	return true
}

// exact reports whether version is exactly the requested patch release.
func (r pyRequest) exact(version string) bool {
	if len(r.parts) < 3 {
		return false
	}
	have := versionParts(version)
	return len(have) >= 3 && have[0] == r.parts[0] && have[1] == r.parts[1] && have[2] == r.parts[2]
}

func versionParts(v string) []int {
	var out []int
	for _, s := range strings.Split(v, ".") {
		n, err := strconv.Atoi(strings.TrimLeftFunc(s, func(r rune) bool { return r < '0' || r > '9' }))
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// requestedPython returns the version the app asks for, if any: the
// PYTHON_VERSION variable, else .python-version, else runtime.txt.
func (b *builder) requestedPython() (pyRequest, bool, error) {
	if v := strings.TrimSpace(b.spec.Env["PYTHON_VERSION"]); v != "" {
		r, err := parsePyRequest(v, "PYTHON_VERSION")
		return r, true, err
	}
	for _, name := range []string{".python-version", "runtime.txt"} {
		data, err := os.ReadFile(filepath.Join(b.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return pyRequest{}, false, fmt.Errorf("read %s: %w", name, err)
		}
		line := firstSignificantLine(string(data))
		if line == "" {
			continue
		}
		r, err := parsePyRequest(line, name)
		return r, true, err
	}
	return pyRequest{}, false, nil
}

// firstSignificantLine returns the first line that is neither blank nor a
// comment.
func firstSignificantLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

// pythonInterpreter returns the interpreter findPython picks, asking once
// per build.
func (b *builder) pythonInterpreter(ctx context.Context) (interpreter, error) {
	if b.python != nil {
		return *b.python, nil
	}
	in, err := b.findPython(ctx)
	if err != nil {
		return interpreter{}, err
	}
	b.python = &in
	return in, nil
}

// findPython picks the interpreter for the virtualenv. Without a requested
// version it is Tools.Python (default python3). With one, it is the first
// interpreter whose major.minor matches, preferring an exact patch release
// when one was asked for: on PATH, python3.X before python3, then those
// pyenv and uv installed (managedPythons), newest first.
func (b *builder) findPython(ctx context.Context) (interpreter, error) {
	req, requested, err := b.requestedPython()
	if err != nil {
		return interpreter{}, err
	}
	if !requested {
		path, err := b.tool(b.spec.Tools.Python, "python3")
		if err != nil {
			return interpreter{}, err
		}
		return queryPython(ctx, b.cred(), b.env, path)
	}

	seen := make(map[string]bool)
	var first interpreter
	try := func(path string) (interpreter, bool) {
		if real, err := filepath.EvalSymlinks(path); err == nil {
			path = real
		}
		if seen[path] {
			return interpreter{}, false
		}
		seen[path] = true
		in, err := queryPython(ctx, b.cred(), b.env, path)
		if err != nil || !req.matches(in.version) {
			return interpreter{}, false
		}
		return in, true
	}
	var candidates []string
	if b.spec.Tools.Python != "" {
		if p, err := b.tool(b.spec.Tools.Python, ""); err == nil {
			candidates = append(candidates, p)
		}
	}
	names := []string{"python3"}
	if len(req.parts) >= 2 {
		names = []string{fmt.Sprintf("python%d.%d", req.parts[0], req.parts[1]), "python3"}
	}
	for _, name := range names {
		for _, dir := range pathDirs(b.env["PATH"]) {
			if p := filepath.Join(dir, name); isExecutable(p) {
				candidates = append(candidates, p)
			}
		}
	}
	for _, p := range b.managedPythons() {
		if req.matches(p.version) {
			candidates = append(candidates, p.path)
		}
	}
	for _, c := range candidates {
		in, ok := try(c)
		if !ok {
			continue
		}
		if len(req.parts) < 3 || req.exact(in.version) {
			return in, nil
		}
		if first.path == "" {
			first = in
		}
	}
	if first.path != "" {
		b.rep.Info(fmt.Sprintf("Python %s is not installed; using %s, the same minor release", req.text, first.version))
		return first, nil
	}
	if err := ctx.Err(); err != nil {
		return interpreter{}, err
	}
	avail := b.availablePythons(ctx)
	list := "none"
	if len(avail) > 0 {
		list = strings.Join(avail, ", ")
	}
	//lint:ignore ST1005 the message starts with a product's name
	return interpreter{}, fmt.Errorf("Python %s requested by %s is not installed; available: %s", req.text, req.source, list)
}

var pyNameRe = regexp.MustCompile(`^python3(\.\d+)?$`)

// availablePythons lists the versions of the interpreters on PATH, in PATH
// order, then those pyenv and uv installed, without duplicates. It runs only on the error path: asking every
// interpreter (pyenv shims are slow to answer) costs a second or so.
func (b *builder) availablePythons(ctx context.Context) []string {
	seenPath := make(map[string]bool)
	seenVersion := make(map[string]bool)
	var versions []string
	for _, dir := range pathDirs(b.env["PATH"]) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !pyNameRe.MatchString(e.Name()) {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if real, err := filepath.EvalSymlinks(p); err == nil {
				p = real
			}
			if seenPath[p] || !isExecutable(p) {
				continue
			}
			seenPath[p] = true
			in, err := queryPython(ctx, b.cred(), b.env, p)
			if err != nil || seenVersion[in.version] {
				continue
			}
			seenVersion[in.version] = true
			versions = append(versions, in.version)
		}
	}
	for _, p := range b.managedPythons() {
		if !seenVersion[p.version] {
			seenVersion[p.version] = true
			versions = append(versions, p.version)
		}
	}
	return versions
}

// managedPythons lists the interpreters pyenv and uv installed for hop3's
// user (or where the app's config vars say) that the build's user may run.
func (b *builder) managedPythons() []interpreter {
	getenv := func(key string) string {
		if v, ok := b.spec.Env[key]; ok {
			return v
		}
		// A build's HOME is its own; pyenv's and uv's are hop3's.
		return os.Getenv(key)
	}
	var usableOnes []interpreter
	for _, in := range managedPythons(getenv) {
		if usable(in.path, b.cred()) {
			usableOnes = append(usableOnes, in)
		}
	}
	return usableOnes
}

// managedPythons lists the CPython interpreters that pyenv and uv installed,
// which need not be on PATH (hop3 runs as a service, without the shell setup
// that puts pyenv's shims there): pyenv's in $PYENV_ROOT/versions/<version>
// (default ~/.pyenv), uv's in $UV_PYTHON_INSTALL_DIR/cpython-<version>-<platform>
// (default $XDG_DATA_HOME/uv/python, or ~/.local/share/uv/python). The
// version comes from the directory's name, so listing them runs nothing;
// findPython asks the one it picks. Newest first; pyenv's before uv's for
// the same version.
func managedPythons(getenv func(string) string) []interpreter {
	home := getenv("HOME")
	var found []interpreter
	pyenvRoot := getenv("PYENV_ROOT")
	if pyenvRoot == "" && home != "" {
		pyenvRoot = filepath.Join(home, ".pyenv")
	}
	if pyenvRoot != "" {
		found = append(found, scanPythons(filepath.Join(pyenvRoot, "versions"), pyenvVersionRe)...)
	}
	uvDir := getenv("UV_PYTHON_INSTALL_DIR")
	if uvDir == "" {
		data := getenv("XDG_DATA_HOME")
		if data == "" && home != "" {
			data = filepath.Join(home, ".local", "share")
		}
		if data != "" {
			uvDir = filepath.Join(data, "uv", "python")
		}
	}
	if uvDir != "" {
		found = append(found, scanPythons(uvDir, uvVersionRe)...)
	}
	sort.SliceStable(found, func(i, j int) bool {
		return compareVersions(found[i].version, found[j].version) > 0
	})
	return found
}

// Directory names of CPython installs: pyenv's "3.12.1" (not "3.13.0t",
// free-threaded, nor "pypy3.10-7.3.17" or a virtualenv's name), uv's
// "cpython-3.12.1-linux-x86_64-gnu" (not "cpython-3.13.0+freethreaded-...").
var (
	pyenvVersionRe = regexp.MustCompile(`^(\d+\.\d+\.\d+)$`)
	uvVersionRe    = regexp.MustCompile(`^cpython-(\d+\.\d+\.\d+)-`)
)

// scanPythons lists the interpreters in the subdirectories of dir whose
// names nameRe matches, its first group being the version.
func scanPythons(dir string, nameRe *regexp.Regexp) []interpreter {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var found []interpreter
	for _, e := range entries {
		m := nameRe.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		for _, name := range []string{"python3", "python"} {
			if p := filepath.Join(dir, e.Name(), "bin", name); isExecutable(p) {
				found = append(found, interpreter{path: p, version: m[1]})
				break
			}
		}
	}
	return found
}

// compareVersions orders dotted versions numerically.
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			return pa[i] - pb[i]
		}
	}
	return len(pa) - len(pb)
}

func pathDirs(pathList string) []string {
	var dirs []string
	for _, d := range filepath.SplitList(pathList) {
		if d != "" && filepath.IsAbs(d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// queryPython asks an interpreter its version and real location. -I keeps
// the app's PYTHONPATH and friends out of the answer.
func queryPython(ctx context.Context, as *syscall.Credential, env map[string]string, path string) (interpreter, error) {
	out, err := output(ctx, as, env, "", path, "-I", "-c",
		"import platform, sys; print(platform.python_version()); print(sys.executable)")
	if err != nil {
		return interpreter{}, err
	}
	version, exe, _ := strings.Cut(out, "\n")
	version, exe = strings.TrimSpace(version), strings.TrimSpace(exe)
	if len(versionParts(version)) < 2 {
		return interpreter{}, fmt.Errorf("%s: unexpected version %q", path, version)
	}
	if exe == "" || !filepath.IsAbs(exe) {
		exe = path
	}
	return interpreter{path: exe, version: version}, nil
}
