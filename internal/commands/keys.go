package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
	"hop3/internal/appname"
	"hop3/internal/store"
	"hop3/internal/ui"
)

type keyJSON struct {
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Apps        []string  `json:"apps"`
	Fingerprint string    `json:"fingerprint"`
	Options     string    `json:"options"`
	CreatedAt   time.Time `json:"created_at"`
}

func (inv *invocation) keys(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	asJSON := fs.Bool("json", false, "")
	if _, err := parse(c, fs, args, 0, 0); err != nil {
		return err
	}
	ks, err := inv.d.cfg.Store.Keys(ctx)
	if err != nil {
		return err
	}
	rows := make([]keyJSON, len(ks))
	for i, k := range ks {
		rows[i] = keyJSON{Name: k.Name, Role: k.Role.String(), Apps: append([]string{}, k.Apps...), Fingerprint: k.Fingerprint, Options: k.Options, CreatedAt: k.CreatedAt}
	}
	if *asJSON {
		return writeJSON(inv.stdout, rows)
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tAPPS\tFINGERPRINT\tOPTIONS")
	for _, k := range rows {
		apps := strings.Join(k.Apps, ",")
		if k.Role == store.RoleAdmin.String() {
			apps = "(all)"
		} else if apps == "" {
			apps = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Name, k.Role, apps, k.Fingerprint, k.Options)
	}
	return tw.Flush()
}

// keysAddSpec is keys:add's usage, shared by `hop3 keys add` on the server.
var keysAddSpec = command{
	name: "keys:add",
	args: "NAME [--role admin|deployer] [--apps APP,...] < KEY.pub",
	details: "Admin keys may do everything. Deployer keys may push to, see and change only\n" +
		"the apps given with --apps, and may not manage keys.\n\n" +
		"Every key on stdin is added: the first as NAME, the next as NAME-2, NAME-3...\n" +
		"(lines that are blank or start with # are skipped); all of them or none.\n" +
		"Of the options an authorized_keys line may carry before the key, from=\"...\"\n" +
		"(addresses, CIDR blocks, * and ? patterns, !negations) and\n" +
		"expiry-time=\"YYYYMMDD[HHMM[SS]][Z]\" are honoured at every login; any other\n" +
		"(command=, no-pty, restrict, ...) is refused.\n\n" +
		"Options:\n  --role admin|deployer   default admin\n  --apps APP,...          the apps a deployer may use (needs --role deployer)",
}

// maxKeysInput bounds what keys:add reads from stdin.
const maxKeysInput = 256 << 10

// KeyAdder stores keys, all or none; *store.Store is one.
type KeyAdder interface {
	AddKeys(ctx context.Context, keys []store.Key) error
}

// AddKeys runs keys:add against st: the one path for adding keys, behind
// keys:add over SSH and `hop3 keys add` on the server. args are the
// command's arguments, flags before or after NAME; stdin holds the keys in
// authorized_keys form. A refusal is an *Error (exit status 2 for usage).
func AddKeys(ctx context.Context, st KeyAdder, args []string, stdin io.Reader) ([]store.Key, error) {
	c := &keysAddSpec
	fs := newFlags(c)
	roleName := fs.String("role", "admin", "")
	appList := fs.String("apps", "", "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return nil, err
	}
	name := pos[0]
	if !store.ValidKeyName(name) {
		return nil, usagef(c, "invalid key name %q: use letters, digits, '.', '_', '@' and '-'", name)
	}
	role, err := store.ParseRole(*roleName)
	if err != nil {
		return nil, usagef(c, "--role is admin or deployer, not %q", *roleName)
	}
	var apps []string
	if *appList != "" {
		if role != store.RoleDeployer {
			return nil, usagef(c, "--apps is for deployer keys (--role deployer); an admin key may use every app")
		}
		for _, a := range strings.Split(*appList, ",") {
			if err := appname.Validate(a); err != nil {
				return nil, usagef(c, "--apps: %v", err)
			}
			apps = append(apps, a)
		}
	}
	keys, err := readKeys(name, stdin)
	if err != nil {
		return nil, err
	}
	for i := range keys {
		keys[i].Role, keys[i].Apps = role, apps
	}
	if err := st.AddKeys(ctx, keys); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, failf("%s", ui.OneLine(err.Error()))
		}
		return nil, err
	}
	return keys, nil
}

// readKeys reads every key on r, named name, name-2, name-3, ...
func readKeys(name string, r io.Reader) ([]store.Key, error) {
	src, err := io.ReadAll(io.LimitReader(r, maxKeysInput+1))
	if err != nil {
		return nil, err
	}
	if len(src) > maxKeysInput {
		return nil, failf("more than %d KiB on stdin: give one authorized_keys file", maxKeysInput>>10)
	}
	lines := strings.Split(string(src), "\n")
	var keys []store.Key
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pub, _, opts, err := gitserver.ParseAuthorizedKey(line)
		if err != nil {
			where := ""
			if len(lines) > 2 {
				where = fmt.Sprintf("line %d: ", i+1)
			}
			return nil, failf("%s%v", where, err)
		}
		n := name
		if len(keys) > 0 {
			n = fmt.Sprintf("%s-%d", name, len(keys)+1)
			if !store.ValidKeyName(n) {
				return nil, failf("key name %s is too long for the keys after the first", n)
			}
		}
		keys = append(keys, store.Key{
			Name:        n,
			Fingerprint: gossh.FingerprintSHA256(pub),
			PublicKey:   strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
			Options:     opts.String(),
		})
	}
	if len(keys) == 0 {
		return nil, failf("no public key on stdin: keys:add %s < key.pub", name)
	}
	return keys, nil
}

// Describe is how a key is named in messages and events: its name, role,
// apps and options.
func Describe(k store.Key) string {
	s := fmt.Sprintf("%s (%s%s", k.Name, k.Role, appsSuffix(k.Apps))
	if k.Options != "" {
		s += ", " + k.Options
	}
	return s + ")"
}

func (inv *invocation) keysAdd(ctx context.Context, c *command, args []string) error {
	keys, err := AddKeys(ctx, inv.d.cfg.Store, args, inv.stdin)
	if err != nil {
		return err
	}
	for _, k := range keys {
		inv.event(ctx, "", "key", "added key %s", Describe(k))
		inv.ui.Success(fmt.Sprintf("Added key %s, %s", Describe(k), k.Fingerprint))
	}
	return nil
}

func appsSuffix(apps []string) string {
	if len(apps) == 0 {
		return ""
	}
	return " of " + strings.Join(apps, ",")
}

func (inv *invocation) keysRemove(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := inv.d.cfg.Store.RemoveKey(ctx, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			msg := "no key named " + name
			if ks, lerr := inv.d.cfg.Store.Keys(ctx); lerr == nil {
				var names []string
				for _, k := range ks {
					names = append(names, k.Name)
				}
				if s := suggest(name, names); s != "" {
					msg += "; did you mean " + s + "?"
				}
			}
			return failf("%s", msg)
		}
		return err
	}
	inv.event(ctx, "", "key", "removed key %s", name)
	inv.ui.Success("Removed key " + name)
	return nil
}
