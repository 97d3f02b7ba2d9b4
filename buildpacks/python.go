package buildpacks

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// How the dependencies of a Python app are declared, in order of precedence.
const (
	pyRequirements = "requirements.txt"
	pyUVLock       = "uv.lock"
	pyProject      = "pyproject.toml"
)

// pyPlan says what goes into an app's virtualenv.
type pyPlan struct {
	mode string
	// requirements is the file given to the installer with -r, if any:
	// requirements.txt, or pyproject.toml for uv (which reads a project's
	// dependencies from it without building the project).
	requirements string
	// exported holds the requirements exported from uv.lock, or those read
	// from pyproject.toml for pip; they are written next to the environment
	// being built and installed with -r.
	exported []byte
	// project is set when the app itself is installed (a pyproject.toml with
	// a [build-system]).
	project bool
	// granian is the requirement added for Granian, or "" when the app
	// declares granian itself.
	granian string
	// reqs is what requirements.txt and the files it includes hold.
	reqs reqScan
}

// buildPython makes sure a virtualenv for the app's dependencies and Granian
// exists in the environment store, building it if needed, and points the
// runtime environment at it.
//
// The installer is uv when it can be found, else the interpreter's venv and
// pip modules. Dependencies come from requirements.txt if present; else from
// uv.lock, exported with `uv export --frozen` (the lock is followed as is,
// without dev dependencies); else from poetry.lock's, pdm.lock's or
// Pipfile.lock's pins (see exportPoetryLock); else from pyproject.toml. A project with a
// [build-system] is installed itself, not editable, like `uv sync` does; one
// without (an app that is not a package) gets only its dependencies, and its
// code is imported from the release directory.
//
// The virtualenv is named by a hash of the dependency files, the
// interpreter, the Granian version and this package's version. When the app
// itself or a local path goes into the virtualenv, the hash covers the whole
// source tree, so such an app gets a new virtualenv whenever its code
// changes; uv's cache keeps that quick.
func (b *builder) buildPython(ctx context.Context) error {
	if b.spec.EnvsDir == "" || b.spec.CacheDir == "" {
		return errors.New("no environment store or cache directory given")
	}
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		return err
	}
	cacheDir, err := filepath.Abs(b.spec.CacheDir)
	if err != nil {
		return err
	}

	interp, err := b.pythonInterpreter(ctx)
	if err != nil {
		return err
	}
	b.rep.Info(fmt.Sprintf("Using Python %s (%s)", interp.version, interp.path))

	uv, uvErr := b.tool(b.spec.Tools.UV, "uv")
	if uvErr != nil {
		b.rep.Info(fmt.Sprintf("%v; using pip, which is slower", uvErr))
		uv = ""
	}

	granianVersion := strings.TrimSpace(b.spec.Env["GRANIAN_VERSION"])
	if granianVersion == "" {
		granianVersion = DefaultGranianVersion
	}

	env := withEnv(b.env, map[string]string{
		"UV_CACHE_DIR":                  filepath.Join(cacheDir, "uv"),
		"UV_PYTHON_DOWNLOADS":           "never",
		"PIP_CACHE_DIR":                 filepath.Join(cacheDir, "pip"),
		"PIP_NO_INPUT":                  "1",
		"PIP_DISABLE_PIP_VERSION_CHECK": "1",
	})
	// uv hard links from its cache and falls back to copying, with a
	// warning, across file systems; skip the failed attempt. An app built
	// as its own user gets copies always: its virtualenv is handed to hop3
	// afterwards, and a hard link would hand over the cache's file too.
	if _, set := b.spec.Env["UV_LINK_MODE"]; !set && (b.spec.As != nil || !sameFileSystem(env["UV_CACHE_DIR"], envsDir)) {
		env["UV_LINK_MODE"] = "copy"
	}

	plan, err := b.planPython(ctx, env, uv, interp, granianVersion)
	if err != nil {
		return err
	}
	key, err := b.pythonKey(ctx, plan, interp)
	if err != nil {
		return err
	}

	store := b.envStore(envsDir)
	venv, ok := store.complete(key)
	if ok && !b.spec.NoCache && isExecutable(filepath.Join(venv, "bin", "granian")) {
		b.rep.Step("Reusing virtualenv (requirements unchanged)")
		b.hit("python-venv")
	} else {
		start := time.Now()
		installer := "uv"
		if uv == "" {
			installer = "pip"
		}
		b.rep.Step(fmt.Sprintf("Installing dependencies from %s with %s", plan.mode, installer))
		meta := map[string]string{
			"kind":    "python-venv",
			"app":     b.spec.App,
			"python":  interp.version,
			"mode":    plan.mode,
			"granian": plan.granian,
			"created": time.Now().UTC().Format(time.RFC3339),
		}
		venv, err = store.create(key, b.spec.NoCache, meta, func(tmp, final string) error {
			return b.fillVenv(ctx, env, uv, interp, plan, tmp, final)
		}, relocateVenv)
		if err != nil {
			return err
		}
		b.rep.Info(fmt.Sprintf("Virtualenv ready in %s", since(start)))
	}
	b.res.Venv = venv
	b.res.Envs = append(b.res.Envs, venv)
	b.setRuntimeEnv("VIRTUAL_ENV", venv)
	// Without it, what an app prints reaches its log only when a buffer
	// fills.
	b.addRuntimeEnv("PYTHONUNBUFFERED", "1")
	b.addRuntimePath(filepath.Join(venv, "bin"))
	return nil
}

