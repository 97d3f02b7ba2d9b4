package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"hop3/bytesize"
	"hop3/internal/addons"
	"hop3/internal/store"
	"hop3/internal/ui"
	"hop3/runtime/supervisor"
)

// Addons is what the add-on commands need from the add-on manager.
// *addons.Manager satisfies it.
type Addons interface {
	Describe(ctx context.Context, app string) ([]addons.Info, error)
	Create(ctx context.Context, app string, k addons.Kind, o addons.Options) (addons.Addon, error)
	Get(app, name string) (addons.Addon, error)
	URL(a addons.Addon) string
	Destroy(ctx context.Context, app, name string) error
	Backup(ctx context.Context, app, name string) (addons.Backup, error)
	Backups(app, name string) ([]addons.Backup, error)
	RestoreBackup(ctx context.Context, app, name, backup string) error
	PsqlCommand(a addons.Addon) ([]string, error)
	AppDestroyed(ctx context.Context, app string, purge bool) ([]string, error)
	// Attach starts the app's add-ons that are not running (kept from a
	// destroyed app of the same name).
	Attach(ctx context.Context, app string) error
	// Processes lists the processes of the app's add-ons.
	Processes(app string) []supervisor.Status
}

var _ Addons = (*addons.Manager)(nil)

const groupAddons = "Add-ons"

// addonCommands are the add-on entries of the command table.
func (inv *invocation) addonCommands() []*command {
	return []*command{
		{name: "addons", aliases: []string{"addons:list"}, group: groupAddons, args: "[--json] APP",
			summary: "List the app's add-ons: name, kind, version, size, URL variable, state",
			run:     inv.addonsList},
		{name: "addons:create", group: groupAddons, args: "APP postgres|redis [--name NAME] [--maxmemory SIZE]",
			summary: "Give the app a PostgreSQL database or a Redis, and its URL in a config var",
			details: "Sets DATABASE_URL (postgres) or REDIS_URL (redis), or NAME_URL when the app\nalready has one, and restarts the app with zero downtime.\nThe default name is APP-db or APP-redis.\n\nOptions:\n  --name NAME        the add-on's name (lowercase letters, digits, '-')\n  --maxmemory SIZE   redis: its maxmemory, e.g. 256mb (default " + addons.DefaultMaxMemory + ")",
			run:     inv.addonsCreate},
		{name: "addons:destroy", group: groupAddons, args: "APP NAME --confirm NAME",
			summary: "Remove an add-on and its data (its backups stay)",
			run:     inv.addonsDestroy},
		{name: "addons:backup", group: groupAddons, args: "APP NAME",
			summary: "Back up an add-on now (pg_dump, or a Redis RDB snapshot)",
			details: fmt.Sprintf("Backups go to <root>/backups/APP/; the last %d of each add-on are kept.", addons.KeepBackups),
			run:     inv.addonsBackup},
		{name: "addons:backups", group: groupAddons, args: "[--json] APP NAME",
			summary: "List an add-on's backups",
			run:     inv.addonsBackups},
		{name: "addons:restore", group: groupAddons, args: "APP NAME BACKUP --confirm APP",
			summary: "Put an add-on back to a backup (its current data is replaced)",
			run:     inv.addonsRestore},
		{name: "addons:psql", group: groupAddons, args: "APP NAME",
			summary: "Open psql on a PostgreSQL add-on, as the app (use ssh -t)",
			details: "Without a terminal, psql reads SQL from stdin.",
			run:     inv.addonsPsql},
	}
}

func (inv *invocation) addons() (Addons, error) {
	if inv.d.cfg.Addons == nil {
		return nil, failf("add-ons are not available on this server")
	}
	return inv.d.cfg.Addons, nil
}

// parseAddon parses `APP NAME` and n-2 more positional arguments with fs,
// and resolves the caller's app and its add-on.
func (inv *invocation) parseAddon(ctx context.Context, c *command, fs *flag.FlagSet, args []string, n int) (store.App, addons.Addon, []string, error) {
	pos, err := parse(c, fs, args, n, n)
	if err != nil {
		return store.App{}, addons.Addon{}, nil, err
	}
	a, ad, err := inv.addonArgs(ctx, c, pos[:2])
	return a, ad, pos, err
}

