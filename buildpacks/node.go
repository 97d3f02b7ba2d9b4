package buildpacks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// packageJSON holds the parts of package.json a build looks at.
type packageJSON struct {
	Engines              map[string]any    `json:"engines"`
	Scripts              map[string]string `json:"scripts"`
	Dependencies         json.RawMessage   `json:"dependencies"`
	DevDependencies      json.RawMessage   `json:"devDependencies"`
	OptionalDependencies json.RawMessage   `json:"optionalDependencies"`
	PeerDependencies     json.RawMessage   `json:"peerDependencies"`
	BundleDependencies   json.RawMessage   `json:"bundleDependencies"`
	Overrides            json.RawMessage   `json:"overrides"`
	Workspaces           json.RawMessage   `json:"workspaces"`
	PackageManager       string            `json:"packageManager"`
}

// hasDevDependencies reports whether there is anything for npm prune to
// remove.
func (p packageJSON) hasDevDependencies() bool {
	var deps map[string]any
	return json.Unmarshal(p.DevDependencies, &deps) == nil && len(deps) > 0
}

func readPackageJSON(dir string) (packageJSON, error) {
	var pkg packageJSON
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return pkg, fmt.Errorf("read package.json: %w", err)
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return pkg, fmt.Errorf("parse package.json: %w", err)
	}
	return pkg, nil
}

// installScripts are the root package's lifecycle scripts that npm runs on
// install. The shared environment is installed without them (they may need
// the app's files), so the build runs them itself, in the release directory.
var installScripts = []string{"preinstall", "install", "postinstall", "prepare"}