// planPython decides what to install from the files in the release.
func (b *builder) planPython(ctx context.Context, env map[string]string, uv string, interp interpreter, granianVersion string) (pyPlan, error) {
	plan := pyPlan{granian: "granian==" + granianVersion}
	var declared bool
	switch {
	case b.has(pyRequirements):
		plan.mode = pyRequirements
		plan.requirements = filepath.Join(b.dir, pyRequirements)
		scan, err := scanRequirements(plan.requirements)
		if err != nil {
			return pyPlan{}, err
		}
		plan.reqs = scan
		declared = scan.granian
	case b.has(pyUVLock) && !b.has(pyProject):
		return pyPlan{}, errors.New("uv.lock without pyproject.toml: add pyproject.toml or requirements.txt")
	case b.has(pyUVLock) && uv != "":
		plan.mode = pyUVLock
		// The export lists the project itself as "." when it is a package,
		// and workspace members by path; --no-editable keeps the
		// virtualenv from pointing into this release directory.
		var stdout bytes.Buffer
		err := b.run(ctx, command{
			label:  "uv export",
			dir:    b.dir,
			env:    env,
			argv:   []string{uv, "export", "--frozen", "--no-hashes", "--no-dev", "--no-editable", "--no-header", "--format", "requirements.txt"},
			stdout: &stdout,
		})
		if err != nil {
			return pyPlan{}, err
		}
		plan.exported = stdout.Bytes()
		declared = exportedGranianRe.Match(plan.exported)
	case b.has(pyProject) && (b.has(pyPoetryLock) || b.has(pyPDMLock)), b.has(pyPipfileLock):
		export, name := exportPipfileLock, pyPipfileLock
		switch {
		case b.has(pyProject) && b.has(pyPoetryLock):
			export, name = exportPoetryLock, pyPoetryLock
		case b.has(pyProject) && b.has(pyPDMLock):
			export, name = exportPDMLock, pyPDMLock
		}
		plan.mode = name
		exported, err := export(b.dir)
		if err != nil {
			return pyPlan{}, err
		}
		plan.exported = exported
		declared = exportedGranianRe.Match(plan.exported)
	default:
		if b.has(pyUVLock) {
			b.rep.Info("uv.lock needs uv to be followed; installing from pyproject.toml")
		}
		plan.mode = pyProject
		data, err := os.ReadFile(filepath.Join(b.dir, pyProject))
		if err != nil {
			return pyPlan{}, fmt.Errorf("read pyproject.toml: %w", err)
		}
		plan.project = hasBuildSystem(data)
		declared = declaresGranianTOML(data)
		switch {
		case plan.project:
		case uv != "":
			plan.requirements = filepath.Join(b.dir, pyProject)
		default:
			deps, err := readProjectDeps(ctx, b.cred(), env, interp, filepath.Join(b.dir, pyProject))
			if err != nil {
				return pyPlan{}, err
			}
			plan.exported = deps
		}
	}
	if declared {
		plan.granian = ""
		b.rep.Info("The app declares granian; not adding granian==" + granianVersion)
	}
	return plan, nil
}

