package doctor

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"hop3/buildpacks"
	"hop3/internal/ui"
)

// Toolchain is a build tool that apps of one language need, and where
// Debian has it.
type Toolchain struct {
	Name string
	// Commands are the program names to look for, first found wins.
	Commands []string
	// VersionArgs make the program print its version.
	VersionArgs []string
	// Package is the Debian package; where Debian has none, Package says
	// how to get the tool instead.
	Package string
	// Find, when set, finds the program instead of Commands, where the
	// build owns the search (php-fpm, also looked for outside PATH).
	Find func() (string, error)
}

// Toolchains are the build tools `hop3 doctor` lists. None is required:
// an app whose toolchain is missing fails its build with a line naming the
// package.
var Toolchains = []Toolchain{
	{Name: "python3", Commands: []string{"python3"}, VersionArgs: []string{"--version"}, Package: "python3"},
	{Name: "uv", Commands: []string{"uv"}, VersionArgs: []string{"--version"}, Package: "scripts/setup.sh"},
	{Name: "node", Commands: []string{"node"}, VersionArgs: []string{"--version"}, Package: "nodejs"},
	{Name: "npm", Commands: []string{"npm"}, VersionArgs: []string{"--version"}, Package: "npm"},
	{Name: "corepack", Commands: []string{"corepack"}, VersionArgs: []string{"--version"}, Package: "nodejs"},
	{Name: "go", Commands: []string{"go"}, VersionArgs: []string{"version"}, Package: "golang-go"},
	{Name: "cargo", Commands: []string{"cargo"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["cargo"]},
	// javac, not java: Debian's maven brings a JRE, which builds nothing.
	{Name: "javac", Commands: []string{"javac"}, VersionArgs: []string{"-version"}, Package: buildpacks.DebianPackages["javac"]},
	{Name: "mvn", Commands: []string{"mvn"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["mvn"]},
	{Name: "gradle", Commands: []string{"gradle"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["gradle"]},
	{Name: "ruby", Commands: []string{"ruby"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["ruby"]},
	{Name: "bundler", Commands: []string{"bundle"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["bundle"]},
	{Name: "php-fpm", VersionArgs: []string{"-v"}, Package: "php-fpm",
		Find: func() (string, error) { return buildpacks.FindPHPFPM("", os.Getenv("PATH")) }},
	{Name: "composer", Commands: []string{"composer"}, VersionArgs: []string{"--version"}, Package: buildpacks.DebianPackages["composer"]},
}

// toolchainTimeout bounds each version query: a JVM tool can take seconds
// to start, and doctor must stay quick.
const toolchainTimeout = 10 * time.Second

// versionLineRe finds the line of a tool's output that carries its version
// (composer, run as root, first warns about it; gradle opens with a rule).
var versionLineRe = regexp.MustCompile(`\d+\.\d+`)

// ListToolchains reports each of Toolchains, found or not, as an info line
// named "toolchain:<name>":
// the version and path of what was found, or the package to install. The
// versions are asked all at once. configured maps a toolchain's name to the
// program hop3 was told to use (HOP3_UV), which is then the one listed.
func ListToolchains(ctx context.Context, sys System, configured map[string]string) []Result {
	out := make([]Result, len(Toolchains))
	var wg sync.WaitGroup
	for i, tc := range Toolchains {
		if p := configured[tc.Name]; p != "" {
			tc.Commands, tc.Find = []string{p}, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = toolchain(ctx, sys, tc)
		}()
	}
	wg.Wait()
	return out
}

func toolchain(ctx context.Context, sys System, tc Toolchain) Result {
	name := "toolchain:" + tc.Name
	c := checker{sys: sys}
	var path string
	for _, cmd := range tc.Commands {
		if p, found := c.find(cmd); found {
			path = p
			break
		}
	}
	if tc.Find != nil {
		if p, err := tc.Find(); err == nil {
			path = p
		}
	}
	if path == "" {
		get := tc.Package
		if !strings.ContainsAny(get, " /") {
			get = "apt-get install " + get
		}
		return Result{Name: name, Verdict: Info, Detail: "not found (" + get + ")"}
	}
	ctx, cancel := context.WithTimeout(ctx, toolchainTimeout)
	defer cancel()
	text, err := sys.Exec(ctx, path, tc.VersionArgs...)
	version := versionLine(text)
	switch {
	case err != nil && version == "":
		version = "version unknown: " + ui.OneLine(err.Error())
	case version == "":
		version = "version unknown"
	}
	return Result{Name: name, Verdict: Info, Detail: fmt.Sprintf("%s (%s)", version, path)}
}

// versionLine is the first line of out that holds a version number.
func versionLine(out string) string {
	for _, l := range strings.Split(ui.StripANSI(out), "\n") {
		if l = strings.TrimSpace(l); versionLineRe.MatchString(l) {
			return l
		}
	}
	return ""
}
