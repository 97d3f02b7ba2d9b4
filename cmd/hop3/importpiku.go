package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hop3/gitserver"
	"hop3/internal/appname"
	"hop3/internal/commands"
	"hop3/internal/layout"
	"hop3/internal/piku"
	"hop3/internal/store"
)

const importPikuUsage = "usage: hop3 import-piku PIKU_ROOT [--dry-run] [--apps APP,...] [--rename OLD=NEW,...] [--data] [--keys deployer|admin|none] [--authorized-keys FILE] [--root DIR]"

// importPiku moves the apps of a piku installation into the running hop3.
func importPiku(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import-piku", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", envDefault("root", defaultRoot()), "hop3's state directory (HOP3_ROOT); hop3 must be running on it")
	dryRun := fs.Bool("dry-run", false, "check everything and say what would be done, change nothing")
	only := fs.String("apps", "", "import only these apps (piku's names), comma separated")
	var renames []string
	fs.Func("rename", "give a piku app another name in hop3: OLD=NEW (repeatable, or comma separated)", func(s string) error {
		renames = append(renames, strings.Split(s, ",")...)
		return nil
	})
	data := fs.Bool("data", false, "copy each app's data (piku's data/APP) into its DATA_DIR, with the app stopped in piku")
	keysMode := fs.String("keys", "deployer", "add piku's SSH keys as deployer (of the imported apps), admin, or none")
	keysFile := fs.String("authorized-keys", "", "piku's authorized_keys (default: .ssh/authorized_keys beside PIKU_ROOT)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, importPikuUsage)
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
	var keyRole store.Role
	switch *keysMode {
	case "admin":
		keyRole = store.RoleAdmin
	case "deployer":
		keyRole = store.RoleDeployer
	case "none":
	default:
		return usageError("--keys %q: want deployer, admin or none", *keysMode)
	}
	rename, err := parseRenames(renames)
	if err != nil {
		return usageError("%v", err)
	}
	var names []string
	if *only != "" {
		names = strings.Split(*only, ",")
	}
	hopRoot, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	pikuRoot, err := filepath.Abs(pos[0])
	if err != nil {
		return err
	}
	if _, err := os.Stat(layout.New(hopRoot).Control()); err != nil {
		return fmt.Errorf("hop3 is not running on %s (no control.sock): start it first, or pass --root", hopRoot)
	}
	apps, err := piku.Scan(ctx, pikuRoot, piku.Options{
		Only:    names,
		Rename:  rename,
		Data:    *data,
		DataDir: layout.New(hopRoot).Data,
	})
	if err != nil {
		return err
	}
	if len(apps) == 0 {
		return fmt.Errorf("no apps in %s", filepath.Join(pikuRoot, "repos"))
	}
	im := &piku.Importer{
		Daemon:   controlDaemon{root: hopRoot},
		Root:     hopRoot,
		PikuRoot: pikuRoot,
		Stdout:   stdout,
		Stderr:   stderr,
		DryRun:   *dryRun,
		Data:     *data,
		Domain:   envDefault("domain", "localhost"),
	}
	outcomes := im.Import(ctx, apps)

	bad := 0
	var summary, moved []string
	for _, o := range outcomes {
		switch o.Status {
		case piku.Failed, piku.Problem:
			bad++
		case piku.Imported, piku.Planned:
			moved = append(moved, o.App)
		}
		if o.App == "" {
			summary = append(summary, string(o.Status)+": "+o.Reason)
			continue
		}
		line := o.App + ": " + string(o.Status)
		switch {
		case o.Status == piku.Failed:
			// What was undone, then what failed and the lines that
			// detail it (a build's or a crashed process's last lines).
			if o.Undone != "" {
				line += "; " + o.Undone
			}
			first, rest, _ := strings.Cut(o.Reason, "\n")
			line += "\n         " + first
			if rest != "" {
				line += "\n           " + strings.ReplaceAll(rest, "\n", "\n           ")
			}
		case o.Reason != "" && o.Status != piku.Problem:
			line += " (" + o.Reason + ")"
		}
		summary = append(summary, line)
	}
	if *keysMode != "none" {
		path := *keysFile
		if path == "" {
			path = filepath.Join(filepath.Dir(pikuRoot), ".ssh", "authorized_keys")
		}
		if err := importKeys(ctx, hopRoot, path, *keysFile != "", keyRole, moved, *dryRun, stderr); err != nil {
			bad++
			fmt.Fprintf(stderr, " !     keys: %v\n", err)
		}
	}
	fmt.Fprintln(stderr, "-----> Summary")
	for _, l := range summary {
		fmt.Fprintln(stderr, "       "+l)
	}
	if *dryRun {
		if bad == 0 {
			fmt.Fprintln(stderr, "       dry run: no problem found; nothing was changed")
		} else {
			fmt.Fprintln(stderr, "       dry run: nothing was changed")
		}
	} else {
		nextSteps(stderr, outcomes)
	}
	if bad > 0 {
		if *dryRun {
			return &exitError{code: 1, msg: fmt.Sprintf("%d problem(s) to fix before importing", bad)}
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d app(s) not imported", bad)}
	}
	return nil
}

// parseRenames reads OLD=NEW pairs.
func parseRenames(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	to := map[string]bool{}
	for _, p := range pairs {
		from, name, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || from == "" || name == "" {
			return nil, fmt.Errorf("--rename %q: want OLD=NEW, e.g. my_app=my-app", p)
		}
		if err := appname.Validate(name); err != nil {
			return nil, fmt.Errorf("--rename %s: %v", p, err)
		}
		if _, dup := out[from]; dup || to[name] {
			return nil, fmt.Errorf("--rename %s: named twice", p)
		}
		out[from], to[name] = name, true
	}
	return out, nil
}

// importKeys adds the keys of piku's authorized_keys to hop3, with piku's
// forced command stripped: as admins, or as deployers of apps (the apps
// this run imported; a deployer key already there gains them). A key hop3
// already has is otherwise left as it is. A missing file is no keys,
// unless it was named.
func importKeys(ctx context.Context, root, path string, named bool, role store.Role, apps []string, dryRun bool, stderr io.Writer) error {
	text, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && !named {
		fmt.Fprintf(stderr, "-----> No piku keys: no %s\n", path)
		return nil
	}
	if err != nil {
		return err
	}
	keys, skipped := piku.ParseAuthorizedKeys(string(text))
	st, err := openStore(root)
	if err != nil {
		return err
	}
	defer st.Close()
	have, err := st.Keys(ctx)
	if err != nil {
		return err
	}
	used := map[string]bool{}
	byFP := map[string]store.Key{}
	for _, k := range have {
		used[k.Name] = true
		byFP[k.Fingerprint] = k
	}
	verb := "Adding"
	if dryRun {
		verb = "Would add"
	}
	fmt.Fprintf(stderr, "-----> %s piku's keys from %s as %s\n", verb, path, role)
	for _, s := range skipped {
		fmt.Fprintf(stderr, "       note: %s\n", s)
	}
	for _, pk := range keys {
		if k, ok := byFP[pk.Fingerprint]; ok {
			missing := slices.DeleteFunc(slices.Clone(apps), func(a string) bool { return slices.Contains(k.Apps, a) })
			if k.Role != store.RoleDeployer || role != store.RoleDeployer || len(missing) == 0 {
				fmt.Fprintf(stderr, "       %s: already allowed as %s (%s), unchanged\n", pk.Fingerprint, k.Name, k.Role)
				continue
			}
			fmt.Fprintf(stderr, "       %s: already allowed as %s; may now also use %s\n", pk.Fingerprint, k.Name, strings.Join(missing, ", "))
			if !dryRun {
				if err := st.SetKeyApps(ctx, k.Name, append(slices.Clone(k.Apps), missing...)); err != nil {
					return err
				}
				keyEvent(ctx, st, stderr, "key %s may use %s (from piku)", k.Name, strings.Join(missing, ","))
			}
			continue
		}
		name := pk.Name
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", pk.Name, i)
		}
		used[name] = true
		var grant []string
		scope := ""
		if role == store.RoleDeployer {
			grant = slices.Clone(apps)
			scope = " of " + strings.Join(grant, ",")
			if len(grant) == 0 {
				scope = " of no app yet"
			}
		}
		if pk.Options != "" {
			scope += ", " + pk.Options
		}
		fmt.Fprintf(stderr, "       %s (%s%s) %s, line %d\n", name, role, scope, pk.Fingerprint, pk.Line)
		if dryRun {
			// The options are checked as adding the key will check them.
			if _, err := gitserver.ParseKeyOptions(pk.Options); err != nil {
				return fmt.Errorf("authorized_keys line %d: %v", pk.Line, err)
			}
			continue
		}
		added, err := addImportedKey(ctx, st, name, role, grant, pk)
		if err != nil {
			return fmt.Errorf("authorized_keys line %d: %v", pk.Line, err)
		}
		for _, k := range added {
			keyEvent(ctx, st, stderr, "added key %s from piku", commands.Describe(k))
		}
	}
	return nil
}