// pythonKey names the virtualenv for plan.
func (b *builder) pythonKey(ctx context.Context, plan pyPlan, interp interpreter) (string, error) {
	k := newKeyHash("python-venv")
	// The same interpreter answers to several names (python3, python3.11).
	real := interp.path
	if p, err := filepath.EvalSymlinks(real); err == nil {
		real = p
	}
	k.add(interp.version, real, plan.mode, plan.granian)
	local := plan.project
	editable := false
	switch plan.mode {
	case pyRequirements:
		for _, f := range plan.reqs.files {
			k.add(f.name)
			k.addBytes(f.data)
		}
		local = local || plan.reqs.local
		editable = plan.reqs.editable
	case pyPoetryLock, pyPipfileLock, pyPDMLock:
		k.addBytes(plan.exported)
	case pyUVLock:
		k.addBytes(plan.exported)
		local = local || exportedLocalRe.Match(plan.exported)
	case pyProject:
		data, err := os.ReadFile(filepath.Join(b.dir, pyProject))
		if err != nil {
			return "", fmt.Errorf("read pyproject.toml: %w", err)
		}
		k.addBytes(data)
		k.addBytes(plan.exported)
	}
	if local {
		tree, err := hashTree(ctx, b.dir, skipInTree)
		if err != nil {
			return "", err
		}
		k.add("tree", tree)
	}
	if editable {
		// An editable install points into this very release directory.
		k.add("editable", b.dir)
	}
	return k.sum("py"), nil
}

// fillVenv creates the virtualenv at tmp and installs into it.
func (b *builder) fillVenv(ctx context.Context, env map[string]string, uv string, interp interpreter, plan pyPlan, tmp, final string) error {
	py := filepath.Join(tmp, "bin", "python")
	var args []string
	if plan.exported != nil {
		reqs := filepath.Join(filepath.Dir(tmp), "requirements.txt")
		if err := writeNew(reqs, plan.exported); err != nil {
			return fmt.Errorf("write exported requirements: %w", err)
		}
		args = append(args, "-r", reqs)
	}
	if plan.requirements != "" {
		args = append(args, "-r", plan.requirements)
	}
	if plan.project {
		args = append(args, b.dir)
	}
	if plan.granian != "" {
		args = append(args, plan.granian)
	}

	if uv != "" {
		if err := b.run(ctx, command{
			label: "uv venv", dir: b.dir, env: env,
			argv: []string{uv, "venv", "--quiet", "--allow-existing", "--python", interp.path, tmp},
		}); err != nil {
			return err
		}
		install := []string{uv, "pip", "install", "--python", py, "--compile-bytecode"}
		if b.spec.NoCache {
			install = append(install, "--refresh")
		}
		if err := b.run(ctx, command{
			label: "uv pip install", dir: b.dir, env: env,
			argv: append(install, args...),
		}); err != nil {
			return err
		}
		if !isExecutable(filepath.Join(tmp, "bin", "granian")) {
			// The app named granian, but only, say, behind a marker that
			// excluded it.
			if err := b.run(ctx, command{
				label: "uv pip install", dir: b.dir, env: env,
				argv: append(install, "granian=="+granianFrom(plan, b.spec.Env)),
			}); err != nil {
				return err
			}
		}
	} else {
		if err := b.run(ctx, command{
			label: "python -m venv", dir: b.dir, env: env,
			argv: []string{interp.path, "-m", "venv", tmp},
		}); err != nil {
			return err
		}
		install := []string{py, "-m", "pip", "install", "--progress-bar", "off"}
		if b.spec.NoCache {
			install = append(install, "--no-cache-dir")
		}
		if err := b.run(ctx, command{
			label: "pip install", dir: b.dir, env: env,
			argv: append(install, args...),
		}); err != nil {
			return err
		}
		if !isExecutable(filepath.Join(tmp, "bin", "granian")) {
			if err := b.run(ctx, command{
				label: "pip install", dir: b.dir, env: env,
				argv: append(install, "granian=="+granianFrom(plan, b.spec.Env)),
			}); err != nil {
				return err
			}
		}
	}
	if !isExecutable(filepath.Join(tmp, "bin", "granian")) {
		return errors.New("granian is missing from the virtualenv after installing it")
	}
	return nil
}