// buildNode installs the app's Node.js dependencies and runs its build
// script.
//
// With a lockfile (package-lock.json or npm-shrinkwrap.json) the dependency
// tree is an environment of the store, named by a hash of the lockfile, the
// dependency fields of package.json, .npmrc, the Node.js and npm versions
// and the platform: `npm ci` runs once per set of inputs, in the
// environment's own directory, and every release that needs that tree gets a
// symbolic link, <Dir>/node_modules -> <env>/node_modules. Node resolves
// modules through the link to the shared tree. Without a lockfile, or for an
// npm workspace or a lockfile with local (file: or linked) packages, whose
// install needs the app's own files, `npm install` or `npm ci` runs in the
// release directory every time, with npm's cache.
//
// Dev dependencies are installed only when package.json has a build script,
// which usually needs them. The build then runs against a tree of hard links
// to that environment, inside the release directory (Turbopack, Next.js's
// bundler, refuses modules outside the project's root), and the release is
// linked afterwards to a second environment holding the same tree without
// the dev dependencies, so the app runs with what `npm ci --omit=dev` would
// give it. NODE_ENV is production for the build and at run time unless the
// app sets it.
func (b *builder) buildNode(ctx context.Context) error {
	pkg, err := readPackageJSON(b.dir)
	if err != nil {
		return err
	}
	tc, err := b.nodeToolchain(ctx)
	if err != nil {
		return err
	}
	warnings, err := checkNodeVersion(tc.nodeVersion, pkg, b.spec.Env["NODE_VERSION"])
	if err != nil {
		return err
	}
	for _, w := range warnings {
		b.rep.Info(w)
	}
	b.rep.Info("Using Node.js " + tc.nodeVersion)

	b.addRuntimeEnv("NODE_ENV", "production")
	env := withEnv(b.env, nil)
	cacheDir := ""
	if b.spec.CacheDir != "" {
		if cacheDir, err = filepath.Abs(b.spec.CacheDir); err != nil {
			return err
		}
		env["npm_config_cache"] = filepath.Join(cacheDir, "npm")
		env["YARN_CACHE_FOLDER"] = filepath.Join(cacheDir, "yarn")
	}
	env["npm_config_update_notifier"] = "false"
	env["npm_config_fund"] = "false"
	env["npm_config_audit"] = "false"
	// npm runs scripts with the node on PATH; make that the node we
	// checked.
	env["PATH"] = joinPath(filepath.Dir(tc.node), env["PATH"])

	hasBuild := strings.TrimSpace(pkg.Scripts["build"]) != ""
	include := "--omit=dev"
	if hasBuild {
		include = "--include=dev"
	}
	pm, notes, err := choosePM(pkg.PackageManager, b.has, func(name string) ([]byte, error) {
		data, err := os.ReadFile(filepath.Join(b.dir, name))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		return data, nil
	})
	if err != nil {
		return err
	}
	for _, n := range notes {
		b.rep.Info(n)
	}
	if cacheDir != "" {
		pm.storeDir = filepath.Join(cacheDir, "pnpm-store")
	}
	if pm.berry {
		for k, v := range pm.berryEnv(cacheDir) {
			if _, set := b.spec.Env[k]; !set || k == "YARN_NODE_LINKER" || k == "YARN_IGNORE_PATH" {
				env[k] = v
			}
		}
	}
	// pnpm hard links from its store when it can; an environment built as
	// the app's user is handed to hop3 afterwards, and a hard link would
	// hand over the store's file too.
	pm.copy = b.spec.As != nil
	lockfile := pm.lockfile
	modules := filepath.Join(b.dir, "node_modules")
	npm := tc.npm

	shared := false
	var lock []byte
	if lockfile != "" {
		lock, err = os.ReadFile(filepath.Join(b.dir, lockfile))
		if err != nil {
			return fmt.Errorf("read %s: %w", lockfile, err)
		}
		if b.spec.EnvsDir != "" {
			read := func(name string) []byte {
				data, _ := os.ReadFile(filepath.Join(b.dir, name))
				return data
			}
			if why := pm.sharedBlocker(pkg, lock, b.has, read); why != "" {
				b.rep.Info(why)
			} else {
				shared = true
			}
		}
	}

	if !shared {
		if err := b.nodeModulesInRelease(ctx, env, npm, pm, hasBuild); err != nil {
			return err
		}
		if hasBuild {
			if err := b.runNodeBuild(ctx, env, npm); err != nil {
				return err
			}
			if pkg.hasDevDependencies() {
				argv := []string{npm, "prune", "--omit=dev"}
				label := "npm prune"
				if pm.name != "npm" {
					argv, label = pm.installArgv(npm, false), pm.name+" install"
				}
				if err := b.run(ctx, command{label: label, dir: b.dir, env: env, argv: argv}); err != nil {
					return err
				}
			}
		}
	} else {
		if err := os.RemoveAll(modules); err != nil {
			return fmt.Errorf("remove committed node_modules: %w", err)
		}
		in := nodeEnvInputs{pkg: pkg, pm: pm, lockfile: lockfile, lock: lock, include: include, tc: tc}
		buildEnv, err := b.nodeEnv(ctx, env, in)
		if err != nil {
			return err
		}
		runEnv := buildEnv
		if hasBuild && pkg.hasDevDependencies() && pm.name != "npm" {
			// pnpm's and Yarn's lockfiles do not say where each package
			// lands: the package manager installs the tree again without
			// the dev dependencies, from its cache.
			prod := in
			prod.include = "--omit=dev"
			if runEnv, err = b.nodeEnv(ctx, env, prod); err != nil {
				return err
			}
		} else if hasBuild && pkg.hasDevDependencies() {
			if runEnv, err = b.prunedNodeEnv(ctx, in, buildEnv); err != nil {
				return err
			}
		}
		scripts := rootInstallScripts(pkg)
		if hasBuild || len(scripts) > 0 {
			// Build tools and install scripts get a tree of their own inside
			// the project: what they write there does not reach the shared
			// environment, and is not kept.
			if err := b.buildModules(ctx, filepath.Join(buildEnv, "node_modules"), modules); err != nil {
				return fmt.Errorf("link node_modules for the build: %w", err)
			}
			for _, name := range scripts {
				if err := b.run(ctx, command{label: "npm run " + name, dir: b.dir, env: env,
					argv: []string{npm, "run", name}}); err != nil {
					return err
				}
			}
			if hasBuild {
				if err := b.runNodeBuild(ctx, env, npm); err != nil {
					return err
				}
			}
			if err := os.RemoveAll(modules); err != nil {
				return fmt.Errorf("remove the build's node_modules: %w", err)
			}
		}
		target := filepath.Join(runEnv, "node_modules")
		if err := os.Symlink(target, modules); err != nil {
			return fmt.Errorf("link node_modules: %w", err)
		}
		b.rep.Info("node_modules -> " + target)
	}

	b.setRuntimeEnv("NODE_PATH", modules)
	b.addRuntimePath(filepath.Join(modules, ".bin"))
	return nil
}

