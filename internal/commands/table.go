package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one entry of the command table.
type command struct {
	name    string
	aliases []string
	group   string
	args    string // what follows the name in its usage line
	summary string // the one help line
	details string // more, for `help COMMAND`
	admin   bool   // admin keys only
	run     func(ctx context.Context, c *command, args []string) error
}

// synopsis is the usage line: name and arguments.
func (c *command) synopsis() string {
	if c.args == "" {
		return c.name
	}
	return c.name + " " + c.args
}

// Groups, in the order help lists them.
const (
	groupApps     = "Apps"
	groupConfig   = "Config vars"
	groupProcs    = "Processes"
	groupReleases = "Releases"
	groupDomains  = "Domains"
	groupKeys     = "Keys (admin keys only)"
	groupServer   = "Server"
)

var groupOrder = []string{groupApps, groupConfig, groupProcs, groupReleases, groupDomains, groupAddons, groupKeys, groupServer}

// commands builds the command table of this invocation: each entry's run
// closes over inv, so every session gets its own.
func (inv *invocation) commands() []*command {
	return append([]*command{
		{name: "apps", aliases: []string{"apps:list"}, group: groupApps, args: "[--json]",
			summary: "List apps with their state, live release and URL",
			details: "States: running, stopped, crashed (a process gave up restarting), not deployed (no release yet).\nA deployer key sees only its apps.",
			run:     inv.apps},
		{name: "create", aliases: []string{"apps:create"}, group: groupApps, args: "APP",
			summary: "Create an app without pushing to it",
			details: "App names are lowercase letters, digits and '-', starting with a letter.",
			run:     inv.create},
		{name: "destroy", aliases: []string{"apps:destroy"}, group: groupApps, args: "APP [--confirm APP] [--purge]",
			summary: "Stop and remove an app (asks for its name to be typed)",
			details: "Removes the app's processes, route, repository, releases, config and domains.\nIts DATA_DIR is kept unless --purge.\n\nOptions:\n  --confirm APP   confirm without being asked (the app's name again)\n  --purge         also remove the app's DATA_DIR",
			run:     inv.destroy},
		{name: "deploy", aliases: []string{"ps:rebuild"}, group: groupApps, args: "[--no-cache] APP",
			summary: "Build and deploy the app's current revision again",
			details: "Options:\n  --no-cache   rebuild dependency environments from scratch",
			run:     inv.deploy},

		{name: "config", aliases: []string{"config:list", "config:show"}, group: groupConfig, args: "[--json] APP",
			summary: "Show the app's config vars",
			details: "Values with newlines or other control characters are shown quoted; config:get\nand --json give them exactly.",
			run:     inv.config},
		{name: "config:get", group: groupConfig, args: "APP KEY",
			summary: "Print one config var's value, exactly as stored",
			run:     inv.configGet},
		{name: "config:set", group: groupConfig, args: "[--no-restart] APP KEY=VALUE ...",
			summary: "Set config vars and restart the app with them",
			details: "Values are stored exactly as given: quotes, '$', '=', spaces, newlines, unicode.\nThe app restarts with zero downtime and without a rebuild.\nssh joins its arguments with spaces, so quote a value with spaces twice:\n  ssh hop3@HOST config:set myapp \"GREETING='hello world'\"\n\nOptions:\n  --no-restart   store the change; it applies at the next restart or deploy",
			run:     inv.configSet},
		{name: "config:unset", group: groupConfig, args: "[--no-restart] APP KEY ...",
			summary: "Remove config vars and restart the app without them",
			details: "Options:\n  --no-restart   store the change; it applies at the next restart or deploy",
			run:     inv.configUnset},
		{name: "config:live", group: groupConfig, args: "[--json] APP",
			summary: "Show the environment the app's processes run with",
			details: "The merged environment: system values, buildpack additions, the repository's\n.env, config vars, and hop3's own (APP, DATA_DIR); per-process values such as\nPORT are not included.",
			run:     inv.configLive},

		{name: "ps", aliases: []string{"ps:report"}, group: groupProcs, args: "[--json] APP",
			summary: "Show the app's processes: state, pid, uptime, restarts, memory, CPU",
			details: "Memory (resident) and CPU time are summed over each process's process group.",
			run:     inv.ps},
		{name: "ps:scale", group: groupProcs, args: "APP KIND=N|auto ...",
			summary: "Set how many processes of each kind run (wsgi/asgi: Granian workers)",
			details: "KIND must be a process of the live release's Procfile; N is 0 to 32.\nA count given to a wsgi/asgi entry pins its workers; auto hands them back to the worker budget.\nKinds not named keep running untouched; the change applies with zero downtime.",
			run:     inv.psScale},
		{name: "restart", aliases: []string{"ps:restart"}, group: groupProcs, args: "APP",
			summary: "Restart the app's processes with zero downtime, without a rebuild",
			run:     inv.restart},
		{name: "stop", aliases: []string{"ps:stop"}, group: groupProcs, args: "APP",
			summary: "Stop every process of the app; its URL answers with a stopped page",
			run:     inv.stop},
		{name: "start", aliases: []string{"ps:start"}, group: groupProcs, args: "APP",
			summary: "Start a stopped app's live release",
			run:     inv.start},
		{name: "logs", group: groupProcs, args: "APP [-n N] [-f] [--process KIND]",
			summary: "Show the last lines of the app's process logs; -f follows them",
			details: "Each line starts with the time hop3 read it (UTC), its process and the\nrelease and generation that wrote it, \"2026-03-04T04:06:07.891Z web.1 v3.7 | \",\nso old and new processes are told apart during a deploy; the processes'\nlines are merged in time order. With -f new lines appear as they are\nwritten, until the session ends. Set ACCESS_LOG=1 to log every request of a\nwsgi or asgi app.\n\nOptions:\n  -n N             lines per process (default 100)\n  -f               follow\n  --process KIND   only this kind of process (piku's `logs APP KIND` works too)",
			run:     inv.logs},
		{name: "run", group: groupProcs, args: "APP -- COMMAND [ARGS...]",
			summary: "Run a command in the app's live release and environment",
			details: "stdin, stdout and stderr are passed through; the command's exit status is the\nexit status of ssh. The command is not run through a shell: use\n  ssh hop3@HOST run myapp -- sh -c \"'echo \\$DATA_DIR'\"\nfor one (ssh joins its arguments with spaces, hence the double quoting).",
			run:     inv.runOneOff},

		{name: "releases", group: groupReleases, args: "[--json] APP",
			summary: "List the app's deploys: release number, revision, time, who pushed, status",
			details: "Every deploy is numbered (d1, d2, ...); only one that went live takes a release\nnumber (v1, v2, ...), so a failed deploy uses up none. A release whose directory\nwas removed (KEEP_RELEASES) reads \"(pruned)\" and can not be rolled back to.",
			run:     inv.releases},
		{name: "releases:info", group: groupReleases, args: "APP vN|dN",
			summary: "Show one release (vN) or deploy (dN, e.g. a failed one) and its build log",
			run:     inv.releasesInfo},
		{name: "rollback", aliases: []string{"releases:rollback"}, group: groupReleases, args: "APP [vN]",
			summary: "Switch back to an earlier release (default: the one before the live one)",
			details: "No rebuild: the earlier release's build is started and traffic switches to it\nwith zero downtime. Config vars are today's.",
			run:     inv.rollback},

		{name: "domains", aliases: []string{"domains:list", "domains:report"}, group: groupDomains, args: "[--json] APP",
			summary: "List the host names the app answers at",
			run:     inv.domains},
		{name: "domains:add", group: groupDomains, args: "APP HOST ...",
			summary: "Make the app answer at more host names",
			details: "Hosts are DNS names, optionally starting with \"*.\" (one label). A host another\napp answers at is refused.",
			run:     inv.domainsAdd},
		{name: "domains:remove", group: groupDomains, args: "APP HOST ...",
			summary: "Stop answering at host names added with domains:add",
			run:     inv.domainsRemove},

		{name: "keys", aliases: []string{"keys:list"}, group: groupKeys, args: "[--json]", admin: true,
			summary: "List the SSH keys allowed in",
			run:     inv.keys},
		{name: keysAddSpec.name, group: groupKeys, args: keysAddSpec.args, admin: true,
			summary: "Allow the public keys on stdin",
			details: keysAddSpec.details,
			run:     inv.keysAdd},
		{name: "keys:remove", group: groupKeys, args: "NAME", admin: true,
			summary: "Remove a key",
			run:     inv.keysRemove},

		{name: "events", group: groupServer, args: "[-n N] [-f] [APP]",
			summary: "Show recent events: deploys, config changes, scaling, restarts, keys",
			details: "Options:\n  -n N   how many (default 50)\n  -f     keep printing new events as they happen",
			run:     inv.events},
		{name: "version", group: groupServer,
			summary: "Show the versions of hop3, Caddy and Granian",
			run:     inv.version},
		{name: "help", group: groupServer, args: "[COMMAND]",
			summary: "List the commands, or show one in detail",
			run:     inv.help},
	}, inv.addonCommands()...)
}

