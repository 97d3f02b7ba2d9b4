package commands

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"hop3/internal/store"
)

var configKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedKeys are set by hop3 for every process; a config var of the same
// name would be overridden, so setting one is refused rather than ignored.
var reservedKeys = map[string]bool{"APP": true, "DATA_DIR": true, "PROC_TYPE": true}

func checkKey(k string) error {
	if !configKey.MatchString(k) {
		return fmt.Errorf("invalid config key %q: use letters, digits and '_', not starting with a digit", k)
	}
	if reservedKeys[k] {
		return fmt.Errorf("%s is set by hop3 for every process and can not be changed", k)
	}
	return nil
}

// parseAssignments reads KEY=VALUE arguments, keeping each value exactly as
// given; a later assignment of the same key wins.
func parseAssignments(args []string) (map[string]string, error) {
	vars := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q is not KEY=VALUE", a)
		}
		if err := checkKey(k); err != nil {
			return nil, err
		}
		vars[k] = v
	}
	return vars, nil
}

// displayValue shows a value on one line: as is when it is printable, Go-
// quoted when it holds newlines or other control characters.
func displayValue(v string) string {
	if strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) }) >= 0 {
		return strconv.Quote(v)
	}
	return v
}

func (inv *invocation) config(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	vars, err := inv.d.cfg.Store.Config(ctx, a.Name)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(inv.stdout, vars)
	}
	return inv.printEnv(a.Name+" config vars", vars)
}

// printEnv prints variables as an aligned "KEY: value" list under a heading
// on stderr, so stdout holds only the data.
func (inv *invocation) printEnv(heading string, vars map[string]string) error {
	if len(vars) == 0 {
		inv.ui.Info(heading + ": none")
		return nil
	}
	fmt.Fprintf(inv.stderr, "=== %s\n", heading)
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 1, ' ', 0)
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(tw, "%s:\t%s\n", k, displayValue(vars[k]))
	}
	return tw.Flush()
}

func (inv *invocation) configGet(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	pos, err := parse(c, fs, args, 2, 2)
	if err != nil {
		return err
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	if !configKey.MatchString(pos[1]) {
		return usagef(c, "invalid config key %q", pos[1])
	}
	vars, err := inv.d.cfg.Store.Config(ctx, a.Name)
	if err != nil {
		return err
	}
	v, ok := vars[pos[1]]
	if !ok {
		return failf("%s has no config var %s", a.Name, pos[1])
	}
	_, err = fmt.Fprintln(inv.stdout, v)
	return err
}

func (inv *invocation) configSet(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	noRestart := fs.Bool("no-restart", false, "")
	pos, err := parse(c, fs, args, 2, -1)
	if err != nil {
		return err
	}
	// Check every argument before the app, so a typo changes nothing and
	// says why without a second try.
	vars, err := parseAssignments(pos[1:])
	if err != nil {
		return usagef(c, "%v", err)
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	// Values that shape the route are checked against the whole config they
	// would join, before anything is stored.
	current, err := inv.d.cfg.Store.Config(ctx, a.Name)
	if err != nil {
		return err
	}
	merged := maps.Clone(current)
	maps.Copy(merged, vars)
	if err := inv.d.cfg.Backend.ValidateConfig(ctx, a.Name, merged, inv.id.Admin); err != nil {
		return inv.claimError(err)
	}
	if err := inv.d.cfg.Store.SetConfig(ctx, a.Name, vars); err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(vars))
	inv.event(ctx, a.Name, "config", "set %s", strings.Join(keys, ", "))
	inv.ui.Step(fmt.Sprintf("Set %s on %s", strings.Join(keys, ", "), a.Name))
	return inv.applyConfig(ctx, a, *noRestart)
}

func (inv *invocation) configUnset(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	noRestart := fs.Bool("no-restart", false, "")
	pos, err := parse(c, fs, args, 2, -1)
	if err != nil {
		return err
	}
	keys := pos[1:]
	for _, k := range keys {
		if !configKey.MatchString(k) {
			return usagef(c, "invalid config key %q", k)
		}
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	vars, err := inv.d.cfg.Store.Config(ctx, a.Name)
	if err != nil {
		return err
	}
	var present []string
	for _, k := range keys {
		if _, ok := vars[k]; ok && !slices.Contains(present, k) {
			present = append(present, k)
		}
	}
	if len(present) == 0 {
		inv.ui.Info(fmt.Sprintf("%s has none of %s; nothing changed", a.Name, strings.Join(keys, ", ")))
		return nil
	}
	// What is left must still make a route: unsetting HOST_NAME or
	// STATIC_PATHS puts piku's NGINX_ name in use.
	rest := maps.Clone(vars)
	for _, k := range present {
		delete(rest, k)
	}
	if err := inv.d.cfg.Backend.ValidateConfig(ctx, a.Name, rest, inv.id.Admin); err != nil {
		return inv.claimError(err)
	}
	if err := inv.d.cfg.Store.UnsetConfig(ctx, a.Name, present); err != nil {
		return err
	}
	slices.Sort(present)
	inv.event(ctx, a.Name, "config", "unset %s", strings.Join(present, ", "))
	inv.ui.Step(fmt.Sprintf("Unset %s on %s", strings.Join(present, ", "), a.Name))
	return inv.applyConfig(ctx, a, *noRestart)
}

// applyConfig restarts an app so that it sees its new config, unless asked
// not to or there is nothing running to restart.
func (inv *invocation) applyConfig(ctx context.Context, a store.App, noRestart bool) error {
	switch {
	case noRestart:
		inv.ui.Info("not restarted (--no-restart): the change applies at the next restart or deploy")
		return nil
	case a.Release == 0:
		inv.ui.Info("the change applies at the first deploy")
		return nil
	case a.State == store.AppStopped:
		inv.ui.Info("the app is stopped: the change applies when it starts")
		return nil
	}
	return inv.d.cfg.Backend.ApplyConfig(ctx, a.Name, inv.ui)
}

func (inv *invocation) configLive(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	if a.Release == 0 {
		return failf("%s has not been deployed yet", a.Name)
	}
	env, err := inv.d.cfg.Backend.LiveEnv(ctx, a.Name)
	if err != nil {
		return fmt.Errorf("live environment of %s: %w", a.Name, err)
	}
	if asJSON {
		return writeJSON(inv.stdout, env)
	}
	return inv.printEnv(a.Name+" live environment", env)
}
