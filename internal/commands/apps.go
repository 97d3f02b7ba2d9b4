package commands

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"hop3/bytesize"
	"hop3/internal/appname"
	"hop3/internal/layout"
	"hop3/internal/store"
	"hop3/runtime/supervisor"
)

// visibleApps lists the apps the caller may see: all of them for an admin,
// its own for a deployer.
func (inv *invocation) visibleApps(ctx context.Context) ([]store.App, error) {
	apps, err := inv.d.cfg.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	out := apps[:0:0]
	for _, a := range apps {
		if inv.id.CanAccess(a.Name) {
			out = append(out, a)
		}
	}
	return out, nil
}

// app resolves an APP argument: a valid name, of an app that exists and the
// caller may use. To a deployer, an app it may not use does not exist.
func (inv *invocation) app(ctx context.Context, c *command, name string) (store.App, error) {
	if err := appname.Validate(name); err != nil {
		return store.App{}, &Error{Msg: inv.withSuggestion(ctx, err.Error(), name), Code: exitUsage}
	}
	if !inv.id.CanAccess(name) {
		return store.App{}, inv.noApp(ctx, name)
	}
	a, err := inv.d.cfg.Store.App(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.App{}, inv.noApp(ctx, name)
	}
	if err == nil {
		inv.noteApp(a.Name)
	}
	return a, err
}

func (inv *invocation) noApp(ctx context.Context, name string) error {
	return failf("%s", inv.withSuggestion(ctx, "no app named "+name, name))
}

// withSuggestion appends "did you mean X?" naming the nearest app the caller
// may see, if one is near.
func (inv *invocation) withSuggestion(ctx context.Context, msg, name string) string {
	apps, err := inv.visibleApps(ctx)
	if err != nil {
		return msg
	}
	names := make([]string, len(apps))
	for i, a := range apps {
		names[i] = a.Name
	}
	if s := suggest(name, names); s != "" && s != name {
		msg += "; did you mean " + s + "?"
	}
	return msg
}

// appState is what `apps` shows: the desired state, corrected by what the
// processes are doing.
func (inv *invocation) appState(a store.App) string {
	switch {
	case a.Release == 0:
		return "not deployed"
	case a.State == store.AppStopped:
		return "stopped"
	case !a.Asleep.IsZero():
		return "sleeping"
	}
	for _, p := range inv.processes(a.Name) {
		if p.State == supervisor.Crashed {
			return "crashed"
		}
	}
	return "running"
}

type appJSON struct {
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Release   int       `json:"release"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
	// DiskBytes is what the app takes on disk (repository, releases,
	// environments, DATA_DIR) as last measured; null until measured.
	DiskBytes *int64 `json:"disk_bytes"`
}

func (inv *invocation) apps(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	asJSON := fs.Bool("json", false, "")
	if _, err := parse(c, fs, args, 0, 0); err != nil {
		return err
	}
	apps, err := inv.visibleApps(ctx)
	if err != nil {
		return err
	}
	rows := make([]appJSON, len(apps))
	for i, a := range apps {
		inv.noteApp(a.Name)
		rows[i] = appJSON{Name: a.Name, State: inv.appState(a), Release: a.Release, URL: inv.d.cfg.Backend.URL(a.Name), CreatedAt: a.CreatedAt}
		if n, ok := inv.d.cfg.Backend.DiskTotal(a.Name); ok {
			rows[i].DiskBytes = &n
		}
	}
	if *asJSON {
		return writeJSON(inv.stdout, rows)
	}
	if len(rows) == 0 {
		inv.ui.Info("no apps yet: push to one, or create one with `create APP`")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tRELEASE\tDISK\tURL")
	for _, r := range rows {
		disk := "-"
		if r.DiskBytes != nil {
			disk = bytesize.Human(*r.DiskBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.State, releaseLabel(r.Release), disk, r.URL)
	}
	return tw.Flush()
}

func releaseLabel(n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("v%d", n)
}

func (inv *invocation) create(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	name := pos[0]
	if err := appname.Validate(name); err != nil {
		return usagef(c, "%v", err)
	}
	if !inv.id.CanAccess(name) {
		return failf("key %s may not use app %s", inv.id.Name, name)
	}
	if _, err := inv.d.cfg.Store.App(ctx, name); err == nil {
		return failf("app %s already exists", name)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := inv.d.cfg.Backend.Create(ctx, name); err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	inv.event(ctx, name, "create", "created app %s", name)
	inv.ui.Success(fmt.Sprintf("Created %s; push to its main branch to deploy it", name))
	return nil
}

func (inv *invocation) destroy(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	confirm := fs.String("confirm", "", "")
	purge := fs.Bool("purge", false, "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if *confirm == "" {
		inv.ui.Info(fmt.Sprintf("This removes %s: its processes, route, repository, releases and config.", a.Name))
		fmt.Fprintf(inv.stderr, "       Type the app's name to confirm: ")
		line, rerr := bufio.NewReader(io.LimitReader(inv.stdin, 1024)).ReadString('\n')
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return rerr
		}
		fmt.Fprintln(inv.stderr)
		*confirm = strings.TrimSpace(line)
		if *confirm == "" {
			return failf("nothing destroyed: type the app's name, or pass --confirm %s", a.Name)
		}
	}
	if *confirm != a.Name {
		return failf("nothing destroyed: %q is not %s", *confirm, a.Name)
	}
	inv.ui.Step("Destroying " + a.Name)
	if err := inv.d.cfg.Backend.Destroy(ctx, a.Name, *purge); err != nil {
		return fmt.Errorf("destroy %s: %w", a.Name, err)
	}
	if *purge {
		inv.event(ctx, a.Name, "destroy", "destroyed app %s and its data", a.Name)
		inv.ui.Success(a.Name + " destroyed, with its data")
	} else {
		inv.event(ctx, a.Name, "destroy", "destroyed app %s (data kept)", a.Name)
		inv.ui.Success(a.Name + " destroyed")
		inv.ui.Info("its data is kept in " + layout.New(inv.d.cfg.Root).Data(a.Name) + " (--purge removes it)")
	}
	inv.addonsAfterDestroy(ctx, a.Name, *purge)
	return nil
}

func (inv *invocation) deploy(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	noCache := fs.Bool("no-cache", false, "")
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	return inv.d.cfg.Backend.Deploy(ctx, a.Name, *noCache, inv.id.Name, inv.id.Admin, inv.ui)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
