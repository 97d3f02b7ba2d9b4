// Package buildpacks detects what kind of app was pushed and builds it into
// a new release directory: a Python virtualenv, a Node.js node_modules tree
// and front-end build, Go binaries, or nothing at all for static and generic
// apps.
//
// A build writes only into the release directory and into caches. Dependency
// environments (Python virtualenvs, node_modules trees) live in a per-app
// store, Spec.EnvsDir, under a name derived from a hash of everything that
// went into them. An environment is built under a temporary name, marked
// complete, and renamed into place; once complete it is never modified,
// because a running release may use it. A push whose dependencies did not
// change therefore reuses the environment of the previous push.
//
// Environments are named after their kind and hash, "py-<hash>" for a
// virtualenv, "node-<hash>" for a node_modules tree (linked from each
// release that uses it) and "build-<hash>" for the output of a whole build
// (see reuse.go); a NoCache build adds a nonce ("py-<hash>-<nonce>"). Result.Envs lists those a build used, and
// PruneEnvs removes the others once no live release needs them.
package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DefaultGranianVersion is the Granian release installed into every Python
// virtualenv unless the app sets GRANIAN_VERSION or pins granian itself.
const DefaultGranianVersion = "2.8.7"

// packVersion is mixed into every environment hash. Bump it when a change to
// this package makes environments built by an older version unfit for reuse.
const packVersion = "1"

// The buildpack names reported in Result.Packs.
const (
	PackPython  = "python"
	PackNode    = "node"
	PackGo      = "go"
	PackStatic  = "static"
	PackGeneric = "generic"
)

// ErrNoMatch is returned (wrapped or as is) by Detect and Build when nothing
// in the pushed tree tells what to build.
var ErrNoMatch = errors.New("no buildpack matched: add requirements.txt, pyproject.toml, package.json, go.mod, Cargo.toml, pom.xml, build.gradle, composer.json, index.php, Gemfile or a Procfile")

// Reporter receives Heroku-style progress. The caller implements it and
// decides on colour and indentation.
type Reporter interface {
	Step(msg string)   // printed as "-----> msg"
	Info(msg string)   // printed as "       msg"
	Output() io.Writer // raw output of the build tools streams here as it happens
}

// Tools names the external programs a build may run. Each is an absolute
// path or a name looked up on PATH; an empty field means the default name
// ("uv", "python3", "node", "npm", "go", "cargo").
type Tools struct {
	UV, Python, Node, NPM, Go, Cargo string
}

// Spec describes one build.
type Spec struct {
	App string
	// Dir is the release directory holding the checked-out source; build
	// output goes here.
	Dir string
	// Env holds the app's config vars and the repository's .env. Build tools
	// see it on top of a clean environment (see CleanEnv), never the
	// server's own.
	Env map[string]string
	// CacheDir holds the tool caches of this build: CacheDir/uv,
	// CacheDir/pip, CacheDir/npm, CacheDir/go-build, CacheDir/go-mod. Give
	// each app its own when apps run as their own users: a cache one app
	// can write must never feed another's build.
	CacheDir string
	// Home is the build's HOME; empty means CacheDir/home.
	Home string
	// TempDir is the build's TMPDIR; empty leaves TMPDIR unset.
	TempDir string
	// As, when non-nil, runs every build tool as an app's user.
	As *BuildUser
	// EnvsDir is the app's store of immutable dependency environments.
	EnvsDir string
	Tools   Tools
	// NoCache builds dependency environments from scratch instead of reusing
	// a complete one. Existing environments are left untouched.
	NoCache bool
	// HasStatic tells that the Procfile has a static: entry.
	HasStatic bool
	// HasProcfile tells that the app has a Procfile.
	HasProcfile bool
	// HasPHP tells that the Procfile has a php: entry: the app is PHP
	// whatever its files say.
	HasPHP bool
	// Report receives progress; nil discards it.
	Report Reporter
	// SharedObjects is the machine-wide store of shared libraries: the
	// *.so files of a complete environment become hard links to one
	// read-only copy per content there, so apps built alike share their
	// pages. Empty leaves every environment its own files.
	SharedObjects string
	// Log receives debug lines about what could not be shared; nil
	// discards them.
	Log *slog.Logger
}

// BuildUser is the user an app's build runs as, and how trees change
// hands: an environment is filled by the app's user (Give), then made
// hop3's and read-only for the app (Take) before any release uses it.
type BuildUser struct {
	Credential *syscall.Credential
	Give       func(path string) error
	Take       func(path string) error
}

