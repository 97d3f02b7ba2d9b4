package buildpacks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PackRust builds a Cargo package.
const PackRust = "rust"

// buildRust runs `cargo build --release` and copies the package's binaries
// into <Dir>/target/release, where the Procfile names them
// (web: target/release/NAME). The target directory is CacheDir/cargo-target
// and crates come into CacheDir/cargo-home: a push that changes little
// compiles little. With a Cargo.lock, the build is --locked: a lock that
// does not match Cargo.toml fails with cargo's message instead of being
// updated.
func (b *builder) buildRust(ctx context.Context) error {
	cargo, env, version, err := b.rustToolchain(ctx)
	if err != nil {
		return err
	}
	b.rep.Info("Using " + version)
	bins, err := b.cargoBins(ctx, cargo, env)
	if err != nil {
		return err
	}
	if len(bins) == 0 {
		//lint:ignore ST1005 the message starts with a file name, whose case matters
		return errors.New("Cargo.toml has no binary target to run")
	}

	argv := []string{cargo, "build", "--release"}
	if b.has("Cargo.lock") {
		argv = append(argv, "--locked")
	}
	b.rep.Step("Building with " + strings.Join(append([]string{"cargo"}, argv[1:]...), " "))
	start := time.Now()
	if err := b.run(ctx, command{label: "cargo build", dir: b.dir, env: env, argv: argv}); err != nil {
		return err
	}

	out := filepath.Join(b.dir, "target", "release")
	if b.spec.As != nil {
		// The copy runs as the app's user, into its own release.
		if err := b.run(ctx, command{label: "copy binaries", dir: b.dir, env: env,
			argv: []string{"mkdir", "-p", "--", out}}); err != nil {
			return err
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create target/release: %w", err)
	}
	var built []string
	for _, name := range bins {
		src := filepath.Join(env["CARGO_TARGET_DIR"], "release", name)
		if !isExecutable(src) {
			return fmt.Errorf("cargo build wrote no %s", src)
		}
		dst := filepath.Join(out, name)
		if err := b.run(ctx, command{label: "copy binaries", dir: b.dir, env: env,
			argv: []string{"cp", "-f", "--", src, dst}}); err != nil {
			return err
		}
		built = append(built, "target/release/"+name)
	}
	b.rep.Info(fmt.Sprintf("Built %s in %s", strings.Join(built, ", "), since(start)))
	b.addRuntimePath(out)
	return nil
}

// cargoBins lists the names of the root package's binary targets.
func (b *builder) cargoBins(ctx context.Context, cargo string, env map[string]string) ([]string, error) {
	var stdout bytes.Buffer
	if err := b.run(ctx, command{label: "cargo metadata", dir: b.dir, env: env,
		argv:   []string{cargo, "metadata", "--no-deps", "--format-version", "1"},
		stdout: &stdout}); err != nil {
		return nil, err
	}
	return binTargets(stdout.Bytes(), filepath.Join(b.dir, "Cargo.toml"))
}

// binTargets reads the binary targets of the package whose manifest is
// manifest from `cargo metadata` output (every member's, for a workspace
// root without a package).
func binTargets(metadata []byte, manifest string) ([]string, error) {
	var m struct {
		Packages []struct {
			ManifestPath string `json:"manifest_path"`
			Targets      []struct {
				Name string   `json:"name"`
				Kind []string `json:"kind"`
			} `json:"targets"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(metadata, &m); err != nil {
		return nil, fmt.Errorf("read cargo metadata: %w", err)
	}
	root := false
	for _, p := range m.Packages {
		root = root || p.ManifestPath == manifest
	}
	var bins []string
	for _, p := range m.Packages {
		if root && p.ManifestPath != manifest {
			continue
		}
		for _, t := range p.Targets {
			if slices.Contains(t.Kind, "bin") && !slices.Contains(bins, t.Name) {
				bins = append(bins, t.Name)
			}
		}
	}
	slices.Sort(bins)
	return bins, nil
}

// rustToolchain finds cargo, the environment to run it in, and its
// version, once per build.
func (b *builder) rustToolchain(ctx context.Context) (string, map[string]string, string, error) {
	cargo, err := b.need(b.spec.Tools.Cargo, "cargo")
	if err != nil {
		return "", nil, "", err
	}
	env, cached, err := b.toolEnv(map[string]string{"CARGO_HOME": "cargo-home", "CARGO_TARGET_DIR": "cargo-target"})
	if err != nil {
		return "", nil, "", err
	}
	if !cached {
		env["CARGO_TARGET_DIR"] = filepath.Join(b.dir, "target")
	}
	// A rustup proxy finds its toolchains under RUSTUP_HOME, by default in
	// HOME, which is the build's own: point it at hop3's.
	if _, set := b.spec.Env["RUSTUP_HOME"]; !set && isExecutable(filepath.Join(filepath.Dir(cargo), "rustup")) {
		if h := os.Getenv("RUSTUP_HOME"); h != "" {
			env["RUSTUP_HOME"] = h
		} else if home, err := os.UserHomeDir(); err == nil {
			env["RUSTUP_HOME"] = filepath.Join(home, ".rustup")
		}
	}
	if err := b.askVersion(ctx, &b.cargoVer, env, "cargo", cargo, "--version"); err != nil {
		return "", nil, "", err
	}
	return cargo, env, b.cargoVer, nil
}