// lookup finds a command by name or alias.
func (inv *invocation) lookup(name string) *command {
	for _, c := range inv.table {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func (inv *invocation) unknownCommand(name string) error {
	var names []string
	for _, c := range inv.table {
		names = append(names, c.name)
		names = append(names, c.aliases...)
	}
	msg := fmt.Sprintf("unknown command %q", name)
	// A verb without its namespace ("scale" for ps:scale) is a common slip
	// for people who know other tools.
	var byVerb []string
	for _, n := range names {
		if _, verb, ok := strings.Cut(n, ":"); ok && verb == name {
			byVerb = append(byVerb, n)
		}
	}
	if n := len(byVerb); n > 0 {
		alts := byVerb[0]
		if n > 1 {
			alts = strings.Join(byVerb[:n-1], ", ") + " or " + byVerb[n-1]
		}
		msg += fmt.Sprintf("; did you mean %s?", alts)
	} else if s := suggest(name, names); s != "" {
		msg += fmt.Sprintf("; did you mean %s?", s)
	} else {
		msg += "; run help for the list"
	}
	return &Error{Msg: msg, Code: exitUsage}
}

func (inv *invocation) help(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return usagef(c, "%v", err)
	}
	switch len(pos) {
	case 0:
		writeHelp(inv.stdout, inv.table)
		return nil
	case 1:
		target := inv.lookup(pos[0])
		if target == nil {
			return inv.unknownCommand(pos[0])
		}
		inv.printDetails(target)
		return nil
	}
	return usagef(c, "too many arguments")
}

// helpColumn is the width of the usage column of help.
const helpColumn = 43

// writeHelp lists every command with its one help line, by group.
func writeHelp(w io.Writer, table []*command) {
	fmt.Fprintln(w, "Usage: ssh hop3@HOST COMMAND [APP] [ARGS...]")
	fmt.Fprintln(w, "   or, on the server: hop3 COMMAND [APP] [ARGS...]")
	for _, g := range groupOrder {
		fmt.Fprintf(w, "\n%s:\n", g)
		for _, c := range table {
			if c.group != g {
				continue
			}
			// One column for every group; a usage too long for it puts its
			// help line below.
			if syn := c.synopsis(); len(syn) <= helpColumn {
				fmt.Fprintf(w, "  %-*s   %s\n", helpColumn, syn, c.summary)
			} else {
				fmt.Fprintf(w, "  %s\n  %-*s   %s\n", syn, helpColumn, "", c.summary)
			}
		}
	}
	fmt.Fprintln(w, "\nRun 'help COMMAND' for the details of one command.")
}

func (inv *invocation) printDetails(c *command) {
	w := inv.stdout
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.synopsis(), c.summary)
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", c.details)
	}
	if len(c.aliases) > 0 {
		fmt.Fprintf(w, "\nAliases: %s\n", strings.Join(c.aliases, ", "))
	}
	if c.admin {
		fmt.Fprintln(w, "\nFor admin keys only.")
	}
}

