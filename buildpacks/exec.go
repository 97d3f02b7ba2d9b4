package buildpacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// waitDelay bounds how long a finished or killed tool may keep its output
// pipes open through a child it left behind.
const waitDelay = 5 * time.Second

// command describes one run of an external tool. Arguments go to the tool
// as argv, never through a shell.
type command struct {
	label string // names the step in errors, e.g. "uv pip install"
	dir   string
	env   map[string]string
	argv  []string
	// stdout receives the tool's standard output; nil sends it to the
	// reporter's output with standard error.
	stdout io.Writer
	// stderr receives the tool's standard error; nil sends it to the
	// reporter's output.
	stderr io.Writer
	// as, when non-nil, runs the tool as this user.
	as *syscall.Credential
}

// run starts the tool in its own process group, so that cancelling ctx kills
// the tool and everything it spawned (pip's build backends, npm's scripts).
// The error is one line: "<label> failed (exit status 1)".
func (b *builder) run(ctx context.Context, c command) error {
	c.as = b.cred()
	return runCommand(ctx, c, b.out)
}

// cred is the user build tools run as; nil runs them as hop3's user.
func (b *builder) cred() *syscall.Credential {
	if b.spec.As == nil {
		return nil
	}
	return b.spec.As.Credential
}

func runCommand(ctx context.Context, c command, out io.Writer) error {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Dir = c.dir
	if c.as != nil && c.dir == "" {
		// hop3's own working directory may be closed to the app's user.
		cmd.Dir = "/"
	}
	cmd.Env = environ(c.env)
	cmd.Stdout = out
	if c.stdout != nil {
		cmd.Stdout = c.stdout
	}
	cmd.Stderr = out
	if c.stderr != nil {
		cmd.Stderr = c.stderr
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.as}
	cmd.Cancel = func() error {
		// The negative pid addresses the whole process group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s interrupted: %w", c.label, ctxErr)
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return fmt.Errorf("%s failed (%v)", c.label, exitErr)
	}
	return fmt.Errorf("%s failed: %w", c.label, err)
}

// output runs a short query (a version check) and returns its trimmed
// standard output. Its standard error is kept out of the build log and
// returned in the error instead, on one line.
func output(ctx context.Context, as *syscall.Credential, env map[string]string, dir string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := runCommand(ctx, command{
		label:  filepath.Base(argv[0]),
		dir:    dir,
		env:    env,
		argv:   argv,
		stdout: &stdout,
		stderr: &stderr,
		as:     as,
	}, io.Discard)
	if err != nil {
		if line := firstLine(stderr.String()); line != "" {
			return "", fmt.Errorf("%w: %s", err, line)
		}
		return "", err
	}
	return strings.TrimSpace(stdout.String()), nil
}

func firstLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return ""
}

// environ turns env into the sorted KEY=value list exec expects.
func environ(env map[string]string) []string {
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// withEnv returns a copy of base with extra set on top.
func withEnv(base map[string]string, extra map[string]string) map[string]string {
	env := make(map[string]string, len(base)+len(extra))
	for k, v := range base {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// errNotFound tells that a tool is not installed.
var errNotFound = errors.New("tool not found")

// lookTool resolves a tool: configured (a path or a name) or, when that is
// empty, def, searched on pathList. It returns an absolute path.
func lookTool(configured, def, pathList string) (string, error) {
	name := configured
	if name == "" {
		name = def
	}
	if strings.ContainsRune(name, os.PathSeparator) {
		abs, err := filepath.Abs(name)
		if err != nil {
			return "", err
		}
		if !isExecutable(abs) {
			return "", fmt.Errorf("%w: %s is missing or not executable", errNotFound, abs)
		}
		return abs, nil
	}
	for _, dir := range filepath.SplitList(pathList) {
		if dir == "" || !filepath.IsAbs(dir) {
			// A relative PATH entry would depend on the build's working
			// directory, which is the pushed tree.
			continue
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s is not on PATH", errNotFound, name)
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// tool resolves a tool against the build environment's PATH.
func (b *builder) tool(configured, def string) (string, error) {
	p, err := lookTool(configured, def, b.env["PATH"])
	if err == nil && !usable(p, b.cred()) {
		return "", fmt.Errorf("%w: %s cannot be run by the app's user", errNotFound, p)
	}
	return p, err
}