// Result describes a successful build.
type Result struct {
	// Packs lists the buildpacks that ran, main language first.
	Packs []string
	// Env holds additions to the runtime environment. PATH is complete:
	// the new directories followed by the PATH of Spec.Env, or of the
	// server when Spec.Env has none.
	Env map[string]string
	// Venv is the absolute path of the Python virtualenv (Python apps only);
	// <Venv>/bin/granian exists.
	Venv string
	// Envs lists the environment directories in Spec.EnvsDir that this
	// build used or created. Pass those of the live releases to PruneEnvs.
	Envs []string
	// CacheHits names the environments that were reused: "python-venv",
	// "node-modules", or "build" for a whole build (the others are then
	// not listed).
	CacheHits []string
}

// Detect tells which buildpacks apply to the source tree in dir, main
// language first. The first match wins: Python (requirements.txt,
// pyproject.toml, uv.lock or Pipfile.lock), PHP (see DetectPHP), Node.js
// (package.json), Go (go.mod), Rust (Cargo.toml), Java (pom.xml,
// build.gradle or build.gradle.kts), Ruby (Gemfile), static
// (hasStatic, or an index.html and no language files), generic (a Procfile
// and nothing to build). A Python app with a package.json also gets Node.js,
// for its front end, and so does a PHP app.
func Detect(dir string, hasStatic, hasProcfile bool) ([]string, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("detect: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("detect: %s is not a directory", dir)
	}
	has := func(name string) bool {
		info, err := os.Stat(filepath.Join(dir, name))
		return err == nil && info.Mode().IsRegular()
	}
	switch {
	case has("requirements.txt") || has("pyproject.toml") || has("uv.lock") || has("Pipfile.lock"):
		if has("package.json") {
			return []string{PackPython, PackNode}, nil
		}
		return []string{PackPython}, nil
	case isPHP(dir):
		if has("package.json") {
			return []string{PackPHP, PackNode}, nil
		}
		return []string{PackPHP}, nil
	case has("package.json"):
		return []string{PackNode}, nil
	case has("go.mod"):
		return []string{PackGo}, nil
	case has("Cargo.toml"):
		return []string{PackRust}, nil
	case has("pom.xml") || has("build.gradle") || has("build.gradle.kts"):
		return []string{PackJava}, nil
	case has("Gemfile"):
		return []string{PackRuby}, nil
	case hasStatic || has("index.html"):
		return []string{PackStatic}, nil
	case hasProcfile:
		return []string{PackGeneric}, nil
	}
	return nil, ErrNoMatch
}

// Build detects the app in spec.Dir and builds it there. On failure the tools'
// own error lines have already gone to spec.Report.Output(); the returned
// error is a single line fit to show the pusher.
func Build(ctx context.Context, spec Spec) (Result, error) {
	if spec.Dir == "" {
		return Result{}, errors.New("build: no release directory given")
	}
	dir, err := filepath.Abs(spec.Dir)
	if err != nil {
		return Result{}, fmt.Errorf("build: %w", err)
	}
	packs, err := Detect(dir, spec.HasStatic, spec.HasProcfile)
	if err != nil {
		return Result{}, err
	}
	if spec.HasPHP && (packs[0] == PackStatic || packs[0] == PackGeneric) {
		packs = []string{PackPHP}
	}
	b := newBuilder(spec, dir)
	b.res.Packs = packs
	// A build is reused when everything that goes into it is unchanged;
	// a tree of static files or a generic app has nothing to reuse.
	reuse := spec.EnvsDir != "" && hasBuildStep(packs)
	var key string
	var before treeSnapshot
	b.rep.Step(detectedStep(0, packs[0]))
	announced := 1
	if reuse {
		if key, err = b.buildKey(ctx, packs); err != nil {
			return Result{}, err
		}
		if !spec.NoCache {
			for i := announced; i < len(packs); i++ {
				b.rep.Step(detectedStep(i, packs[i]))
			}
			announced = len(packs)
			res, ok, err := b.reuseBuild(ctx, key)
			if err != nil {
				return Result{}, fmt.Errorf("build %s app: %w", packs[0], err)
			}
			if ok {
				return res, nil
			}
		}
		if before, err = snapshotTree(dir); err != nil {
			return Result{}, fmt.Errorf("build %s app: %w", packs[0], err)
		}
	}
	for i, pack := range packs {
		if i >= announced {
			b.rep.Step(detectedStep(i, pack))
		}
		switch pack {
		case PackPython:
			err = b.buildPython(ctx)
		case PackNode:
			err = b.buildNode(ctx)
		case PackGo:
			err = b.buildGo(ctx)
		case PackRust:
			err = b.buildRust(ctx)
		case PackPHP:
			err = b.buildPHP(ctx)
		case PackJava:
			err = b.buildJava(ctx)
		case PackRuby:
			err = b.buildRuby(ctx)
		case PackStatic, PackGeneric:
			b.rep.Info("Nothing to build")
		}
		if err != nil {
			return Result{}, fmt.Errorf("build %s app: %w", pack, err)
		}
	}
	b.finishEnv()
	if reuse {
		b.saveBuild(ctx, key, before)
	}
	return b.res, nil
}

