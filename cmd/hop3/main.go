// Command hop3 is a git push-to-deploy server: `hop3 serve` runs the daemon,
// the other subcommands administer it on the same machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"hop3/gitserver"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// exitError carries an exit status and a message for the user.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func usageError(format string, a ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, a...)}
}

const usage = `usage: hop3 COMMAND [ARGS...]

commands:
  serve                     run the daemon (SSH git server, process manager, Caddy)
  keys add NAME             allow the public key on stdin (--role admin|deployer, --apps a,b)
  keys list                 list allowed keys
  keys remove NAME          remove a key
  setup --domain D          write /etc/hop3/hop3.env, the settings of the installed service
  doctor                    check this server: Caddy, tools, disk, ports, DNS, clock, database
  import-piku PIKU_ROOT     move piku's apps into the running hop3 (--dry-run first)
  version                   print hop3's version

Every command takes --root (HOP3_ROOT), the state directory. HOP3_* settings
not in the environment are read from /etc/hop3/hop3.env (HOP3_CONFIG).

Any other COMMAND runs on the running daemon, through <root>/control.sock,
exactly as 'ssh hop3@HOST COMMAND [APP] [ARGS...]' would, with admin rights:
  hop3 [--root DIR] COMMAND [APP] [ARGS...]     e.g. hop3 apps, hop3 config:set myapp K=V
'hop3 help' lists them when the daemon is running.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "hop3: "+ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "hop3: "+err.Error())
	return 1
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "keys":
		return keys(ctx, args[1:], stdin, stdout, stderr)
	case "setup":
		return setup(ctx, args[1:], stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, args[1:], stdout, stderr)
	case "import-piku":
		return importPiku(ctx, args[1:], stdout, stderr)
	case "sandbox-exec":
		return sandboxExec(args[1:])
	case "version", "--version":
		fmt.Fprintln(stdout, "hop3 "+version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		if len(args) == 1 {
			daemonHelp(stdout)
		}
		return nil
	}
	return daemonCommand(ctx, args, stdin, stdout, stderr)
}

// daemonCommand runs a command on the running daemon through its control
// socket, with the caller's streams, and ends with the command's status.
func daemonCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := envDefault("root", defaultRoot())
	switch {
	case args[0] == "--root" && len(args) > 1:
		root, args = args[1], args[2:]
	case strings.HasPrefix(args[0], "--root="):
		root, args = strings.TrimPrefix(args[0], "--root="), args[1:]
	}
	if len(args) == 0 {
		return usageError("usage: hop3 [--root DIR] COMMAND [APP] [ARGS...]")
	}
	sock := filepath.Join(root, "control.sock")
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("hop3 is not running on %s (no %s): start it with 'hop3 serve'", root, sock)
	}
	var env []string
	if v, ok := os.LookupEnv("NO_COLOR"); ok {
		env = append(env, "NO_COLOR="+v)
	}
	code, err := gitserver.LocalCommand(sock, filepath.Join(root, "ssh", "host_ed25519"), args, stdin, stdout, stderr, env)
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// daemonHelp appends the daemon's list of commands to the local usage, when
// a daemon is running on the default root.
func daemonHelp(stdout io.Writer) {
	root := envDefault("root", defaultRoot())
	sock := filepath.Join(root, "control.sock")
	if _, err := os.Stat(sock); err != nil {
		return
	}
	var out strings.Builder
	code, err := gitserver.LocalCommand(sock, filepath.Join(root, "ssh", "host_ed25519"), []string{"help"}, strings.NewReader(""), &out, io.Discard, nil)
	if err != nil || code != 0 {
		return
	}
	fmt.Fprintf(stdout, "\nCommands of the daemon running on %s:\n\n%s", root, out.String())
}

// envDefault returns the HOP3_* environment variable for a flag, else its
// value in the installed service's config file (see configFile), or def.
func envDefault(name, def string) string {
	key := "HOP3_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	if v, ok := configFileValue(key); ok {
		return v
	}
	return def
}

func defaultRoot() string {
	if os.Geteuid() == 0 {
		return "/var/lib/hop3"
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".hop3"
	}
	return filepath.Join(home, ".hop3")
}

// findTool locates a helper binary: beside hop3 in ../.tools/bin (where the
// setup script installs Caddy and uv), else on PATH. It returns name itself
// when not found, so the error names it when it is used.
func findTool(name string) string {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "..", ".tools", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p)
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}