// addImportedKey adds one key taken from piku through keys:add's own path
// (its name, role and option checks): the one place the import adds a key.
func addImportedKey(ctx context.Context, st *store.Store, name string, role store.Role, apps []string, pk piku.AuthorizedKey) ([]store.Key, error) {
	args := []string{name, "--role", role.String()}
	if len(apps) > 0 {
		args = append(args, "--apps", strings.Join(apps, ","))
	}
	line := pk.PublicKey
	if pk.Options != "" {
		line = pk.Options + " " + line
	}
	added, err := commands.AddKeys(ctx, st, args, strings.NewReader(line+"\n"))
	var ce *commands.Error
	if errors.As(err, &ce) {
		return nil, errors.New(ce.Msg)
	}
	return added, err
}

// nextSteps ends a real import with what is left to do by hand.
func nextSteps(w io.Writer, outcomes []piku.Outcome) {
	var hosts []string
	for _, o := range outcomes {
		if o.Status == piku.Imported || o.Status == piku.Unchanged {
			hosts = append(hosts, o.Hosts...)
		}
	}
	fmt.Fprintln(w, "-----> Next steps")
	if len(hosts) > 0 {
		fmt.Fprintf(w, "       DNS: point %s at this server (if it is not piku's); hop3 answers to them already\n", strings.Join(hosts, ", "))
	}
	fmt.Fprintln(w, "       firewall: open 80 and 443 (Caddy) and hop3's SSH port (2222 unless --ssh-addr says otherwise)")
	fmt.Fprintln(w, "       git remotes: piku@HOST:APP becomes ssh://hop3@HOST:2222/APP (or hop3@HOST:APP once hop3 has port 22)")
	fmt.Fprintln(w, "       piku: stop its services once the apps are checked, and free ports 80 and 443 for Caddy:")
	fmt.Fprintln(w, "         sudo systemctl disable --now uwsgi-piku piku-nginx.path piku-nginx.service nginx")
}

// controlDaemon runs commands on the daemon through <root>/control.sock,
// as an admin, exactly as `hop3 COMMAND` does.
type controlDaemon struct{ root string }

func (d controlDaemon) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	var env []string
	if v, ok := os.LookupEnv("NO_COLOR"); ok {
		env = append(env, "NO_COLOR="+v)
	}
	return gitserver.LocalCommand(layout.New(d.root).Control(), layout.New(d.root).HostKey(),
		args, strings.NewReader(""), stdout, stderr, env)
}