// writeNew writes a file that must not exist yet, so that a link put in
// its place is never written through.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func granianFrom(plan pyPlan, env map[string]string) string {
	if v, ok := strings.CutPrefix(plan.granian, "granian=="); ok {
		return v
	}
	if v := strings.TrimSpace(env["GRANIAN_VERSION"]); v != "" {
		return v
	}
	return DefaultGranianVersion
}

// relocateVenv rewrites the paths a virtualenv records of itself (script
// shebangs, activate scripts, pyvenv.cfg) from where it was built to where it
// will live. Compiled bytecode needs no change: Python corrects the file
// names it records when it loads it.
func relocateVenv(tmp, final string) error {
	from, to := []byte(tmp), []byte(final)
	rewrite := func(path string) error {
		info, err := os.Lstat(path)
		if err != nil || !info.Mode().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("relocate virtualenv: %w", err)
		}
		if !bytes.Contains(data, from) {
			return nil
		}
		// Binary executables in bin/ are left alone: only text scripts
		// (a shebang, or an activate script) are rewritten.
		if !bytes.HasPrefix(data, []byte("#!")) && !strings.HasPrefix(filepath.Base(path), "activate") &&
			filepath.Base(path) != "pyvenv.cfg" {
			return nil
		}
		data = bytes.ReplaceAll(data, from, to)
		if err := os.WriteFile(path, data, info.Mode().Perm()); err != nil {
			return fmt.Errorf("relocate virtualenv: %w", err)
		}
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(tmp, "bin"))
	if err != nil {
		return fmt.Errorf("relocate virtualenv: %w", err)
	}
	for _, e := range entries {
		if err := rewrite(filepath.Join(tmp, "bin", e.Name())); err != nil {
			return err
		}
	}
	return rewrite(filepath.Join(tmp, "pyvenv.cfg"))
}

// reqFile is one requirements file and its contents.
type reqFile struct {
	name string // relative to the directory of the top file: the release directory varies
	data []byte
}

// reqScan is what scanRequirements learns from a requirements file and the
// files it includes.
type reqScan struct {
	files    []reqFile
	granian  bool // a line names granian
	local    bool // a line installs a local path
	editable bool // a line installs a local path in editable mode
}

