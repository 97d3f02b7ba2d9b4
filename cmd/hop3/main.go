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
	"slices"
	"strings"

	"hop3/gitserver"
	"hop3/internal/layout"
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
  keys add NAME             allow the public keys on stdin (--role admin|deployer, --apps a,b)
  keys list                 list allowed keys
  keys remove NAME          remove a key
  setup --domain D          write /etc/hop3/hop3.env, the settings of the installed service
  doctor                    check this server: Caddy, tools, disk, ports, DNS, clock, database
  import-piku PIKU_ROOT     move piku's apps, keys and data into the running hop3 (--dry-run first;
                            --data, --keys deployer|admin|none, --rename OLD=NEW)
  version                   print hop3's version

Every command takes --root DIR (HOP3_ROOT), the state directory, before or
after the command name. HOP3_* settings
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
	args, root, err := globalFlags(args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	// A local command parses --root itself: hand it the value given
	// before the command name, after the name (and after the keys verb).
	local := func(skip int) []string {
		rest := args[1:]
		if root == "" {
			return rest
		}
		skip = min(skip, len(rest))
		return append(append(slices.Clone(rest[:skip]), "--root="+root), rest[skip:]...)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, local(0), stdout, stderr)
	case "keys":
		return keys(ctx, local(1), stdin, stdout, stderr)
	case "setup":
		return setup(ctx, local(0), stdout, stderr)
	case "doctor":
		return doctorCmd(ctx, local(0), stdout, stderr)
	case "import-piku":
		return importPiku(ctx, local(0), stdout, stderr)
	case "hook":
		return hook(args[1:], stdin, stderr)
	case "serve-static":
		return serveStatic(ctx, args[1:], stderr)
	case "sandbox-exec":
		return sandboxExec(args[1:])
	case "version", "--version":
		fmt.Fprintln(stdout, "hop3 "+version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		if len(args) == 1 {
			daemonHelp(stdout, root)
		}
		return nil
	}
	args, after, err := daemonRoot(args)
	if err != nil {
		return err
	}
	if after != "" {
		root = after
	}
	return daemonCommand(ctx, root, args, stdin, stdout, stderr)
}

// globalFlags takes the flags every command accepts (--root DIR, or
// --root=DIR) from before the command name.
func globalFlags(args []string) (rest []string, root string, err error) {
	for len(args) > 0 {
		v, n, ok, err := rootFlag(args)
		if err != nil {
			return nil, "", err
		}
		if !ok {
			break
		}
		root, args = v, args[n:]
	}
	return args, root, nil
}

// rootFlag reads --root DIR or --root=DIR at the start of args and says
// how many arguments it took.
func rootFlag(args []string) (root string, n int, ok bool, err error) {
	switch a := args[0]; {
	case a == "--root" || a == "-root":
		if len(args) < 2 {
			return "", 0, false, usageError("--root needs a directory")
		}
		return args[1], 2, true, nil
	case strings.HasPrefix(a, "--root=") || strings.HasPrefix(a, "-root="):
		_, v, _ := strings.Cut(a, "=")
		return v, 1, true, nil
	}
	return "", 0, false, nil
}

// daemonRoot takes --root from a daemon command's arguments, after the
// command name, as local commands accept it there. The daemon's commands
// have no flag of that name. It stops at "--", and for run at the app:
// what follows is the command to run, passed as it is.
func daemonRoot(args []string) (rest []string, root string, err error) {
	rest = []string{args[0]}
	for i := 1; i < len(args); i++ {
		if args[i] == "--" || (args[0] == "run" && !strings.HasPrefix(args[i], "-")) {
			rest = append(rest, args[i:]...)
			break
		}
		v, n, ok, err := rootFlag(args[i:])
		if err != nil {
			return nil, "", err
		}
		if ok {
			root, i = v, i+n-1
			continue
		}
		rest = append(rest, args[i])
	}
	return rest, root, nil
}

// daemonCommand runs a command on the running daemon through its control
// socket, with the caller's streams, and ends with the command's status.
func daemonCommand(ctx context.Context, root string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if root == "" {
		root = envDefault("root", defaultRoot())
	}
	if len(args) == 0 {
		return usageError("usage: hop3 [--root DIR] COMMAND [APP] [ARGS...]")
	}
	sock := layout.New(root).Control()
	if _, err := os.Stat(sock); err != nil {
		return fmt.Errorf("hop3 is not running on %s (no %s): start it with 'hop3 serve'", root, sock)
	}
	var env []string
	if v, ok := os.LookupEnv("NO_COLOR"); ok {
		env = append(env, "NO_COLOR="+v)
	}
	code, err := gitserver.LocalCommand(sock, layout.New(root).HostKey(), args, stdin, stdout, stderr, env)
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
func daemonHelp(stdout io.Writer, root string) {
	if root == "" {
		root = envDefault("root", defaultRoot())
	}
	sock := layout.New(root).Control()
	if _, err := os.Stat(sock); err != nil {
		return
	}
	var out strings.Builder
	code, err := gitserver.LocalCommand(sock, layout.New(root).HostKey(), []string{"help"}, strings.NewReader(""), &out, io.Discard, nil)
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
