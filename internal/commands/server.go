package commands

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"text/tabwriter"
	"time"

	"hop3/internal/store"
)

const defaultEvents = 50

func (inv *invocation) events(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	n := fs.Int("n", defaultEvents, "")
	follow := fs.Bool("f", false, "")
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
	evs = inv.visibleEvents(evs, app, *n)
	if len(evs) == 0 && !*follow {
		inv.ui.Info("no events yet")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tAPP\tKIND\tBY\tMESSAGE")
	var last int64
	print := func(evs []store.Event) error {
		for _, e := range evs {
			app, actor := e.App, e.Actor
			if app == "" {
				app = "-"
			}
			if actor == "" {
				actor = "hop3"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", formatTime(e.Time), app, e.Kind, actor, e.Message)
			last = max(last, e.ID)
		}
		return tw.Flush()
	}
	if err := print(evs); err != nil || !*follow {
		return err
	}
	// Follow: new events are polled from the store, whoever wrote them
	// (the daemon, or a local `hop3 keys add`).
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		recent, err := inv.d.cfg.Store.Events(ctx, app, 200)
		if err != nil {
			return nil
		}
		var fresh []store.Event
		for _, e := range inv.visibleEvents(recent, app, 200) {
			if e.ID > last {
				fresh = append(fresh, e)
			}
		}
		if err := print(fresh); err != nil {
			return nil // the client went away
		}
	}
}

// visibleEvents keeps what the caller may see: a deployer sees the events
// of its apps only. It returns at most n, the newest.
func (inv *invocation) visibleEvents(evs []store.Event, app string, n int) []store.Event {
	if app == "" && !inv.id.Admin {
		kept := evs[:0:0]
		for _, e := range evs {
			if e.App != "" && inv.id.CanAccess(e.App) {
				kept = append(kept, e)
			}
		}
		evs = kept
	}
	if len(evs) > n {
		evs = evs[len(evs)-n:]
	}
	return evs
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