// addonArgs resolves `APP NAME` to the caller's app and its add-on.
func (inv *invocation) addonArgs(ctx context.Context, c *command, pos []string) (store.App, addons.Addon, error) {
	mgr, err := inv.addons()
	if err != nil {
		return store.App{}, addons.Addon{}, err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return store.App{}, addons.Addon{}, err
	}
	if err := mgr.Attach(ctx, a.Name); err != nil {
		return store.App{}, addons.Addon{}, fmt.Errorf("start the add-ons of %s: %w", a.Name, err)
	}
	if err := addons.ValidateName(pos[1]); err != nil {
		return store.App{}, addons.Addon{}, usagef(c, "%v", err)
	}
	ad, err := mgr.Get(a.Name, pos[1])
	if errors.Is(err, addons.ErrNotFound) {
		return store.App{}, addons.Addon{}, failf("%s has no add-on named %s (see `addons %s`)", a.Name, pos[1], a.Name)
	}
	return a, ad, err
}

func (inv *invocation) addonsList(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	mgr, err := inv.addons()
	if err != nil {
		return err
	}
	if err := mgr.Attach(ctx, a.Name); err != nil {
		return fmt.Errorf("start the add-ons of %s: %w", a.Name, err)
	}
	list, err := mgr.Describe(ctx, a.Name)
	if err != nil {
		return err
	}
	if asJSON {
		if list == nil {
			list = []addons.Info{}
		}
		return writeJSON(inv.stdout, list)
	}
	if len(list) == 0 {
		inv.ui.Info(a.Name + " has no add-ons (addons:create " + a.Name + " postgres|redis)")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSIZE\tVAR\tURL\tSTATE")
	for _, i := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i.Name, i.Kind, i.Version, bytesize.Human(i.Size), i.Var, i.URL, i.State)
	}
	return tw.Flush()
}

