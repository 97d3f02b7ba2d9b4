package commands

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"hop3/internal/store"
)

const maxHostLen = 253

var hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// normalizeHost checks a host name given to domains:add or domains:remove
// and returns it lowercased (DNS names are not case-sensitive; Caddy's host
// matching is exact). A wildcard may only be the first label.
func normalizeHost(h string) (string, error) {
	switch {
	case h == "":
		return "", errors.New("empty host name")
	case strings.ContainsAny(h, ":/@?#"):
		return "", fmt.Errorf("%q: give a host name alone, without scheme, port or path", h)
	case strings.HasSuffix(h, "."):
		return "", fmt.Errorf("%q: leave out the trailing dot", h)
	case len(h) > maxHostLen:
		return "", fmt.Errorf("%q is too long for a host name (at most %d characters)", h, maxHostLen)
	}
	h = strings.ToLower(h)
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("%q: a wildcard may only be the first label, as in *.example.com", h)
	}
	for _, label := range strings.Split(name, ".") {
		if !hostLabel.MatchString(label) {
			return "", fmt.Errorf("%q is not a host name: labels are letters, digits and '-', 1 to 63 long, not starting or ending with '-'", h)
		}
	}
	return h, nil
}

// covers reports whether a host pattern (possibly *.suffix, one label
// deep as in Caddy) matches host, or the two are the same.
func covers(pattern, host string) bool {
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	label, rest, ok := strings.Cut(host, ".")
	return ok && label != "" && label != "*" && rest == suffix
}

// conflict reports which other app already answers at host or at a host the
// two would share. Every app counts, including those the caller can not see.
func (inv *invocation) conflict(ctx context.Context, app, host string) (string, error) {
	apps, err := inv.d.cfg.Store.Apps(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range apps {
		if a.Name == app {
			continue
		}
		taken := []string{a.Name + "." + inv.d.cfg.Domain}
		hosts, err := inv.d.cfg.Store.Domains(ctx, a.Name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return "", err
		}
		taken = append(taken, hosts...)
		// Host names can also come from config (piku's way).
		if vars, err := inv.d.cfg.Store.Config(ctx, a.Name); err == nil {
			for _, k := range []string{"HOST_NAME", "NGINX_SERVER_NAME"} {
				taken = append(taken, strings.FieldsFunc(strings.ToLower(vars[k]), func(r rune) bool {
					return r == ',' || r == ' ' || r == '\t' || r == '\n'
				})...)
			}
		}
		for _, t := range taken {
			if covers(host, t) || covers(t, host) {
				return a.Name, nil
			}
		}
	}
	return "", nil
}

type domainsJSON struct {
	App     string   `json:"app"`
	Default string   `json:"default"`
	Domains []string `json:"domains"`
	// FromConfig are the hosts set by HOST_NAME (or piku's
	// NGINX_SERVER_NAME) in config or the repository's ENV or .env.
	FromConfig []string `json:"from_config"`
	ConfigKey  string   `json:"config_key,omitempty"`
}

func (inv *invocation) domains(ctx context.Context, c *command, args []string) error {
	a, asJSON, err := inv.appJSON(ctx, c, args)
	if err != nil {
		return err
	}
	hosts, err := inv.d.cfg.Store.Domains(ctx, a.Name)
	if err != nil {
		return err
	}
	out := domainsJSON{App: a.Name, Default: a.Name + "." + inv.d.cfg.Domain, Domains: append([]string{}, hosts...), FromConfig: []string{}}
	// The live release's environment holds what the route was made from
	// (config over the repository's files); before the first deploy,
	// config alone.
	env, err := inv.d.cfg.Backend.LiveEnv(ctx, a.Name)
	if err != nil || a.Release == 0 {
		if env, err = inv.d.cfg.Store.Config(ctx, a.Name); err != nil {
			return err
		}
	}
	out.ConfigKey, out.FromConfig = configHosts(env, append([]string{out.Default}, hosts...))
	if asJSON {
		return writeJSON(inv.stdout, out)
	}
	fmt.Fprintf(inv.stderr, "=== %s domains\n", a.Name)
	fmt.Fprintf(inv.stdout, "%s (default)\n", out.Default)
	for _, h := range out.Domains {
		fmt.Fprintln(inv.stdout, h)
	}
	for _, h := range out.FromConfig {
		fmt.Fprintf(inv.stdout, "%s (%s)\n", h, out.ConfigKey)
	}
	return nil
}

// configHosts lists the hosts an app's environment adds, as the route
// reads them: HOST_NAME, else NGINX_SERVER_NAME, split on commas and
// blanks, "_" (any host) left out, and those in listed already.
func configHosts(env map[string]string, listed []string) (key string, hosts []string) {
	hosts = []string{}
	for _, k := range []string{"HOST_NAME", "NGINX_SERVER_NAME"} {
		if strings.TrimSpace(env[k]) != "" {
			key = k
			break
		}
	}
	if key == "" {
		return "", hosts
	}
	for _, h := range strings.FieldsFunc(strings.ToLower(env[key]), func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n'
	}) {
		h = strings.TrimSuffix(h, ".")
		if h == "" || h == "_" || slices.Contains(listed, h) || slices.Contains(hosts, h) {
			continue
		}
		hosts = append(hosts, h)
	}
	return key, hosts
}

