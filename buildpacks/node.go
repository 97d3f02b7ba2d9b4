package buildpacks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
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
// install. When node_modules comes from the cache, npm does not run, so the
// build runs them itself.
var installScripts = []string{"preinstall", "install", "postinstall", "prepare"}

// buildNode installs the app's Node.js dependencies into <Dir>/node_modules
// and runs its build script.
//
// With a lockfile (package-lock.json or npm-shrinkwrap.json) the tree comes
// from `npm ci` and is kept in the environment store, named by a hash of
// the lockfile, the dependency fields of package.json and the Node.js
// version; the next push with the same inputs copies it instead of running
// npm. Without a lockfile `npm install` runs every time, with npm's cache.
//
// Dev dependencies are installed only when package.json has a build script,
// which usually needs them; after the build, `npm prune --omit=dev` drops
// them from the release, so the app runs with what `npm ci --omit=dev`
// would give it. NODE_ENV is production for the build and at run time
// unless the app sets it.
func (b *builder) buildNode(ctx context.Context) error {
	pkg, err := readPackageJSON(b.dir)
	if err != nil {
		return err
	}
	node, err := b.tool(b.spec.Tools.Node, "node")
	if err != nil {
		return err
	}
	npm, err := b.tool(b.spec.Tools.NPM, "npm")
	if err != nil {
		return err
	}
	nodeVersion, err := output(ctx, b.cred(), b.env, b.dir, node, "--version")
	if err != nil {
		return fmt.Errorf("ask node its version: %w", err)
	}
	nodeVersion = strings.TrimPrefix(nodeVersion, "v")
	warnings, err := checkNodeVersion(nodeVersion, pkg, b.spec.Env["NODE_VERSION"])
	if err != nil {
		return err
	}
	for _, w := range warnings {
		b.rep.Info(w)
	}
	b.rep.Info("Using Node.js " + nodeVersion)

	b.addRuntimeEnv("NODE_ENV", "production")
	env := withEnv(b.env, nil)
	if b.spec.CacheDir != "" {
		cacheDir, err := filepath.Abs(b.spec.CacheDir)
		if err != nil {
			return err
		}
		env["npm_config_cache"] = filepath.Join(cacheDir, "npm")
	}
	env["npm_config_update_notifier"] = "false"
	env["npm_config_fund"] = "false"
	env["npm_config_audit"] = "false"
	// npm runs scripts with the node on PATH; make that the node we
	// checked.
	env["PATH"] = joinPath(filepath.Dir(node), env["PATH"])

	hasBuild := strings.TrimSpace(pkg.Scripts["build"]) != ""
	include := "--omit=dev"
	if hasBuild {
		include = "--include=dev"
	}
	lockfile := ""
	for _, name := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		if b.has(name) {
			lockfile = name
			break
		}
	}
	modules := filepath.Join(b.dir, "node_modules")

	if lockfile == "" {
		for _, other := range []string{"yarn.lock", "pnpm-lock.yaml"} {
			if b.has(other) {
				b.rep.Info(other + " is ignored: hop3 builds with npm; commit a package-lock.json")
			}
		}
		b.rep.Step("Installing dependencies with npm install (no package-lock.json)")
		start := time.Now()
		if err := b.run(ctx, command{label: "npm install", dir: b.dir, env: env,
			argv: []string{npm, "install", include}}); err != nil {
			return err
		}
		b.rep.Info("Dependencies installed in " + since(start))
	} else {
		if err := b.nodeModulesFromLock(ctx, env, npm, pkg, lockfile, nodeVersion, include, modules); err != nil {
			return err
		}
	}

	if hasBuild {
		b.rep.Step("Running npm run build")
		start := time.Now()
		if err := b.run(ctx, command{label: "npm run build", dir: b.dir, env: env,
			argv: []string{npm, "run", "build"}}); err != nil {
			return err
		}
		b.rep.Info("Build finished in " + since(start))
		if pkg.hasDevDependencies() {
			if err := b.run(ctx, command{label: "npm prune", dir: b.dir, env: env,
				argv: []string{npm, "prune", "--omit=dev"}}); err != nil {
				return err
			}
		}
	}

	b.setRuntimeEnv("NODE_PATH", modules)
	b.addRuntimePath(filepath.Join(modules, ".bin"))
	return nil
}

