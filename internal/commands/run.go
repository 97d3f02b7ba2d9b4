package commands

import (
	"context"
	"fmt"
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
	code, err := inv.d.cfg.Backend.RunOneOff(ctx, a.Name, argv, inv.stdin, inv.stdout, inv.stderr)
	if err != nil {
		return fmt.Errorf("run in %s: %w", a.Name, err)
	}
	return exitCode(code)
}