// hostArgs checks every HOST argument before anything changes.
func hostArgs(c *command, args []string) ([]string, error) {
	var hosts []string
	for _, arg := range args {
		h, err := normalizeHost(arg)
		if err != nil {
			return nil, usagef(c, "%v", err)
		}
		if !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts, nil
}

// appHosts parses `APP HOST...` and resolves the app the caller may see.
func (inv *invocation) appHosts(ctx context.Context, c *command, args []string) (store.App, []string, error) {
	pos, err := parse(c, newFlags(c), args, 2, -1)
	if err != nil {
		return store.App{}, nil, err
	}
	hosts, err := hostArgs(c, pos[1:])
	if err != nil {
		return store.App{}, nil, err
	}
	a, err := inv.app(ctx, c, pos[0])
	return a, hosts, err
}

func (inv *invocation) domainsAdd(ctx context.Context, c *command, args []string) error {
	a, hosts, err := inv.appHosts(ctx, c, args)
	if err != nil {
		return err
	}
	own := a.Name + "." + inv.d.cfg.Domain
	existing, err := inv.d.cfg.Store.Domains(ctx, a.Name)
	if err != nil {
		return err
	}
	var add []string
	for _, h := range hosts {
		if h == "*."+inv.d.cfg.Domain {
			return failf("%s would take the address of every app", h)
		}
		if h == own || slices.Contains(existing, h) {
			inv.ui.Info(fmt.Sprintf("%s already answers at %s", a.Name, h))
			continue
		}
		if label, ok := strings.CutSuffix(h, "."+inv.d.cfg.Domain); ok && !strings.Contains(label, ".") && label != "*" {
			// <name>.<domain> is the address of the app called name, now or
			// once it is created.
			return failf("%s is reserved for an app named %s", h, label)
		}
		owner, err := inv.conflict(ctx, a.Name, h)
		if err != nil {
			return err
		}
		if owner != "" {
			return inv.claimed(h, owner)
		}
		add = append(add, h)
	}
	if len(add) == 0 {
		return nil
	}
	// Hosts other apps answer to through their config (HOST_NAME) or live
	// routes are not in the domains table: ask the orchestrator too.
	if err := inv.d.cfg.Backend.ValidateConfig(ctx, a.Name, map[string]string{"HOST_NAME": strings.Join(add, " ")}); err != nil {
		if inv.id.Admin {
			return failf("%v", err)
		}
		return failf("a host is already used by another app")
	}
	if err := inv.d.cfg.Store.AddDomains(ctx, a.Name, add); err != nil {
		if errors.Is(err, store.ErrExists) {
			// Claimed by another app since the check above.
			return failf("%s", strings.TrimPrefix(oneLine(err), "add domains to app "+a.Name+": "))
		}
		return err
	}
	if err := inv.updateRoute(ctx, a); err != nil {
		// The route refused the hosts: take them back so nothing is left
		// that would break the next deploy or start of hop3.
		if rerr := inv.d.cfg.Store.RemoveDomains(context.WithoutCancel(ctx), a.Name, add); rerr != nil {
			return fmt.Errorf("%w; additionally, removing the hosts again: %v", err, rerr)
		}
		return failf("%s", oneLine(err))
	}
	inv.event(ctx, a.Name, "domains", "added %s", strings.Join(add, ", "))
	inv.ui.Step(fmt.Sprintf("Added %s to %s", strings.Join(add, ", "), a.Name))
	return nil
}

// claimed refuses a host another app has; a deployer is not told which app
// it is, since it may not know that app exists.
func (inv *invocation) claimed(host, owner string) error {
	if inv.id.CanAccess(owner) {
		return failf("host %s is already used by app %s", host, owner)
	}
	return failf("host %s is already used by another app", host)
}

func (inv *invocation) domainsRemove(ctx context.Context, c *command, args []string) error {
	a, hosts, err := inv.appHosts(ctx, c, args)
	if err != nil {
		return err
	}
	existing, err := inv.d.cfg.Store.Domains(ctx, a.Name)
	if err != nil {
		return err
	}
	var remove []string
	for _, h := range hosts {
		switch {
		case h == a.Name+"."+inv.d.cfg.Domain:
			return failf("%s is %s's own address and can not be removed", h, a.Name)
		case !slices.Contains(existing, h):
			inv.ui.Info(fmt.Sprintf("%s does not answer at %s", a.Name, h))
		default:
			remove = append(remove, h)
		}
	}
	if len(remove) == 0 {
		return nil
	}
	if err := inv.d.cfg.Store.RemoveDomains(ctx, a.Name, remove); err != nil {
		return err
	}
	inv.event(ctx, a.Name, "domains", "removed %s", strings.Join(remove, ", "))
	inv.ui.Step(fmt.Sprintf("Removed %s from %s", strings.Join(remove, ", "), a.Name))
	return inv.updateRoute(ctx, a)
}

// updateRoute applies an app's hosts to its route, if it has one yet.
func (inv *invocation) updateRoute(ctx context.Context, a store.App) error {
	if a.Release == 0 {
		inv.ui.Info("the change applies at the first deploy")
		return nil
	}
	if err := inv.d.cfg.Backend.UpdateRoute(ctx, a.Name); err != nil {
		return fmt.Errorf("update the route of %s: %w", a.Name, err)
	}
	return nil
}