// detectedStep is the progress line that names pack, the i-th detected.
func detectedStep(i int, pack string) string {
	switch pack {
	case PackPython:
		return "Python app detected"
	case PackNode:
		if i == 0 {
			return "Node.js app detected"
		}
		return "Node.js front end detected (package.json)"
	case PackGo:
		return "Go app detected"
	case PackRust:
		return "Rust app detected"
	case PackPHP:
		return "PHP app detected"
	case PackJava:
		return "Java app detected"
	case PackRuby:
		return "Ruby app detected"
	case PackStatic:
		return "Static site detected"
	}
	return "Generic app detected (Procfile)"
}

// builder carries the state of one Build.
type builder struct {
	spec Spec
	dir  string // absolute release directory
	rep  Reporter
	out  io.Writer
	// env is the environment of the build tools: the server's environment,
	// then Spec.Env, then what earlier packs added (a Node front end build
	// sees the Python virtualenv).
	env map[string]string
	// basePath is the PATH that runtime PATH prefixes are put in front of.
	basePath string
	// pathPrefix lists runtime PATH directories, in order.
	pathPrefix []string
	res        Result

	// Toolchains found for this build, asked once: the build key needs
	// them before the packs run.
	node     *nodeToolchain
	python   *interpreter
	goVer    string
	cargoVer string
	phpVer   string
	java     *javaTools
}

func newBuilder(spec Spec, dir string) *builder {
	rep := spec.Report
	if rep == nil {
		rep = nopReporter{}
	}
	out := rep.Output()
	if out == nil {
		out = io.Discard
	}
	env := CleanEnv(os.Environ())
	if spec.As != nil && spec.As.Credential != nil {
		env["PATH"] = reachablePath(env["PATH"], spec.As.Credential)
	}
	home := spec.Home
	if home == "" && spec.CacheDir != "" {
		home = filepath.Join(spec.CacheDir, "home")
	}
	if home != "" {
		env["HOME"] = home
	}
	if spec.TempDir != "" {
		env["TMPDIR"] = spec.TempDir
	}
	serverPath := env["PATH"]
	for k, v := range spec.Env {
		env[k] = v
	}
	// A PATH config var written as "/opt/tools/bin:$PATH" means the
	// server's PATH after the app's directories.
	if p, ok := spec.Env["PATH"]; ok {
		p = strings.ReplaceAll(p, "${PATH}", serverPath)
		env["PATH"] = strings.ReplaceAll(p, "$PATH", serverPath)
	}
	return &builder{
		spec:     spec,
		dir:      dir,
		rep:      rep,
		out:      out,
		env:      env,
		basePath: env["PATH"],
		res:      Result{Env: make(map[string]string)},
	}
}

// addRuntimeEnv records a runtime variable and makes later build steps see it
// too, unless the app set the variable itself.
func (b *builder) addRuntimeEnv(key, value string) {
	if _, ok := b.spec.Env[key]; ok {
		return
	}
	b.setRuntimeEnv(key, value)
}

// setRuntimeEnv records a runtime variable the app cannot override, because
// it names what this build made (VIRTUAL_ENV, NODE_PATH).
func (b *builder) setRuntimeEnv(key, value string) {
	b.res.Env[key] = value
	b.env[key] = value
}

// addRuntimePath puts dir on the runtime PATH, after the directories added
// before it, and on the PATH of later build steps.
func (b *builder) addRuntimePath(dir string) {
	b.pathPrefix = append(b.pathPrefix, dir)
	b.env["PATH"] = joinPath(append(append([]string(nil), b.pathPrefix...), b.basePath)...)
}

func (b *builder) finishEnv() {
	if len(b.pathPrefix) > 0 {
		b.res.Env["PATH"] = joinPath(append(append([]string(nil), b.pathPrefix...), b.basePath)...)
	}
}

func joinPath(parts ...string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, string(os.PathListSeparator))
}

// envStore is the store of environments in dir for this build.
func (b *builder) envStore(dir string) envStore {
	return envStore{dir: dir, as: b.spec.As, shared: sharedStore{dir: b.spec.SharedObjects, log: b.spec.Log}}
}

func (b *builder) hit(name string) {
	b.res.CacheHits = append(b.res.CacheHits, name)
}

// has reports whether the release directory holds the regular file name.
func (b *builder) has(name string) bool {
	info, err := os.Stat(filepath.Join(b.dir, name))
	return err == nil && info.Mode().IsRegular()
}

// since formats the time elapsed since start for progress lines.
func since(start time.Time) string {
	d := time.Since(start)
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

type nopReporter struct{}

func (nopReporter) Step(string)       {}
func (nopReporter) Info(string)       {}
func (nopReporter) Output() io.Writer { return io.Discard }
