package commands

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"hop3/internal/store"
)

type releaseJSON struct {
	Number     int        `json:"number"`  // 0 for an attempt that never went live
	Attempt    int        `json:"attempt"` // every deploy attempt, shown as dN
	Revision   string     `json:"revision"`
	Status     string     `json:"status"`
	Live       bool       `json:"live"`
	Pruned     bool       `json:"pruned,omitempty"`
	Pusher     string     `json:"pusher"`
	Detail     string     `json:"detail,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

func toReleaseJSON(r store.Release, live int) releaseJSON {
	j := releaseJSON{Number: r.Number, Attempt: r.Attempt, Revision: r.Revision, Status: r.Status.String(),
		Live: r.Number > 0 && r.Number == live, Pruned: r.Pruned, Pusher: r.Pusher, Detail: r.Detail, CreatedAt: r.CreatedAt}
	if !r.FinishedAt.IsZero() {
		t := r.FinishedAt
		j.FinishedAt = &t
	}
	return j
}

// parseReleaseNumber reads "v3" or "3".
func parseReleaseNumber(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(s, "v"))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a release number such as v3", s)
	}
	return n, nil
}

// parseReleaseRef reads a release ("v3", "3") or a deploy attempt ("d7"),
// which a failed deploy is known by.
func parseReleaseRef(s string) (number, attempt int, err error) {
	if rest, ok := strings.CutPrefix(s, "d"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n > 0 {
			return 0, n, nil
		}
		return 0, 0, fmt.Errorf("%q is not a release such as v3 or a deploy such as d7", s)
	}
	if number, err = parseReleaseNumber(s); err != nil {
		return 0, 0, fmt.Errorf("%q is not a release such as v3 or a deploy such as d7", s)
	}
	return number, 0, nil
}

func statusText(r releaseJSON) string {
	switch {
	case r.Live:
		return r.Status + " (live)"
	case r.Pruned:
		return r.Status + " (pruned)"
	}
	return r.Status
}

func releaseName(r releaseJSON) string {
	if r.Number == 0 {
		return "-"
	}
	return fmt.Sprintf("v%d", r.Number)
}

func (inv *invocation) releases(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	rs, err := inv.d.cfg.Store.Releases(ctx, a.Name)
	if err != nil {
		return err
	}
	rows := make([]releaseJSON, len(rs))
	for i, r := range rs {
		rows[i] = toReleaseJSON(r, a.Release)
	}
	if asJSON {
		return writeJSON(inv.stdout, rows)
	}
	if len(rows) == 0 {
		inv.ui.Info(a.Name + " has no releases yet")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELEASE\tDEPLOY\tREVISION\tCREATED\tBY\tSTATUS\tDETAIL")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\td%d\t%s\t%s\t%s\t%s\t%s\n", releaseName(r), r.Attempt, short(r.Revision), formatTime(r.CreatedAt), r.Pusher, statusText(r), r.Detail)
	}
	return tw.Flush()
}

func (inv *invocation) releasesInfo(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 2, 2)
	if err != nil {
		return err
	}
	n, attempt, err := parseReleaseRef(pos[1])
	if err != nil {
		return usagef(c, "%v", err)
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	var rel store.Release
	if attempt > 0 {
		rel, err = inv.d.cfg.Store.Attempt(ctx, a.Name, attempt)
		if errors.Is(err, store.ErrNotFound) {
			err = failf("%s has no deploy d%d", a.Name, attempt)
		}
	} else {
		rel, err = inv.release(ctx, a, n)
	}
	if err != nil {
		return err
	}
	r := toReleaseJSON(rel, a.Release)
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 1, ' ', 0)
	fmt.Fprintf(tw, "Release:\t%s\n", releaseName(r))
	fmt.Fprintf(tw, "Deploy:\td%d\n", r.Attempt)
	fmt.Fprintf(tw, "Revision:\t%s\n", r.Revision)
	fmt.Fprintf(tw, "Status:\t%s\n", statusText(r))
	fmt.Fprintf(tw, "Pushed by:\t%s\n", r.Pusher)
	fmt.Fprintf(tw, "Created:\t%s\n", formatTime(r.CreatedAt))
	if r.FinishedAt != nil {
		fmt.Fprintf(tw, "Finished:\t%s (took %s)\n", formatTime(*r.FinishedAt), formatDuration(r.FinishedAt.Sub(r.CreatedAt)))
	}
	if r.Detail != "" {
		fmt.Fprintf(tw, "Detail:\t%s\n", r.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	f, err := os.Open(inv.d.cfg.Backend.BuildLog(a.Name, rel))
	if errors.Is(err, os.ErrNotExist) {
		inv.ui.Info("no build log kept for this release")
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintln(inv.stdout, "\n=== build log")
	_, err = io.Copy(inv.stdout, f)
	return err
}

// release finds release n of app, naming the releases there are if not.
func (inv *invocation) release(ctx context.Context, a store.App, n int) (store.Release, error) {
	rel, err := inv.d.cfg.Store.Release(ctx, a.Name, n)
	if errors.Is(err, store.ErrNotFound) {
		rs, lerr := inv.d.cfg.Store.Releases(ctx, a.Name)
		highest := 0
		for _, r := range rs {
			highest = max(highest, r.Number)
		}
		if lerr == nil && highest > 0 {
			return rel, failf("%s has no release v%d (its releases are v1 to v%d)", a.Name, n, highest)
		}
		return rel, failf("%s has no release v%d", a.Name, n)
	}
	return rel, err
}

func (inv *invocation) rollback(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 1, 2)
	if err != nil {
		return err
	}
	n := 0
	if len(pos) == 2 {
		if n, err = parseReleaseNumber(pos[1]); err != nil {
			return usagef(c, "%v", err)
		}
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet", a.Name)
	}
	if n != 0 {
		rel, err := inv.release(ctx, a, n)
		if err != nil {
			return err
		}
		switch {
		case n == a.Release:
			return failf("v%d is already live", n)
		case rel.Status == store.Building:
			return failf("v%d is still building", n)
		case rel.Status != store.Succeeded:
			return failf("v%d %s; roll back to a release that succeeded", n, rel.Status)
		}
	}
	return inv.d.cfg.Backend.Rollback(ctx, a.Name, n, inv.id.Name, inv.ui)
}

func short(rev string) string {
	if len(rev) > 7 {
		return rev[:7]
	}
	return rev
}

// formatTime shows a time in UTC to the second: the server's clock, the
// same for everyone who reads it.
func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}
