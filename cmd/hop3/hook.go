package main

import (
	"io"
	"os"

	"hop3/hooks"
)

// hook runs a git hook on behalf of the daemon: git runs `hop3 hook
// pre-receive` during a push (see hooks.RunPreReceive). It is not meant to
// be typed by people, so it is not in the usage text.
func hook(args []string, stdin io.Reader, stderr io.Writer) error {
	if len(args) != 1 || args[0] != "pre-receive" {
		return usageError("usage: hop3 hook pre-receive (run by git during a push)")
	}
	if code := hooks.RunPreReceive(stdin, os.Environ(), stderr); code != 0 {
		return &exitError{code: code}
	}
	return nil
}
