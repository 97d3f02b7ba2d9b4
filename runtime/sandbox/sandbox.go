// Package sandbox confines a process's access to the file system with
// Landlock (Linux 5.13 and later): it may read, execute or write only below
// the paths it is given, and the confinement passes to everything it runs.
// A kernel without Landlock confines nothing; Restrict then says so and
// lets the process run, because the sandbox is a second wall behind uid
// separation, not a reason to stop an app.
//
// A Go program cannot run code between fork and exec, so the confinement is
// applied by a small wrapper (hop3 sandbox-exec) that restricts itself and
// then replaces itself with the command: Args and ParseArgs are its command
// line, Exec its body.
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
)

// Policy lists the file hierarchies a confined process may reach; anything
// else is denied. Paths that do not exist, or that the process cannot
// reach as its user, grant nothing and are skipped.
type Policy struct {
	// ReadOnly: read files and list directories.
	ReadOnly []string
	// ReadExec: ReadOnly, and execute files.
	ReadExec []string
	// ReadWrite: ReadExec, and create, write, truncate, rename and remove
	// files, directories, sockets, fifos and symlinks. Device nodes can
	// never be created: a device node would let root reach a disk beneath
	// every rule.
	ReadWrite []string
	// Shared: read, write, create and remove files and unix sockets
	// directly in these directories, which hop3 shares with the process,
	// but make no link, directory or device there nor move anything in
	// from elsewhere. hop3's socket directory holds web.sock, the link
	// Caddy dials: an app that could re-point it would point Caddy at any
	// socket, Caddy's admin API included.
	Shared []string
}

// Landlock's access rights as hop3 grants them.
const (
	roFile landlock.AccessFSSet = ll.AccessFSReadFile
	roDir  landlock.AccessFSSet = roFile | ll.AccessFSReadDir
	rxFile landlock.AccessFSSet = roFile | ll.AccessFSExecute
	rxDir  landlock.AccessFSSet = roDir | ll.AccessFSExecute
	// IoctlDev lets a terminal opened by name (/dev/tty) be used as one.
	rwFile landlock.AccessFSSet = rxFile | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
	rwDir  landlock.AccessFSSet = rxDir | rwFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeDir |
		ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo | ll.AccessFSMakeSym
	// No MakeSym and no Refer: nothing can become a link there, by making
	// one or by moving one in.
	sharedFile landlock.AccessFSSet = roFile | ll.AccessFSWriteFile | ll.AccessFSTruncate
	sharedDir  landlock.AccessFSSet = sharedFile | ll.AccessFSReadDir | ll.AccessFSRemoveFile | ll.AccessFSMakeReg | ll.AccessFSMakeSock
)

// config is what hop3 asks of Landlock: every file system right up to ABI 8
// (the same set since ABI 5) and the IPC scopes of ABI 6, so a
// confined process can neither signal nor reach through an abstract unix
// socket a process outside its own sandbox (hop3, another app). The
// network is left alone. Newer ABIs restrict more (ABI 9: connecting to
// unix sockets by path), which apps may rely on; they are adopted once
// tested. BestEffort applies what the running kernel supports.
var config = landlock.Config{
	HandledAccessFS: landlock.V8.HandledAccessFS,
	Scoped:          landlock.V8.Scoped,
}.BestEffort()

// maxABI is the newest Landlock ABI whose rights hop3 asks for.
const maxABI = 8

// ABI returns the Landlock ABI version the running kernel offers, 0 when
// it has none (too old, or Landlock not enabled at boot).
func ABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

// InForce returns the Landlock ABI version Restrict applies on this kernel:
// the kernel's, capped at the newest hop3 asks for; 0 means no confinement.
func InForce() int { return min(ABI(), maxABI) }

// Restrict confines the calling process, all its threads and every process
// it starts from now on to p. It returns the ABI version in force, 0 when
// the kernel has no Landlock and nothing was confined (not an error).
func Restrict(p Policy) (int, error) {
	abi := InForce()
	if abi == 0 {
		return 0, nil
	}
	if err := config.Restrict(p.rules(abi)...); err != nil {
		return 0, fmt.Errorf("restrict with landlock: %w", err)
	}
	return abi, nil
}

// rules turns p into Landlock rules, with file rights alone on paths that
// are not directories (the kernel refuses directory rights on a file).
func (p Policy) rules(abi int) []landlock.Rule {
	rw := rwDir
	if abi >= 2 {
		// Moving a file between two writable directories (an upload from
		// TMPDIR into DATA_DIR) needs the refer right, which ABI 1 lacks.
		rw |= ll.AccessFSRefer
	}
	var rules []landlock.Rule
	add := func(paths []string, dir, file landlock.AccessFSSet) {
		for _, path := range paths {
			fi, err := os.Stat(path)
			if err != nil {
				// Missing, or out of this user's reach: granting
				// nothing is the safe side.
				continue
			}
			access := dir
			if !fi.IsDir() {
				access = file
			}
			rules = append(rules, landlock.PathAccess(access, path).IgnoreIfMissing())
		}
	}
	add(p.ReadOnly, roDir, roFile)
	add(p.ReadExec, rxDir, rxFile)
	add(p.ReadWrite, rw, rwFile)
	add(p.Shared, sharedDir, sharedFile)
	return rules
}

// Exec confines the process to p and replaces it with argv, keeping its
// pid, environment, working directory, open files and process group, so
// exit status and signals are the command's own. It returns only on error.
// A command without a slash is looked up in PATH, as a shell would.
func Exec(p Policy, argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return errors.New("no command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return err
	}
	if _, err := Restrict(p); err != nil {
		return err
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

// Args renders p as the options of hop3 sandbox-exec.
func (p Policy) Args() []string {
	var args []string
	for _, f := range []struct {
		flag  string
		paths []string
	}{{"--ro", p.ReadOnly}, {"--rx", p.ReadExec}, {"--rw", p.ReadWrite}, {"--shared", p.Shared}} {
		for _, path := range f.paths {
			args = append(args, f.flag, path)
		}
	}
	return args
}

// ParseArgs reads the options written by Args, then "--" and the command.
func ParseArgs(args []string) (Policy, []string, error) {
	var p Policy
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 == len(args) {
				return p, nil, errors.New("no command after --")
			}
			return p, slices.Clone(args[i+1:]), nil
		}
		var list *[]string
		switch a {
		case "--ro":
			list = &p.ReadOnly
		case "--rx":
			list = &p.ReadExec
		case "--rw":
			list = &p.ReadWrite
		case "--shared":
			list = &p.Shared
		default:
			return p, nil, fmt.Errorf("unknown option %q (want --ro, --rx, --rw or --shared PATH, then -- COMMAND)", a)
		}
		if i+1 == len(args) || args[i+1] == "" {
			return p, nil, fmt.Errorf("%s needs a path", a)
		}
		i++
		if args[i][0] != '/' {
			return p, nil, fmt.Errorf("%s %s: the path must be absolute", a, args[i])
		}
		*list = append(*list, args[i])
	}
	return p, nil, errors.New("no command: end the options with -- COMMAND")
}