func (inv *invocation) addonsCreate(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	name := fs.String("name", "", "")
	maxmem := fs.String("maxmemory", "", "")
	pos, err := parse(c, fs, args, 2, 2)
	if err != nil {
		return err
	}
	kind, err := addons.ParseKind(pos[1])
	if err != nil {
		return usagef(c, "%v", err)
	}
	if *name != "" {
		if err := addons.ValidateName(*name); err != nil {
			return usagef(c, "%v", err)
		}
	}
	if *maxmem != "" {
		if kind != addons.Redis {
			return usagef(c, "--maxmemory is for redis add-ons")
		}
		if err := addons.ValidateMemory(*maxmem); err != nil {
			return usagef(c, "%v", err)
		}
	}
	mgr, err := inv.addons()
	if err != nil {
		return err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	inv.ui.Step(fmt.Sprintf("Creating a %s add-on for %s", kind, a.Name))
	ad, err := mgr.Create(ctx, a.Name, kind, addons.Options{Name: *name, MaxMemory: *maxmem})
	if err != nil {
		return failf("%v", err)
	}
	if err := inv.d.cfg.Store.SetConfig(ctx, a.Name, map[string]string{ad.Var: mgr.URL(ad)}); err != nil {
		_ = mgr.Destroy(context.WithoutCancel(ctx), a.Name, ad.Name)
		return err
	}
	inv.event(ctx, a.Name, "addon", "created %s add-on %s (%s)", kind, ad.Name, ad.Var)
	inv.ui.Step(fmt.Sprintf("Created %s; %s is set", ad.Name, ad.Var))
	return inv.applyConfig(ctx, a, false)
}

func (inv *invocation) addonsDestroy(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	confirm := fs.String("confirm", "", "")
	a, ad, _, err := inv.parseAddon(ctx, c, fs, args, 2)
	if err != nil {
		return err
	}
	if *confirm != ad.Name {
		if *confirm == "" {
			return failf("nothing destroyed: this removes %s and all its data; pass --confirm %s", ad.Name, ad.Name)
		}
		return failf("nothing destroyed: %q is not %s", *confirm, ad.Name)
	}
	// The app stops using the add-on before it goes.
	if vars, err := inv.d.cfg.Store.Config(ctx, a.Name); err == nil && vars[ad.Var] == inv.d.cfg.Addons.URL(ad) {
		if err := inv.d.cfg.Store.UnsetConfig(ctx, a.Name, []string{ad.Var}); err != nil {
			return err
		}
		inv.ui.Step(fmt.Sprintf("Unset %s on %s", ad.Var, a.Name))
		if err := inv.applyConfig(ctx, a, false); err != nil {
			return err
		}
	}
	if err := inv.d.cfg.Addons.Destroy(ctx, a.Name, ad.Name); err != nil {
		return fmt.Errorf("destroy %s: %w", ad.Name, err)
	}
	inv.event(ctx, a.Name, "addon", "destroyed add-on %s", ad.Name)
	inv.ui.Success(ad.Name + " destroyed (its backups are kept)")
	return nil
}

func (inv *invocation) addonsBackup(ctx context.Context, c *command, args []string) error {
	a, ad, _, err := inv.parseAddon(ctx, c, newFlags(c), args, 2)
	if err != nil {
		return err
	}
	b, err := inv.d.cfg.Addons.Backup(ctx, a.Name, ad.Name)
	if err != nil {
		return failf("%v", err)
	}
	inv.event(ctx, a.Name, "addon", "backed up %s to %s", ad.Name, b.Name)
	inv.ui.Success(fmt.Sprintf("Backed up %s: %s (%s)", ad.Name, b.Name, bytesize.Human(b.Size)))
	_, err = fmt.Fprintln(inv.stdout, b.Name)
	return err
}

func (inv *invocation) addonsBackups(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	asJSON := fs.Bool("json", false, "")
	a, ad, _, err := inv.parseAddon(ctx, c, fs, args, 2)
	if err != nil {
		return err
	}
	list, err := inv.d.cfg.Addons.Backups(a.Name, ad.Name)
	if err != nil {
		return err
	}
	if *asJSON {
		if list == nil {
			list = []addons.Backup{}
		}
		return writeJSON(inv.stdout, list)
	}
	if len(list) == 0 {
		inv.ui.Info(ad.Name + " has no backups (addons:backup " + a.Name + " " + ad.Name + ")")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKUP\tSIZE\tTAKEN")
	for _, b := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", b.Name, bytesize.Human(b.Size), b.Time.Format("2006-01-02 15:04:05 MST"))
	}
	return tw.Flush()
}

func (inv *invocation) addonsRestore(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	confirm := fs.String("confirm", "", "")
	a, ad, pos, err := inv.parseAddon(ctx, c, fs, args, 3)
	if err != nil {
		return err
	}
	if *confirm != a.Name {
		if *confirm == "" {
			return failf("nothing restored: this replaces the data of %s; pass --confirm %s", ad.Name, a.Name)
		}
		return failf("nothing restored: %q is not %s", *confirm, a.Name)
	}
	inv.ui.Step(fmt.Sprintf("Restoring %s from %s", ad.Name, pos[2]))
	if err := inv.d.cfg.Addons.RestoreBackup(ctx, a.Name, ad.Name, pos[2]); err != nil {
		return failf("%v", err)
	}
	inv.event(ctx, a.Name, "addon", "restored %s from %s", ad.Name, pos[2])
	inv.ui.Success(ad.Name + " restored from " + pos[2])
	return nil
}

func (inv *invocation) addonsPsql(ctx context.Context, c *command, args []string) error {
	a, ad, _, err := inv.parseAddon(ctx, c, newFlags(c), args, 2)
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet: psql runs as the app", a.Name)
	}
	argv, err := inv.d.cfg.Addons.PsqlCommand(ad)
	if err != nil {
		return failf("%v", err)
	}
	return inv.runIn(ctx, a.Name, argv)
}

// addonsAfterDestroy tells what became of a destroyed app's add-ons.
func (inv *invocation) addonsAfterDestroy(ctx context.Context, app string, purge bool) {
	if inv.d.cfg.Addons == nil {
		return
	}
	names, err := inv.d.cfg.Addons.AppDestroyed(ctx, app, purge)
	if err != nil {
		inv.ui.Fail(fmt.Sprintf("add-ons of %s: %v", app, ui.OneLine(err.Error())))
	}
	switch {
	case len(names) == 0:
	case purge:
		inv.ui.Info("its add-ons were destroyed too: " + strings.Join(names, ", "))
	default:
		inv.ui.Info("its add-ons are kept: " + strings.Join(names, ", ") + " (destroy --purge removes them)")
	}
}
