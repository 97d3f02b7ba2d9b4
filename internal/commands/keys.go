package commands

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/internal/appname"
	"hop3/internal/store"
)

// keyName is the rule `hop3 keys add` applies too.
var keyName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

type keyJSON struct {
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Apps        []string  `json:"apps"`
	Fingerprint string    `json:"fingerprint"`
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
		rows[i] = keyJSON{Name: k.Name, Role: k.Role.String(), Apps: append([]string{}, k.Apps...), Fingerprint: k.Fingerprint, CreatedAt: k.CreatedAt}
	}
	if *asJSON {
		return writeJSON(inv.stdout, rows)
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tAPPS\tFINGERPRINT")
	for _, k := range rows {
		apps := strings.Join(k.Apps, ",")
		if k.Role == store.RoleAdmin.String() {
			apps = "(all)"
		} else if apps == "" {
			apps = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, k.Role, apps, k.Fingerprint)
	}
	return tw.Flush()
}

func (inv *invocation) keysAdd(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	roleName := fs.String("role", "admin", "")
	appList := fs.String("apps", "", "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if !keyName.MatchString(name) {
		return usagef(c, "invalid key name %q: use letters, digits, '.', '_', '@' and '-'", name)
	}
	role, err := store.ParseRole(*roleName)
	if err != nil {
		return usagef(c, "--role is admin or deployer, not %q", *roleName)
	}
	var apps []string
	if *appList != "" {
		if role == store.RoleAdmin {
			return usagef(c, "--apps is for deployer keys; an admin key may use every app")
		}
		for _, a := range strings.Split(*appList, ",") {
			if err := appname.Validate(a); err != nil {
				return usagef(c, "--apps: %v", err)
			}
			apps = append(apps, a)
		}
	}
	line, err := bufio.NewReader(io.LimitReader(inv.stdin, 16<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if strings.TrimSpace(line) == "" {
		return failf("no public key on stdin: keys:add %s < key.pub", name)
	}
	pub, _, _, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return failf("stdin is not a public key in authorized_keys form (%v)", err)
	}
	k := store.Key{
		Name:        name,
		Fingerprint: gossh.FingerprintSHA256(pub),
		PublicKey:   strings.TrimSpace(string(gossh.MarshalAuthorizedKey(pub))),
		Role:        role,
		Apps:        apps,
	}
	if err := inv.d.cfg.Store.AddKey(ctx, k); err != nil {
		if errors.Is(err, store.ErrExists) {
			return failf("%s", strings.TrimPrefix(oneLine(err), "add key "+name+": "))
		}
		return err
	}
	inv.event(ctx, "", "key", "added key %s (%s%s)", name, role, appsSuffix(apps))
	inv.ui.Success(fmt.Sprintf("Added key %s (%s%s, %s)", name, role, appsSuffix(apps), k.Fingerprint))
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
