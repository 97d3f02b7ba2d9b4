package doctor

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
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
}

// Toolchains are the build tools `hop3 doctor` lists. None is required:
// an app whose toolchain is missing fails its build with a line naming the
// package.
var Toolchains = []Toolchain{
	{"python3", []string{"python3"}, []string{"--version"}, "python3"},
	{"uv", []string{"uv"}, []string{"--version"}, "scripts/setup.sh"},
	{"node", []string{"node"}, []string{"--version"}, "nodejs"},
	{"npm", []string{"npm"}, []string{"--version"}, "npm"},
	{"corepack", []string{"corepack"}, []string{"--version"}, "nodejs"},
	{"go", []string{"go"}, []string{"version"}, "golang-go"},
	{"cargo", []string{"cargo"}, []string{"--version"}, "cargo"},
	{"java", []string{"java"}, []string{"-version"}, "default-jdk-headless"},
	{"mvn", []string{"mvn"}, []string{"--version"}, "maven"},
	{"gradle", []string{"gradle"}, []string{"--version"}, "gradle"},
	{"ruby", []string{"ruby"}, []string{"--version"}, "ruby"},
	{"bundler", []string{"bundle"}, []string{"--version"}, "ruby-bundler"},
	{"php-fpm", []string{"php-fpm", "php-fpm8.2"}, []string{"-v"}, "php-fpm"},
	{"composer", []string{"composer"}, []string{"--version"}, "composer"},
}

// toolchainTimeout bounds each version query: a JVM tool can take seconds
// to start, and doctor must stay quick.
const toolchainTimeout = 10 * time.Second

// versionLineRe finds the line of a tool's output that carries its version
// (composer, run as root, first warns about it; gradle opens with a rule).
var versionLineRe = regexp.MustCompile(`\d+\.\d+`)

// ansiRe matches the colour codes some tools print even into a pipe
// (Maven).
var ansiRe = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

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
			tc.Commands = []string{p}
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
		version = "version unknown: " + oneLine(err)
	case version == "":
		version = "version unknown"
	}
	return Result{Name: name, Verdict: Info, Detail: fmt.Sprintf("%s (%s)", version, path)}
}

// versionLine is the first line of out that holds a version number.
func versionLine(out string) string {
	for _, l := range strings.Split(ansiRe.ReplaceAllString(out, ""), "\n") {
		if l = strings.TrimSpace(l); versionLineRe.MatchString(l) {
			return l
		}
	}
	return ""
}
