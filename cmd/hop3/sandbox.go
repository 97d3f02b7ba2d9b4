package main

import (
	"errors"
	"io/fs"
	"log/slog"
	"os/exec"

	"hop3/runtime/sandbox"
)

// sandboxExecArgv is the argv prefix with which the supervisor wraps an app
// process: hop3 runs itself as sandbox-exec. /proc/self/exe is the running
// binary even after an upgrade replaced the file, and reaching it needs no
// search right on the directory it was installed in.
var sandboxExecArgv = []string{"/proc/self/exe", "sandbox-exec"}

// sandboxExec is hop3 sandbox-exec [--ro|--rx|--rw PATH]... -- COMMAND
// [ARGS...], not listed in the usage: it confines itself with Landlock and
// replaces itself with the command, which keeps hop3's pid, environment,
// working directory, open files and process group, so its exit status and
// signals are the command's own. A kernel without Landlock runs the command
// unconfined. Failing before the command runs exits 127 when it was not
// found and 126 otherwise, as a shell does.
func sandboxExec(args []string) error {
	p, argv, err := sandbox.ParseArgs(args)
	if err != nil {
		return usageError("sandbox-exec: %v", err)
	}
	err = sandbox.Exec(p, argv)
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	return &exitError{code: code, msg: "sandbox-exec: " + err.Error()}
}

// sandboxWrapper is the supervisor's SandboxExec for --sandbox mode: the
// wrapper when the kernel offers Landlock (auto), nil otherwise. It says
// once, at start, which it is; a kernel without Landlock is a warning,
// never a reason not to run the apps.
func sandboxWrapper(mode string, logger *slog.Logger) ([]string, error) {
	switch mode {
	case "off":
		logger.Warn("sandbox off (--sandbox off): app processes' file access is not confined by Landlock", "component", "hop3")
		return nil, nil
	case "auto":
	default:
		return nil, usageError("bad --sandbox %q: want auto or off", mode)
	}
	abi := sandbox.InForce()
	if abi == 0 {
		logger.Warn("Landlock missing (Linux 5.13+ with Landlock enabled): app processes run unconfined; uid separation alone holds", "component", "hop3")
		return nil, nil
	}
	logger.Info("app processes confined with Landlock", "component", "hop3", "abi", abi)
	return sandboxExecArgv, nil
}
