package buildpacks

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// buildGo compiles every main package of the module into <Dir>/bin, each
// binary named after its package directory (the module's last path element
// for a main package at the root), which the Procfile then runs as
// bin/<name>. Modules come through the Go module proxy into CacheDir/go-mod;
// compiled packages are kept in CacheDir/go-build, so a push that changes
// little compiles little. VCS stamping is off because the release directory
// need not be a repository git can read.
func (b *builder) buildGo(ctx context.Context) error {
	goTool, env, version, err := b.goToolchain(ctx)
	if err != nil {
		return err
	}
	b.rep.Info("Using " + version)

	bin := filepath.Join(b.dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("create bin: %w", err)
	}
	if b.spec.As != nil {
		// go build, run as the app's user, writes the binaries.
		if err := b.spec.As.Give(bin); err != nil {
			return err
		}
	}
	before := binaries(bin)
	b.rep.Step("Building Go binaries into bin/")
	start := time.Now()
	// The trailing separator makes -o a directory, which lets go build
	// write one binary per main package.
	if err := b.run(ctx, command{label: "go build", dir: b.dir, env: env,
		argv: []string{goTool, "build", "-buildvcs=false", "-o", bin + string(os.PathSeparator), "./..."}}); err != nil {
		return err
	}
	var built []string
	for name := range binaries(bin) {
		if !before[name] {
			built = append(built, "bin/"+name)
		}
	}
	if len(built) == 0 {
		b.rep.Info("No main package found: nothing was written to bin/")
	} else {
		slices.Sort(built)
		b.rep.Info(fmt.Sprintf("Built %s in %s", strings.Join(built, ", "), since(start)))
	}
	b.addRuntimePath(bin)
	return nil
}

// binaries lists the executable files in dir.
func binaries(dir string) map[string]bool {
	found := make(map[string]bool)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return found
	}
	for _, e := range entries {
		if isExecutable(filepath.Join(dir, e.Name())) {
			found[e.Name()] = true
		}
	}
	return found
}

// goToolchain finds go and the environment to run it in, and asks its
// version, once per build.
func (b *builder) goToolchain(ctx context.Context) (goTool string, env map[string]string, version string, err error) {
	goTool, err = b.tool(b.spec.Tools.Go, "go")
	if err != nil {
		return "", nil, "", err
	}
	env, _, err = b.toolEnv(map[string]string{"GOCACHE": "go-build", "GOMODCACHE": "go-mod"})
	if err != nil {
		return "", nil, "", err
	}
	// The go command finds its own GOROOT from its location; a GOROOT
	// inherited from the server could belong to another toolchain.
	delete(env, "GOROOT")
	if _, set := b.spec.Env["GOROOT"]; set {
		env["GOROOT"] = b.spec.Env["GOROOT"]
	}
	if err := b.askVersion(ctx, &b.goVer, env, "go", goTool, "env", "GOVERSION"); err != nil {
		return "", nil, "", err
	}
	return goTool, env, b.goVer, nil
}
