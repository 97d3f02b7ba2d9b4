package commands

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"hop3/bytesize"
	"hop3/internal/layout"
	"hop3/internal/store"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// maxScale bounds ps:scale: more processes of one kind than this on one
// server is a typo, not a plan.
const maxScale = 32

type processJSON struct {
	Process    string     `json:"process"` // kind.index
	Kind       string     `json:"kind"`
	Index      int        `json:"index"`
	Release    int        `json:"release"`
	State      string     `json:"state"`
	PID        int        `json:"pid"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	UptimeSecs float64    `json:"uptime_seconds"`
	Restarts   int        `json:"restarts"`
	RSSBytes   int64      `json:"rss_bytes"`
	CPUSecs    float64    `json:"cpu_seconds"`
	LastExit   string     `json:"last_exit,omitempty"`
	// User is the uid the process runs as: the app's own, or hop3's when
	// hop3 cannot switch users.
	User string `json:"user,omitempty"`
	// Connections is, while draining, how many connections the process
	// still has open on its socket or port (requests, WebSockets, idle
	// keep-alive connections from Caddy).
	Connections *int `json:"connections,omitempty"`
	// Public lists what it listens on that other machines can reach.
	Public []string `json:"public_listeners,omitempty"`
	// Workers is a wsgi/asgi process's number of Granian workers, and
	// Scaling says whether hop3 adjusts it ("auto") or the app set it
	// ("pinned": ps:scale, GRANIAN_WORKERS or WEB_CONCURRENCY).
	Workers int    `json:"workers,omitempty"`
	Scaling string `json:"scaling,omitempty"`
}

func (inv *invocation) ps(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	rows := inv.processRows(a.Name, time.Now())
	if asJSON {
		return writeJSON(inv.stdout, rows)
	}
	switch {
	case len(rows) > 0:
	case a.Release == 0:
		inv.ui.Info(a.Name + " has not been deployed yet")
		return nil
	case a.State == store.AppStopped:
		inv.ui.Info(a.Name + " is stopped (start it with `start " + a.Name + "`)")
		return nil
	case !a.Asleep.IsZero():
		inv.ui.Info(fmt.Sprintf("%s is sleeping since %s: idle for its SLEEP_AFTER, its processes are stopped; its next request starts them", a.Name, a.Asleep.Local().Format(time.DateTime)))
		return nil
	default:
		inv.ui.Info(a.Name + " has no processes")
		return nil
	}
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tRELEASE\tSTATE\tPID\tUPTIME\tRESTARTS\tMEMORY\tCPU\tWORKERS\tUSER")
	for _, r := range rows {
		pid, uptime, mem, cpu := "-", "-", "-", "-"
		if r.PID > 0 {
			pid = strconv.Itoa(r.PID)
			mem = bytesize.Human(r.RSSBytes)
			cpu = formatSeconds(r.CPUSecs)
		}
		if r.StartedAt != nil && r.State == supervisor.Running.String() {
			uptime = formatDuration(time.Duration(r.UptimeSecs * float64(time.Second)))
		}
		state := r.State
		if r.Connections != nil {
			state = fmt.Sprintf("%s (%d open)", state, *r.Connections)
		}
		workers := "-"
		if r.Workers > 0 {
			workers = fmt.Sprintf("%d (%s)", r.Workers, r.Scaling)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Process, releaseLabel(r.Release), state, pid, uptime, r.Restarts, mem, cpu, workers, userLabel(r.User))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range rows {
		if r.State == supervisor.Crashed.String() && r.LastExit != "" {
			inv.ui.Fail(fmt.Sprintf("%s gave up restarting: %s (see `logs %s --process %s`)", r.Process, r.LastExit, a.Name, r.Kind))
		}
		if len(r.Public) > 0 {
			inv.ui.Fail(supervisor.ExposedNotice(r.Process, r.Public))
		}
	}
	return nil
}

// processes lists the app's supervised processes, then those of its
// add-ons.
func (inv *invocation) processes(app string) []supervisor.Status {
	procs := inv.d.cfg.Backend.Processes(app)
	if inv.d.cfg.Addons != nil {
		procs = append(procs, inv.d.cfg.Addons.Processes(app)...)
	}
	return procs
}

// processRows describes the app's supervised processes with the resources
// their process groups use.
func (inv *invocation) processRows(app string, now time.Time) []processJSON {
	procs := inv.processes(app)
	var pgids []int
	for _, p := range procs {
		if p.PID > 0 {
			pgids = append(pgids, p.PID)
		}
	}
	usage := supervisor.GroupUsage("/proc", pgids)
	rows := make([]processJSON, 0, len(procs))
	for _, p := range procs {
		kind := p.Labels["kind"]
		index, _ := strconv.Atoi(p.Labels["index"])
		rel, _ := strconv.Atoi(p.Labels["release"])
		r := processJSON{
			Process:  fmt.Sprintf("%s.%d", kind, index),
			Kind:     kind,
			Index:    index,
			Release:  rel,
			State:    p.State.String(),
			PID:      p.PID,
			Restarts: p.Restarts,
			LastExit: p.LastExit,
			User:     p.Labels["uid"],
			Scaling:  p.Labels["scaling"],
		}
		r.Workers, _ = strconv.Atoi(p.Labels["workers"])
		if !p.StartedAt.IsZero() {
			t := p.StartedAt
			r.StartedAt = &t
			r.UptimeSecs = now.Sub(t).Seconds()
		}
		if u, ok := usage[p.PID]; ok && p.PID > 0 {
			r.RSSBytes, r.CPUSecs = u.RSS, u.CPU
		}
		if p.PID > 0 {
			if socks, err := supervisor.GroupSockets(p.PID); err == nil {
				r.Public = socks.Public()
				if p.State == supervisor.Draining {
					n := socks.Connections
					r.Connections = &n
				}
			}
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.Release < b.Release
	})
	return rows
}

func (inv *invocation) psScale(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 2, -1)
	if err != nil {
		return err
	}
	counts := map[string]int{}
	for _, arg := range pos[1:] {
		kind, n, err := parseCount(arg)
		if err != nil {
			return usagef(c, "%v", err)
		}
		counts[kind] = n
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet: its Procfile names the kinds to scale", a.Name)
	}
	kinds, err := liveKinds(inv.d.cfg.Root, a.Name, a.Release)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(kinds, k) {
			msg := fmt.Sprintf("%s's Procfile (v%d) has no process %q", a.Name, a.Release, k)
			if s := suggest(k, kinds); s != "" {
				msg += "; did you mean " + s + "?"
			} else if len(kinds) > 0 {
				msg += " (it has " + strings.Join(kinds, ", ") + ")"
			}
			return failf("%s", msg)
		}
	}
	if err := inv.d.cfg.Backend.ValidateScale(ctx, a.Name, counts); err != nil {
		return err
	}
	var desc []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		desc = append(desc, k+"="+countLabel(counts[k]))
	}
	inv.ui.Step(fmt.Sprintf("Scaling %s: %s", a.Name, strings.Join(desc, " ")))
	if err := inv.d.cfg.Backend.Scale(ctx, a.Name, counts, inv.ui); err != nil {
		return err
	}
	inv.event(ctx, a.Name, "scale", "scaled %s", strings.Join(desc, " "))
	return nil
}

// autoCount is how ps:scale names store.ScaleAuto: the worker budget
// decides the count.
const autoCount = "auto"

// parseCount reads one KIND=N or KIND=auto argument of ps:scale; auto is
// store.ScaleAuto.
func parseCount(arg string) (string, int, error) {
	kind, num, ok := strings.Cut(arg, "=")
	if !ok || kind == "" {
		return "", 0, fmt.Errorf("%q is not KIND=N", arg)
	}
	if num == autoCount {
		return kind, store.ScaleAuto, nil
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %q is not a whole number or auto", arg, num)
	}
	if n < 0 || n > maxScale {
		return "", 0, fmt.Errorf("%q: the count must be between 0 and %d", arg, maxScale)
	}
	return kind, n, nil
}

// countLabel shows a count parseCount read.
func countLabel(n int) string {
	if n == store.ScaleAuto {
		return autoCount
	}
	return strconv.Itoa(n)
}

// liveKinds lists the process kinds of a release's Procfile, read from the
// release's source as the deploy did (hop3/Procfile, else Procfile).
func liveKinds(root, app string, number int) ([]string, error) {
	dir := layout.New(root).Release(app, number)
	name, static := procfile.Find(dir)
	var src io.Reader
	switch {
	case name != "":
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, fmt.Errorf("read Procfile of %s v%d: %w", app, number, err)
		}
		defer f.Close()
		src = f
	case static:
		src = strings.NewReader(procfile.StaticSite)
	default:
		return nil, fmt.Errorf("release v%d of %s has no Procfile", number, app)
	}
	pf, err := procfile.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("read Procfile of %s v%d: %w", app, number, err)
	}
	var kinds []string
	for _, e := range pf.Processes() {
		kinds = append(kinds, e.Name)
	}
	return kinds, nil
}

// lifecycle runs one of restart, stop and start.
func (inv *invocation) lifecycle(ctx context.Context, c *command, args []string, verb string, fn func(ctx context.Context, a store.App) error) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 1, 1)
	if err != nil {
		return err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet", a.Name)
	}
	if err := fn(ctx, a); err != nil {
		return err
	}
	inv.event(ctx, a.Name, c.name, "%s %s", verb, a.Name)
	return nil
}

func (inv *invocation) restart(ctx context.Context, c *command, args []string) error {
	return inv.lifecycle(ctx, c, args, "restarted", func(ctx context.Context, a store.App) error {
		return inv.d.cfg.Backend.Restart(ctx, a.Name, inv.ui)
	})
}

func (inv *invocation) stop(ctx context.Context, c *command, args []string) error {
	return inv.lifecycle(ctx, c, args, "stopped", func(ctx context.Context, a store.App) error {
		return inv.d.cfg.Backend.StopApp(ctx, a.Name, inv.ui)
	})
}

func (inv *invocation) start(ctx context.Context, c *command, args []string) error {
	return inv.lifecycle(ctx, c, args, "started", func(ctx context.Context, a store.App) error {
		return inv.d.cfg.Backend.StartApp(ctx, a.Name, inv.ui)
	})
}

func formatSeconds(s float64) string {
	return formatDuration(time.Duration(s * float64(time.Second)))
}

// formatDuration is a short, human duration: 850ms, 42s, 3m12s, 5h07m, 3d4h.
func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}

// userLabel shows who a process runs as: "uid 62001", or "hop3 (uid 1000)"
// when it shares hop3's user, which leaves the app unconfined.
func userLabel(uid string) string {
	if uid == "" {
		return "-"
	}
	if uid == strconv.Itoa(os.Getuid()) {
		return "hop3 (uid " + uid + ")"
	}
	return "uid " + uid
}
