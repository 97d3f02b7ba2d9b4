package commands

import (
	"context"
	"fmt"

	"hop3/gitserver"
	"hop3/runtime/supervisor"
)

// runOneOff runs `run APP -- COMMAND...`. Nothing after APP is read as a
// flag of hop3's: `run APP ls -la` works as well as `run APP -- ls -la`.
func (inv *invocation) runOneOff(ctx context.Context, c *command, args []string) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		return errHelp
	}
	if len(args) == 0 || args[0] == "--" {
		return usagef(c, "missing APP")
	}
	name, argv := args[0], args[1:]
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return usagef(c, "missing COMMAND")
	}
	a, err := inv.app(ctx, c, name)
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet", a.Name)
	}
	return inv.runIn(ctx, a.Name, argv)
}

// runIn runs argv in the app's live release: on the client's terminal under
// ssh -t, on the session's streams otherwise. Its exit status ends the
// command.
func (inv *invocation) runIn(ctx context.Context, app string, argv []string) error {
	var code int
	var err error
	if inv.pty != nil {
		resize := make(chan supervisor.WinSize, 1)
		go func() {
			defer close(resize)
			for w := range inv.pty.Resize {
				resize <- supervisor.WinSize{Cols: w.Cols, Rows: w.Rows}
			}
		}()
		size := supervisor.WinSize{Cols: inv.pty.Size.Cols, Rows: inv.pty.Size.Rows}
		code, err = inv.d.cfg.Backend.RunTerminal(ctx, app, argv, sessionTerm{inv.term}, inv.pty.Term, size, resize)
	} else {
		code, err = inv.d.cfg.Backend.RunOneOff(ctx, app, argv, inv.stdin, inv.stdout, inv.stderr)
	}
	if err != nil {
		return fmt.Errorf("run in %s: %w", app, err)
	}
	return exitCode(code)
}

// sessionTerm is a session's terminal: keystrokes in, screen out (the pty
// on the server side does the line discipline, so no newline rewriting).
type sessionTerm struct{ s *gitserver.Session }

func (t sessionTerm) Read(p []byte) (int, error)  { return t.s.Stdin.Read(p) }
func (t sessionTerm) Write(p []byte) (int, error) { return t.s.Stdout.Write(p) }
