package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
)

// toolMissing is the line a build fails with when a tool its pack cannot
// do without is not there, by the tool's default name. The toolchains come
// from the system: each line names the Debian package that brings the
// tool. Debian's maven package brings a JRE only, so javac is asked for on
// its own.
var toolMissing = map[string]string{
	"cargo":    "cargo is not installed for the build: install Debian's cargo package (apt-get install cargo) or a rustup toolchain on PATH",
	"php":      "php is not installed for the build: install Debian's php-cli package (apt-get install php-cli)",
	"composer": "composer is not installed for the build: install Debian's composer package (apt-get install composer)",
	"ruby":     rubyMissing,
	"bundle":   rubyMissing,
	"javac":    "javac is not installed for the build: install Debian's default-jdk-headless package (apt-get install default-jdk-headless)",
	"mvn":      "mvn is not installed for the build: install Debian's maven package (apt-get install maven)",
	"gradle":   "gradle is not installed for the build: commit the project's gradlew, or install Debian's gradle package (apt-get install gradle)",
}

// rubyMissing is said for ruby and for bundle: Debian's ruby-bundler
// brings both.
const rubyMissing = "ruby and bundler are not installed for the build: install Debian's ruby-bundler package (apt-get install ruby-bundler)"

// need finds a tool the pack cannot build without, as tool does (configured,
// else def on the build's PATH). A tool that is not there is the one line
// of toolMissing for def, followed by what the lookup found in brackets.
func (b *builder) need(configured, def string) (string, error) {
	p, err := b.tool(configured, def)
	if msg, ok := toolMissing[def]; ok && errors.Is(err, errNotFound) {
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