// Patterns for reading requirements. Compiled once; a Regexp is safe for
// concurrent use.
var (
	reqNameRe         = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*`)
	nameSepRe         = regexp.MustCompile(`[-_.]+`)
	exportedGranianRe = regexp.MustCompile(`(?m)^granian([\[=<>!~ ;]|$)`)
	exportedLocalRe   = regexp.MustCompile(`(?m)^(\.|/|file:|.*@ file:)`)
)

// scanRequirements reads a requirements file and those it includes with -r
// or -c, relative to the including file as pip does.
func scanRequirements(path string) (reqScan, error) {
	var scan reqScan
	seen := make(map[string]bool)
	root := filepath.Dir(path)
	rel := func(p string) string {
		if r, err := filepath.Rel(root, p); err == nil {
			return r
		}
		return p
	}
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		if seen[path] || depth > 10 {
			return nil
		}
		seen[path] = true
		data, err := os.ReadFile(path)
		if err != nil {
			if depth > 0 && errors.Is(err, os.ErrNotExist) {
				// The installer reports a missing include in its own words.
				scan.files = append(scan.files, reqFile{name: rel(path)})
				return nil
			}
			return fmt.Errorf("read requirements: %w", err)
		}
		scan.files = append(scan.files, reqFile{name: rel(path), data: data})
		for _, line := range requirementLines(data) {
			opt, arg := splitOption(line)
			switch opt {
			case "-r", "--requirement", "-c", "--constraint":
				if arg == "" || strings.Contains(arg, "://") {
					continue
				}
				if !filepath.IsAbs(arg) {
					arg = filepath.Join(filepath.Dir(path), arg)
				}
				if err := walk(arg, depth+1); err != nil {
					return err
				}
			case "-e", "--editable":
				if isLocalRequirement(arg) {
					scan.local = true
					scan.editable = true
				}
			case "":
				if isLocalRequirement(line) || strings.Contains(line, "@ file:") {
					scan.local = true
				}
				if name := reqNameRe.FindString(line); normalizeName(name) == "granian" {
					scan.granian = true
				}
			}
		}
		return nil
	}
	err := walk(path, 0)
	return scan, err
}

// requirementLines returns the logical lines of a requirements file:
// continuations joined, comments and blank lines dropped.
func requirementLines(data []byte) []string {
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		if i := strings.Index(full, "#"); i == 0 {
			full = ""
		} else if i > 0 {
			// pip takes " #" as the start of a comment; a bare "#" may be
			// part of a URL fragment.
			if j := strings.Index(full, " #"); j >= 0 {
				full = full[:j]
			}
		}
		if full = strings.TrimSpace(full); full != "" {
			lines = append(lines, full)
		}
	}
	if rest := strings.TrimSpace(cur.String()); rest != "" {
		lines = append(lines, rest)
	}
	return lines
}

// splitOption splits "-r base.txt", "--requirement=base.txt" or
// "-rbase.txt" into option and argument; a requirement line has no option.
func splitOption(line string) (string, string) {
	if !strings.HasPrefix(line, "-") {
		return "", line
	}
	if strings.HasPrefix(line, "--") {
		opt, arg, found := strings.Cut(line, "=")
		if !found {
			opt, arg, _ = strings.Cut(line, " ")
		}
		return strings.TrimSpace(opt), strings.TrimSpace(arg)
	}
	if len(line) > 2 {
		return line[:2], strings.TrimSpace(line[2:])
	}
	return line, ""
}

func isLocalRequirement(s string) bool {
	return strings.HasPrefix(s, ".") || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "file:")
}

// normalizeName applies the package name normalisation of PEP 503.
func normalizeName(name string) string {
	return nameSepRe.ReplaceAllString(strings.ToLower(name), "-")
}

// hasBuildSystem reports whether a pyproject.toml declares a build system,
// which makes the project a package to install.
func hasBuildSystem(data []byte) bool {
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "[build-system]" {
			return true
		}
	}
	return false
}

var tomlGranianRe = regexp.MustCompile(`["']granian\s*(\[[^\]]*\])?\s*([<>=!~;@ "']|$)`)

// declaresGranianTOML reports whether a pyproject.toml names granian in a
// dependency string.
func declaresGranianTOML(data []byte) bool {
	return tomlGranianRe.Match(data)
}

// readProjectDeps lists the dependencies in a pyproject.toml, one a line, by
// asking the interpreter's tomllib (Python 3.11 and later). pip, unlike uv,
// cannot install a project's dependencies without building the project.
func readProjectDeps(ctx context.Context, as *syscall.Credential, env map[string]string, interp interpreter, path string) ([]byte, error) {
	out, err := output(ctx, as, env, "", interp.path, "-I", "-c", `import sys, tomllib
with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
print("\n".join(data.get("project", {}).get("dependencies", [])))`, path)
	if err != nil {
		return nil, fmt.Errorf("read dependencies from pyproject.toml (needs uv or Python 3.11 or later): %w", err)
	}
	return []byte(out + "\n"), nil
}