// localPackageRe finds lockfile entries that npm installs from the app's own
// tree: links (workspaces, file: directories) and file: tarballs.
var localPackageRe = regexp.MustCompile(`"link":\s*true|"resolved":\s*"file:`)

func hasWorkspaces(pkg packageJSON) bool {
	w := strings.TrimSpace(string(pkg.Workspaces))
	return w != "" && w != "null" && w != "[]" && w != "{}"
}

// rootInstallScripts lists the install lifecycle scripts package.json
// defines, in the order npm runs them.
func rootInstallScripts(pkg packageJSON) []string {
	var names []string
	for _, name := range installScripts {
		if strings.TrimSpace(pkg.Scripts[name]) != "" {
			names = append(names, name)
		}
	}
	return names
}

func (b *builder) runNodeBuild(ctx context.Context, env map[string]string, npm string) error {
	b.rep.Step("Running npm run build")
	start := time.Now()
	if err := b.run(ctx, command{label: "npm run build", dir: b.dir, env: env,
		argv: []string{npm, "run", "build"}}); err != nil {
		return err
	}
	b.rep.Info("Build finished in " + since(start))
	return nil
}

// nodeModulesInRelease installs node_modules into the release directory.
func (b *builder) nodeModulesInRelease(ctx context.Context, env map[string]string, npm string, pm nodePM, dev bool) error {
	start := time.Now()
	argv := pm.installArgv(npm, dev)
	label := pm.label()
	if pm.lockfile == "" {
		b.rep.Step("Installing dependencies with npm install (no package-lock.json)")
	} else {
		b.rep.Step(fmt.Sprintf("Installing dependencies with %s (%s)", label, pm.lockfile))
	}
	if err := b.run(ctx, command{label: label, dir: b.dir, env: env, argv: argv}); err != nil {
		return err
	}
	b.rep.Info("Dependencies installed in " + since(start))
	return nil
}

// nodeEnvInputs is what a node_modules environment is made from.
type nodeEnvInputs struct {
	pkg      packageJSON
	pm       nodePM
	lockfile string
	lock     []byte
	include  string
	tc       nodeToolchain
}

// key names the environment; variant tells apart trees made from the same
// inputs (the pruned tree).
func (in nodeEnvInputs) key(npmrc []byte, variant string) string {
	k := newKeyHash("node-modules")
	k.add(in.tc.nodeVersion, in.tc.npmVersion, runtime.GOOS, runtime.GOARCH, in.include, in.lockfile, variant)
	if in.pm.name != "" && in.pm.name != "npm" {
		k.add(in.pm.name, in.pm.version)
	}
	k.addBytes(in.lock)
	k.addBytes(npmrc)
	for _, field := range []json.RawMessage{in.pkg.Dependencies, in.pkg.DevDependencies, in.pkg.OptionalDependencies,
		in.pkg.PeerDependencies, in.pkg.BundleDependencies, in.pkg.Overrides, in.pkg.Workspaces} {
		k.addBytes(field)
	}
	return k.sum("node")
}

