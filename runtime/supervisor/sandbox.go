package supervisor

import (
	"slices"

	"hop3/runtime/sandbox"
)

// wrapSandbox returns the path and argv that run spec's command, resolved
// to path: the command itself, or, when spec has a Sandbox and a wrapper is
// configured, the wrapper with the sandbox's paths and the command. The
// wrapper execs the command in place, so the pid, process group and exit
// status stay the command's.
func wrapSandbox(spec *Spec, sandboxExec []string, path string) (string, []string) {
	if spec.Sandbox == nil || len(sandboxExec) == 0 {
		return path, slices.Clone(spec.Command)
	}
	sb := spec.Sandbox
	p := sandbox.Policy{ReadOnly: sb.ReadOnly, ReadExec: sb.ReadExec, ReadWrite: sb.ReadWrite, Shared: sb.Shared}
	args := slices.Concat(sandboxExec, p.Args(), []string{"--", path}, spec.Command[1:])
	return sandboxExec[0], args
}
