package commands

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"
)

const defaultEvents = 50

func (inv *invocation) events(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	n := fs.Int("n", defaultEvents, "")
	pos, err := parse(c, fs, args, 0, 1)
	if err != nil {
		return err
	}
	if *n <= 0 || *n > 10000 {
		return usagef(c, "-n must be between 1 and 10000")
	}
	app := ""
	if len(pos) == 1 {
		a, err := inv.app(ctx, c, pos[0])
		if err != nil {
			return err
		}
		app = a.Name
	}
	// A deployer sees the events of its apps only: fetch more and filter.
	limit := *n
	if app == "" && !inv.id.Admin {
		limit = 0
	}
	evs, err := inv.d.cfg.Store.Events(ctx, app, limit)
	if err != nil {
		return err
	}
	if app == "" && !inv.id.Admin {
		kept := evs[:0]
		for _, e := range evs {
			if e.App != "" && inv.id.CanAccess(e.App) {
				kept = append(kept, e)
			}
		}
		evs = kept
		if len(evs) > *n {
			evs = evs[len(evs)-*n:]
		}
	}
	if len(evs) == 0 {
		inv.ui.Info("no events yet")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAPP\tKIND\tBY\tMESSAGE")
	for _, e := range evs {
		app, actor := e.App, e.Actor
		if app == "" {
			app = "-"
		}
		if actor == "" {
			actor = "hop3"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", formatTime(e.Time), app, e.Kind, actor, e.Message)
	}
	return tw.Flush()
}

func (inv *invocation) version(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	if _, err := parse(c, fs, args, 0, 0); err != nil {
		return err
	}
	granian := inv.d.cfg.GranianVersion
	if granian == "" {
		granian = "unknown"
	} else {
		granian += " (installed into Python apps unless they pin another)"
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "hop3\t%s\n", inv.d.cfg.Version)
	fmt.Fprintf(tw, "caddy\t%s\n", caddyVersion(ctx, inv.d.cfg.CaddyBin))
	fmt.Fprintf(tw, "granian\t%s\n", granian)
	return tw.Flush()
}

// caddyVersion asks the Caddy binary hop3 runs for its version.
func caddyVersion(ctx context.Context, bin string) string {
	if bin == "" {
		return "unknown"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "version")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	v, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
	// "v2.10.0 h1:..." : the module hash says nothing to people.
	v, _, _ = strings.Cut(v, " ")
	return v
}