// nodeEnv returns the environment holding the locked dependency tree,
// installing it with npm ci when the store does not hold it yet.
func (b *builder) nodeEnv(ctx context.Context, env map[string]string, in nodeEnvInputs) (string, error) {
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		return "", err
	}
	store := b.envStore(envsDir)
	npmrc, err := os.ReadFile(filepath.Join(b.dir, ".npmrc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read .npmrc: %w", err)
	}
	files := map[string][]byte{}
	if npmrc != nil {
		files[".npmrc"] = npmrc
	}
	for _, name := range in.pm.configFiles() {
		if name == ".npmrc" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(b.dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("read %s: %w", name, err)
		}
		if data != nil {
			// Only pnpm's and Yarn's keys see these files: npm's keys are
			// those they always were.
			npmrc = append(append(npmrc, 0), data...)
			files[name] = data
		}
	}
	key := in.key(npmrc, "")
	if path, ok := store.complete(key); ok && !b.spec.NoCache {
		b.rep.Step(fmt.Sprintf("Reusing node_modules (%s unchanged)", in.lockfile))
		b.hit("node-modules")
		b.res.Envs = append(b.res.Envs, path)
		return path, nil
	}
	label := in.pm.label()
	argv := in.pm.installArgv(in.tc.npm, in.include == "--include=dev")
	if in.pm.name == "" {
		label, argv = "npm ci", []string{in.tc.npm, "ci", in.include}
	}
	b.rep.Step(fmt.Sprintf("Installing dependencies with %s (%s)", label, in.lockfile))
	start := time.Now()
	manifest, err := installManifest(b.dir)
	if err != nil {
		return "", err
	}
	meta := map[string]string{
		"kind":     "node-modules",
		"app":      b.spec.App,
		"node":     in.tc.nodeVersion,
		"npm":      in.tc.npmVersion,
		"lockfile": in.lockfile,
		"created":  time.Now().UTC().Format(time.RFC3339),
	}
	path, err := store.create(key, b.spec.NoCache, meta, func(tmp, final string) error {
		files["package.json"], files[in.lockfile] = manifest, in.lock
		for name, data := range files {
			if err := writeNew(filepath.Join(tmp, name), data); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
			// Yarn 2 and later write the manifest back in their own
			// layout; the environment is handed to hop3 afterwards.
			if u := b.cred(); u != nil && in.pm.berry {
				if err := os.Lchown(filepath.Join(tmp, name), int(u.Uid), int(u.Gid)); err != nil {
					return fmt.Errorf("write %s: %w", name, err)
				}
			}
		}
		return b.run(ctx, command{label: label, dir: tmp, env: env, argv: argv})
	}, func(tmp, final string) error {
		// A release links to <env>/node_modules even when nothing was
		// installed.
		if err := os.Mkdir(filepath.Join(tmp, "node_modules"), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	b.rep.Info("Dependencies installed in " + since(start))
	b.res.Envs = append(b.res.Envs, path)
	return path, nil
}

// prunedNodeEnv returns the environment holding full's tree without its dev
// dependencies, which the lockfile marks ("dev": true), as `npm prune
// --omit=dev` would remove them. hop3 makes it itself, of hard links to
// full's files, so that no tool of the app runs for it. A lockfile of npm 6
// and before (lockfileVersion 1) marks nothing usable: the app then runs
// with its dev dependencies.
func (b *builder) prunedNodeEnv(ctx context.Context, in nodeEnvInputs, full string) (string, error) {
	dev, ok := devPackages(in.lock)
	if !ok {
		b.rep.Info(in.lockfile + " is older than npm 7's: the app keeps its dev dependencies")
		return full, nil
	}
	store := envStore{dir: filepath.Dir(full)}
	npmrc, err := os.ReadFile(filepath.Join(full, ".npmrc"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read .npmrc: %w", err)
	}
	key := in.key(npmrc, "omit-dev")
	if path, ok := store.complete(key); ok && !b.spec.NoCache {
		b.res.Envs = append(b.res.Envs, path)
		return path, nil
	}
	meta := map[string]string{
		"kind":    "node-modules",
		"app":     b.spec.App,
		"from":    filepath.Base(full),
		"omit":    "dev",
		"created": time.Now().UTC().Format(time.RFC3339),
	}
	// npm's record of what it installed would still list the dev
	// packages; npm reads the lockfile when it is missing.
	hidden := filepath.Join("node_modules", ".package-lock.json")
	path, err := store.create(key, b.spec.NoCache, meta, func(tmp, final string) error {
		err := cloneTree(ctx, full, tmp, cloneOpts{hardLink: true, skip: func(rel string) bool {
			return dev[rel] || rel == markerFile || rel == hidden
		}})
		if err != nil {
			return err
		}
		return removeDanglingBins(tmp)
	}, nil)
	if err != nil {
		return "", fmt.Errorf("leave out the dev dependencies: %w", err)
	}
	b.res.Envs = append(b.res.Envs, path)
	return path, nil
}

// devPackages lists where the lockfile installs packages needed only in
// development ("node_modules/kleur"), and reports false for a lockfile
// without a "packages" section.
func devPackages(lock []byte) (map[string]bool, bool) {
	var l struct {
		Packages map[string]struct {
			Dev bool `json:"dev"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &l); err != nil || l.Packages == nil {
		return nil, false
	}
	dev := map[string]bool{}
	for path, p := range l.Packages {
		if p.Dev && path != "" && filepath.IsLocal(path) {
			dev[filepath.FromSlash(path)] = true
		}
	}
	return dev, true
}

// removeDanglingBins removes the links of .bin directories whose package
// was left out.
func removeDanglingBins(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 || filepath.Base(filepath.Dir(p)) != ".bin" {
			return nil
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			return os.Remove(p)
		}
		return nil
	})
}

// buildModules makes modules a tree of hard links to src for the build.
// It is assembled in the environment store, which is hop3's alone, and moved
// into the release in one step: the release may be the app's, which could
// otherwise swap a directory for a link while hop3 fills it. Its
// directories are the building user's, so that tools may add their caches,
// but the files stay the store's: nobody may write them in place.
func (b *builder) buildModules(ctx context.Context, src, modules string) error {
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		return err
	}
	stage, err := os.MkdirTemp(envsDir, "build-modules"+tmpInfix)
	if err != nil {
		return err
	}
	defer removeAll(stage)
	staged := filepath.Join(stage, "node_modules")
	if err := cloneTree(ctx, src, staged, cloneOpts{hardLink: true, dirOwner: b.cred()}); err != nil {
		return err
	}
	return os.Rename(staged, modules)
}

// installManifest returns the app's package.json without the install
// lifecycle scripts, which may need the app's files: npm ci runs in the
// environment's directory, which holds only the manifest and the lockfile.
func installManifest(dir string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return nil, fmt.Errorf("read package.json: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse package.json: %w", err)
	}
	var scripts map[string]json.RawMessage
	if raw, ok := m["scripts"]; ok && json.Unmarshal(raw, &scripts) == nil {
		for _, name := range installScripts {
			delete(scripts, name)
		}
		raw, err := json.Marshal(scripts)
		if err != nil {
			return nil, fmt.Errorf("write package.json: %w", err)
		}
		m["scripts"] = raw
	}
	return json.MarshalIndent(m, "", "  ")
}

// nodeToolchain is the node and npm a build uses.
type nodeToolchain struct {
	node, npm               string
	nodeVersion, npmVersion string
}

// nodeToolchain finds node and npm and asks their versions, once per build.
func (b *builder) nodeToolchain(ctx context.Context) (nodeToolchain, error) {
	if b.node != nil {
		return *b.node, nil
	}
	var tc nodeToolchain
	var err error
	if tc.node, err = b.tool(b.spec.Tools.Node, "node"); err != nil {
		return tc, err
	}
	if tc.npm, err = b.tool(b.spec.Tools.NPM, "npm"); err != nil {
		return tc, err
	}
	v, err := output(ctx, b.cred(), b.env, b.dir, tc.node, "--version")
	if err != nil {
		return tc, fmt.Errorf("ask node its version: %w", err)
	}
	tc.nodeVersion = strings.TrimPrefix(v, "v")
	// npm is a node script: it must run on the node we checked.
	env := withEnv(b.env, map[string]string{"PATH": joinPath(filepath.Dir(tc.node), b.env["PATH"])})
	if tc.npmVersion, err = output(ctx, b.cred(), env, b.dir, tc.npm, "--version"); err != nil {
		return tc, fmt.Errorf("ask npm its version: %w", err)
	}
	b.node = &tc
	return tc, nil
}

// checkNodeVersion fails when the installed Node.js does not satisfy the
// app's engines.node or NODE_VERSION. A range it cannot read yields a
// warning instead: refusing to deploy over notation would help nobody.
func checkNodeVersion(version string, pkg packageJSON, nodeVersionVar string) ([]string, error) {
	v, err := parseSemver(version)
	if err != nil {
		return nil, fmt.Errorf("read node version %q: %w", version, err)
	}
	var warnings []string
	check := func(want, what string) error {
		want = strings.TrimSpace(want)
		if want == "" {
			return nil
		}
		ok, err := satisfies(v, want)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("Cannot check %s %q: %v", what, want, err))
			return nil
		}
		if !ok {
			//lint:ignore ST1005 the message starts with a product's name
			return fmt.Errorf("Node.js %s is installed but %s requires %q", version, what, want)
		}
		return nil
	}
	if want, ok := pkg.Engines["node"].(string); ok {
		if err := check(want, "engines.node in package.json"); err != nil {
			return nil, err
		}
	}
	if err := check(nodeVersionVar, "NODE_VERSION"); err != nil {
		return nil, err
	}
	return warnings, nil
}
