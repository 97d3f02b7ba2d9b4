package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// DebianPackages names the Debian package that brings each tool a pack
// cannot build without, by the tool's default name: the toolchains come
// from the system. Debian's maven package brings a JRE only, so javac is
// asked for on its own; ruby-bundler brings ruby and bundle. hop3 doctor
// lists the same packages.
var DebianPackages = map[string]string{
	"cargo":    "cargo",
	"php":      "php-cli",
	"composer": "composer",
	"ruby":     "ruby-bundler",
	"bundle":   "ruby-bundler",
	"javac":    "default-jdk-headless",
	"mvn":      "maven",
	"gradle":   "gradle",
}

// toolMissing is the line a build fails with when tool (a default name of
// DebianPackages) is not there; false for a tool with no such line.
func toolMissing(tool string) (string, bool) {
	pkg, ok := DebianPackages[tool]
	if !ok {
		return "", false
	}
	get := fmt.Sprintf("install Debian's %s package (apt-get install %s)", pkg, pkg)
	switch tool {
	case "cargo":
		return "cargo is not installed for the build: " + get + " or a rustup toolchain on PATH", true
	case "ruby", "bundle":
		return "ruby and bundler are not installed for the build: " + get, true
	case "gradle":
		return "gradle is not installed for the build: commit the project's gradlew, or " + get, true
	}
	return tool + " is not installed for the build: " + get, true
}

// need finds a tool the pack cannot build without, as tool does (configured,
// else def on the build's PATH). A tool that is not there is the one line
// of toolMissing for def, followed by what the lookup found in brackets.
func (b *builder) need(configured, def string) (string, error) {
	p, err := b.tool(configured, def)
	if msg, ok := toolMissing(def); ok && errors.Is(err, errNotFound) {
		return "", fmt.Errorf("%s (%v)", msg, err)
	}
	return p, err
}

// cachePath is the absolute path of name in the build's CacheDir, where a
// tool keeps what the next push reuses; "" for a build without one.
func (b *builder) cachePath(name string) (string, error) {
	if b.spec.CacheDir == "" {
		return "", nil
	}
	dir, err := filepath.Abs(b.spec.CacheDir)
	if err != nil {
		return "", fmt.Errorf("locate the build cache: %w", err)
	}
	return filepath.Join(dir, name), nil
}

// toolEnv is the environment a pack runs its tools in: the build's, with
// each variable of caches naming its directory in CacheDir, so a push that
// changes little downloads and compiles little. cached is false for a
// build without a CacheDir, which leaves the tools their own defaults.
func (b *builder) toolEnv(caches map[string]string) (env map[string]string, cached bool, err error) {
	env = withEnv(b.env, nil)
	if b.spec.CacheDir == "" {
		return env, false, nil
	}
	for name, dir := range caches {
		if env[name], err = b.cachePath(dir); err != nil {
			return nil, false, err
		}
	}
	return env, true, nil
}

// askVersion runs argv in env and keeps what it answers in *version, once
// per build: the build key asks before the pack runs. name is the tool as
// an error names it.
func (b *builder) askVersion(ctx context.Context, version *string, env map[string]string, name string, argv ...string) error {
	if *version != "" {
		return nil
	}
	v, err := output(ctx, b.cred(), env, b.dir, argv...)
	if err != nil {
		return fmt.Errorf("ask %s its version: %w", name, err)
	}
	*version = v
	return nil
}