// newFlags returns a fresh flag set for one run of c; its errors are
// reported by the caller, in one line.
func newFlags(c *command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parseArgs parses flags wherever they appear among the arguments (`logs
// APP -n 5` as well as `logs -n 5 APP`); everything after "--" is
// positional. It returns the positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return append(pos, tail...), nil
}

// parse parses args for c and checks the number of positional arguments.
func parse(c *command, fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if errors.Is(err, errHelp) {
		return nil, err
	}
	if err != nil {
		return nil, usagef(c, "%v", err)
	}
	if len(pos) < min {
		names := positionalNames(c.args)
		if len(pos) < len(names) {
			return nil, usagef(c, "missing %s", names[len(pos)])
		}
		return nil, usagef(c, "missing arguments")
	}
	if max >= 0 && len(pos) > max {
		return nil, usagef(c, "too many arguments")
	}
	return pos, nil
}

// positionalNames lists the required positional arguments of a usage line:
// "[--no-restart] APP KEY=VALUE ..." gives APP and KEY=VALUE.
func positionalNames(usage string) []string {
	var names []string
	depth := 0
	for _, tok := range strings.Fields(usage) {
		if tok == "<" {
			break
		}
		opening := strings.Count(tok, "[")
		closing := strings.Count(tok, "]")
		if depth == 0 && opening == 0 && tok != "--" && tok != "..." {
			names = append(names, tok)
		}
		depth += opening - closing
	}
	return names
}
