package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"hop3/gitserver"
	"hop3/internal/piku"
)

// importPiku moves the apps of a piku installation into the running hop3:
// `hop3 import-piku PIKU_ROOT [--dry-run] [--apps a,b]`.
func importPiku(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import-piku", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", envDefault("root", defaultRoot()), "hop3's state directory (HOP3_ROOT); hop3 must be running on it")
	dryRun := fs.Bool("dry-run", false, "say what would be done, change nothing")
	only := fs.String("apps", "", "import only these apps, comma separated")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hop3 import-piku PIKU_ROOT [--dry-run] [--apps APP,...] [--root DIR]")
		fmt.Fprintln(stderr, "PIKU_ROOT is piku's directory, usually /home/piku/.piku")
		fs.PrintDefaults()
	}
	// Flags may come before or after PIKU_ROOT.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return &exitError{code: 2}
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return &exitError{code: 2}
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	hopRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	apps, err := piku.Scan(ctx, pos[0], piku.Options{
		Only:    names,
		DataDir: func(app string) string { return filepath.Join(hopRoot, "data", app) },
	})
	if err != nil {
		return err
	}
	if len(apps) == 0 {
		return fmt.Errorf("no apps in %s", filepath.Join(pos[0], "repos"))
	}
	im := &piku.Importer{
		Daemon: controlDaemon{root: hopRoot},
		Root:   hopRoot,
		Stdout: stdout,
		Stderr: stderr,
		DryRun: *dryRun,
	}
	outcomes := im.Import(ctx, apps)
	failed := 0
	var summary []string
	for _, o := range outcomes {
		if o.Status == "failed" {
			failed++
		}
		if o.App != "" {
			summary = append(summary, o.App+": "+o.Status)
		} else {
			summary = append(summary, o.Status+": "+o.Reason)
		}
	}
	fmt.Fprintf(stderr, "-----> %s\n", strings.Join(summary, ", "))
	if *dryRun {
		fmt.Fprintln(stderr, "       dry run: nothing was changed")
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d app(s) not imported", failed)}
	}
	return nil
}

// controlDaemon runs commands on the daemon through <root>/control.sock,
// as an admin, exactly as `hop3 COMMAND` does.
type controlDaemon struct{ root string }

func (d controlDaemon) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var env []string
	if v, ok := os.LookupEnv("NO_COLOR"); ok {
		env = append(env, "NO_COLOR="+v)
	}
	return gitserver.LocalCommand(filepath.Join(d.root, "control.sock"), filepath.Join(d.root, "ssh", "host_ed25519"),
		args, strings.NewReader(""), stdout, stderr, env)
}
