package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"hop3/internal/hostclaim"
	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/internal/ui"
)

type domainsJSON struct {
	App     string   `json:"app"`
	Default string   `json:"default"`
	Domains []string `json:"domains"`
	// FromConfig are the hosts set by HOST_NAME (or piku's
	// NGINX_SERVER_NAME) in config or the repository's ENV or .env.
	FromConfig []string `json:"from_config"`
	ConfigKey  string   `json:"config_key,omitempty"`
	// Certificates are each host's certificate, in the order above, when
	// TLS is on.
	Certificates []certJSON `json:"certificates,omitempty"`
}

type certJSON struct {
	Host      string     `json:"host"`
	State     string     `json:"state"` // valid, pending or failing
	NotAfter  *time.Time `json:"not_after,omitempty"`
	Issuer    string     `json:"issuer,omitempty"`
	LastError string     `json:"last_error,omitempty"`
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
	if inv.d.cfg.Certs != nil {
		all := append(append([]string{out.Default}, out.Domains...), out.FromConfig...)
		for _, s := range inv.d.cfg.Certs(all) {
			cj := certJSON{Host: s.Host, State: s.State, Issuer: s.Issuer, LastError: s.LastError}
			if !s.NotAfter.IsZero() {
				t := s.NotAfter.UTC()
				cj.NotAfter = &t
			}
			out.Certificates = append(out.Certificates, cj)
		}
	}
	if asJSON {
		return writeJSON(inv.stdout, out)
	}
	fmt.Fprintf(inv.stderr, "=== %s domains\n", a.Name)
	if inv.d.cfg.Certs != nil {
		return writeDomainCerts(inv, out)
	}
	fmt.Fprintf(inv.stdout, "%s (default)\n", out.Default)
	for _, h := range out.Domains {
		fmt.Fprintln(inv.stdout, h)
	}
	for _, h := range out.FromConfig {
		fmt.Fprintf(inv.stdout, "%s (%s)\n", h, out.ConfigKey)
	}
	return nil
}

// writeDomainCerts lists hosts with a CERT column.
func writeDomainCerts(inv *invocation, out domainsJSON) error {
	tw := tabwriter.NewWriter(inv.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCERT")
	labels := []string{out.Default + " (default)"}
	labels = append(labels, out.Domains...)
	for _, h := range out.FromConfig {
		labels = append(labels, h+" ("+out.ConfigKey+")")
	}
	for i, l := range labels {
		cert := "-"
		if i < len(out.Certificates) {
			cert = certText(out.Certificates[i])
		}
		fmt.Fprintf(tw, "%s\t%s\n", l, cert)
	}
	return tw.Flush()
}

// certText is router.CertStatus.String for the listing's form.
func certText(c certJSON) string {
	s := router.CertStatus{State: c.State, LastError: c.LastError}
	if c.NotAfter != nil {
		s.NotAfter = *c.NotAfter
	}
	return s.String()
}

// configHosts lists the hosts an app's environment adds, as the route
// reads them (hostclaim.FromConfig), but those in listed already.
func configHosts(env map[string]string, listed []string) (key string, hosts []string) {
	key, all := hostclaim.FromConfig(env)
	hosts = []string{}
	for _, h := range all {
		if !slices.Contains(listed, h) {
			hosts = append(hosts, h)
		}
	}
	return key, hosts
}

// hostArgs checks every HOST argument before anything changes.
func hostArgs(c *command, args []string) ([]string, error) {
	var hosts []string
	for _, arg := range args {
		h, err := hostclaim.Normalize(arg)
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
		if h == own || slices.Contains(existing, h) {
			inv.ui.Info(fmt.Sprintf("%s already answers at %s", a.Name, h))
			continue
		}
		add = append(add, h)
	}
	if len(add) == 0 {
		return nil
	}
	// The one host rule, as the caller's role allows (the identity travels
	// in ctx), against every other app's domains, config and live routes.
	if err := inv.d.cfg.Backend.ValidateConfig(ctx, a.Name, map[string]string{"HOST_NAME": strings.Join(add, " ")}, inv.id.Admin); err != nil {
		return inv.claimError(err)
	}
	if err := inv.d.cfg.Store.AddDomains(ctx, a.Name, add); err != nil {
		if errors.Is(err, store.ErrExists) {
			// Claimed by another app since the check above.
			return failf("%s", strings.TrimPrefix(ui.OneLine(err.Error()), "add domains to app "+a.Name+": "))
		}
		return err
	}
	if err := inv.updateRoute(ctx, a); err != nil {
		// The route refused the hosts: take them back so nothing is left
		// that would break the next deploy or start of hop3.
		if rerr := inv.d.cfg.Store.RemoveDomains(context.WithoutCancel(ctx), a.Name, add); rerr != nil {
			return fmt.Errorf("%w; additionally, removing the hosts again: %v", err, rerr)
		}
		return failf("%s", ui.OneLine(err.Error()))
	}
	inv.event(ctx, a.Name, "domains", "added %s", strings.Join(add, ", "))
	inv.ui.Step(fmt.Sprintf("Added %s to %s", strings.Join(add, ", "), a.Name))
	return nil
}

// claimError reports a refused config change or host claim in one line. A
// deployer is not told which app holds a custom host, since it may not know
// that app exists; a name under the platform's domain tells it anyway.
func (inv *invocation) claimError(err error) error {
	var ce *hostclaim.Error
	if errors.As(err, &ce) && ce.Owner != "" && !inv.id.CanAccess(ce.Owner) {
		if owner, _ := (hostclaim.Rule{Domain: inv.d.cfg.Domain}).Namespace(ce.Host); owner != ce.Owner {
			return failf("host %s is already used by another app", ce.Host)
		}
	}
	return failf("%s", ui.OneLine(err.Error()))
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