// nodeModulesFromLock puts the locked dependency tree into modules, from the
// environment store when it holds it, else with npm ci, saving the result
// there for the next push.
func (b *builder) nodeModulesFromLock(ctx context.Context, env map[string]string, npm string, pkg packageJSON, lockfile, nodeVersion, include, modules string) error {
	lock, err := os.ReadFile(filepath.Join(b.dir, lockfile))
	if err != nil {
		return fmt.Errorf("read %s: %w", lockfile, err)
	}
	k := newKeyHash("node-modules")
	k.add(nodeVersion, include, lockfile)
	k.addBytes(lock)
	for _, field := range []json.RawMessage{pkg.Dependencies, pkg.DevDependencies, pkg.OptionalDependencies,
		pkg.PeerDependencies, pkg.BundleDependencies, pkg.Overrides, pkg.Workspaces} {
		k.addBytes(field)
	}
	key := k.sum("node")

	var store envStore
	if b.spec.EnvsDir != "" {
		envsDir, err := filepath.Abs(b.spec.EnvsDir)
		if err != nil {
			return err
		}
		store = envStore{dir: envsDir, as: b.spec.As}
	}
	if err := os.RemoveAll(modules); err != nil {
		return fmt.Errorf("remove committed node_modules: %w", err)
	}

	var cached string
	var ok bool
	if store.dir != "" && !b.spec.NoCache {
		cached, ok = store.complete(key)
	}
	if ok {
		b.rep.Step(fmt.Sprintf("Reusing node_modules (%s unchanged)", lockfile))
		start := time.Now()
		src := filepath.Join(cached, "node_modules")
		if _, err := os.Stat(src); err == nil {
			if err := b.copyModules(ctx, src, modules); err != nil {
				os.RemoveAll(modules)
				return fmt.Errorf("copy cached node_modules: %w", err)
			}
		}
		b.hit("node-modules")
		b.res.Envs = append(b.res.Envs, cached)
		for _, name := range installScripts {
			if strings.TrimSpace(pkg.Scripts[name]) == "" {
				continue
			}
			if err := b.run(ctx, command{label: "npm run " + name, dir: b.dir, env: env,
				argv: []string{npm, "run", name}}); err != nil {
				return err
			}
		}
		b.rep.Info("node_modules copied in " + since(start))
		return nil
	}

	b.rep.Step(fmt.Sprintf("Installing dependencies with npm ci (%s)", lockfile))
	start := time.Now()
	if err := b.run(ctx, command{label: "npm ci", dir: b.dir, env: env,
		argv: []string{npm, "ci", include}}); err != nil {
		return err
	}
	b.rep.Info("Dependencies installed in " + since(start))
	if store.dir == "" {
		return nil
	}
	// Saved before the build step, which may write into node_modules.
	meta := map[string]string{
		"kind":     "node-modules",
		"app":      b.spec.App,
		"node":     nodeVersion,
		"lockfile": lockfile,
		"created":  time.Now().UTC().Format(time.RFC3339),
	}
	saved, err := store.create(key, b.spec.NoCache, meta, func(tmp, final string) error {
		if _, err := os.Lstat(modules); errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return b.copyModules(ctx, modules, filepath.Join(tmp, "node_modules"))
	}, nil)
	if err != nil {
		// The release itself is fine; only the next push loses a shortcut.
		b.rep.Info(fmt.Sprintf("Could not cache node_modules: %v", err))
		return nil
	}
	b.res.Envs = append(b.res.Envs, saved)
	return nil
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

// copyModules copies a node_modules tree. When the build runs as the app's
// user, so does the copy: the release it reads from or writes into is the
// app's, and hop3 must not follow a link the app put there.
func (b *builder) copyModules(ctx context.Context, src, dst string) error {
	if b.cred() == nil {
		return copyTree(ctx, src, dst)
	}
	return b.run(ctx, command{label: "copy node_modules", dir: b.dir, env: b.env,
		argv: []string{"cp", "-R", "--no-dereference", "--preserve=mode,timestamps,links", src, dst}})
}
