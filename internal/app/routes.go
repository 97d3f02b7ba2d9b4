package app

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"hop3/bytesize"
	"hop3/internal/hostclaim"
	"hop3/internal/router"
	"hop3/internal/staticserve"
	"hop3/internal/store"
	"hop3/procfile"
)

// routeFor describes how Caddy reaches an app. For wsgi, asgi and static
// apps it depends only on stable paths (the socket symlink, the current
// release link) and on config, so a deploy produces the same route and
// changes nothing in Caddy. A web process listens on a TCP port chosen per
// start, so its route follows the newest running generation.
func (m *Manager) routeFor(ctx context.Context, r release) (router.Route, bool, error) {
	e, ok := r.procfile.Routed()
	if !ok {
		return router.Route{}, false, nil
	}
	hosts, err := m.hosts(ctx, r.app, r.env)
	if err != nil {
		return router.Route{}, false, err
	}
	route := router.Route{App: r.app, Hosts: hosts, HTTPSOnly: truthy(r.env["HTTPS_ONLY"]) || truthy(r.env["NGINX_HTTPS_ONLY"])}
	mounts, err := m.staticMounts(r)
	if err != nil {
		return router.Route{}, false, err
	}
	for _, mt := range mounts {
		if mt.Prefix != "/" {
			route.StaticPaths = append(route.StaticPaths, mt.Prefix)
		}
	}
	if len(mounts) > 0 {
		route.StaticServer = "unix/" + m.paths.StaticSocket(r.app)
	}
	if route.MaxBodySize, err = maxBodySize(r.env); err != nil {
		return router.Route{}, false, err
	}
	switch e.Kind {
	case procfile.KindStatic:
		route.Static = true
	case procfile.KindWSGI, procfile.KindASGI:
		route.Upstreams = []string{"unix/" + m.paths.WebSocket(r.app)}
	case procfile.KindPHP:
		m.phpRoute(&route, r, e)
	case procfile.KindWeb:
		route.Upstreams = m.webUpstreams(r.app)
		if len(route.Upstreams) == 0 {
			return router.Route{}, false, nil
		}
	default:
		return router.Route{}, false, nil
	}
	if err := route.Validate(); err != nil {
		return router.Route{}, false, err
	}
	return route, true, nil
}

// hosts are the names an app answers to: <app>.<domain>, the domains added
// with domains:add, and HOST_NAME (piku's NGINX_SERVER_NAME). Each is
// checked by the host rule as an admin's claim: what was stored was admitted
// under the rule of whoever stored it, but a name in another app's name
// space, or one another app already answers to, is refused with that app's
// name (see ClaimHosts for a new claim).
func (m *Manager) hosts(ctx context.Context, app string, env map[string]string) ([]string, error) {
	hosts := []string{app + "." + m.cfg.Domain}
	extra, err := m.cfg.Store.Domains(ctx, app)
	if err != nil {
		return nil, err
	}
	hosts = append(hosts, extra...)
	hosts = append(hosts, configHosts(env)...)
	rule := m.claimRule()
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		h = strings.TrimSuffix(h, ".")
		if h == "" || h == "_" || seen[strings.ToLower(h)] {
			continue
		}
		n, err := hostclaim.Normalize(h)
		if err != nil {
			return nil, fmt.Errorf("invalid host name %q", h)
		}
		if err := rule.Check(app, n, true, m.hostOwner(ctx, n)); err != nil {
			return nil, err
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}

// configHosts are the host names config vars give: HOST_NAME, else piku's
// NGINX_SERVER_NAME.
func configHosts(env map[string]string) []string {
	_, hosts := hostclaim.FromConfig(env)
	return hosts
}

// anyConfigHosts are the host names of both variables: the one not in use
// now is claimed too, since unsetting the other puts it in use.
func anyConfigHosts(env map[string]string) []string {
	var hosts []string
	for _, k := range hostclaim.ConfigVars {
		hosts = append(hosts, hostclaim.Split(env[k])...)
	}
	return hosts
}

func (m *Manager) claimRule() hostclaim.Rule { return hostclaim.Rule{Domain: m.cfg.Domain} }

// hostOwner lists the app that answers to exactly host, from the store's
// domains and from the routes already in Caddy.
func (m *Manager) hostOwner(ctx context.Context, host string) []hostclaim.Held {
	if owner, err := m.cfg.Store.DomainOwner(ctx, host); err == nil {
		return []hostclaim.Held{{App: owner, Host: host}}
	}
	for _, rt := range m.liveRoutes() {
		for _, h := range rt.Hosts {
			if strings.EqualFold(h, host) {
				return []hostclaim.Held{{App: rt.App, Host: host}}
			}
		}
	}
	return nil
}

// liveRoutes are the routes the router holds, when it can list them.
func (m *Manager) liveRoutes() []router.Route {
	if lister, ok := m.cfg.Router.(interface{ Routes() []router.Route }); ok {
		return lister.Routes()
	}
	return nil
}

// appHosts lists the hosts one app holds: its domains, the hosts of its
// stored config and those of its route (which include a pushed .env's).
func (m *Manager) appHosts(ctx context.Context, app string, routes []router.Route) ([]string, error) {
	hosts, err := m.cfg.Store.Domains(ctx, app)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	config, err := m.cfg.Store.Config(ctx, app)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	hosts = append(hosts, anyConfigHosts(config)...)
	for _, rt := range routes {
		if rt.App == app {
			hosts = append(hosts, rt.Hosts...)
		}
	}
	var out []string
	for _, h := range hosts {
		if n, err := hostclaim.Normalize(strings.TrimSuffix(h, ".")); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// ClaimHosts checks that app may answer at hosts, asked by an admin's key
// or not (admin), with the one host rule (package hostclaim) every entry
// point shares: domains:add,
// HOST_NAME through config:set or a pushed .env, and an import. Hosts the
// app already holds are not claimed again, so a deployer's push is not
// refused for a host an admin gave the app. It stores nothing.
func (m *Manager) ClaimHosts(ctx context.Context, app string, hosts []string, admin bool) error {
	routes := m.liveRoutes()
	mine, err := m.appHosts(ctx, app, routes)
	if err != nil {
		return err
	}
	var held []hostclaim.Held
	loaded := false
	rule := m.claimRule()
	for _, h := range hosts {
		n, err := hostclaim.Normalize(h)
		if err != nil {
			return fmt.Errorf("invalid host name %q", h)
		}
		if slices.Contains(mine, n) {
			continue
		}
		if !loaded {
			if held, err = m.heldHosts(ctx, app, routes); err != nil {
				return err
			}
			loaded = true
		}
		if err := rule.Check(app, n, admin, held); err != nil {
			return err
		}
	}
	return nil
}

// heldHosts lists the hosts every app other than app holds.
func (m *Manager) heldHosts(ctx context.Context, app string, routes []router.Route) ([]hostclaim.Held, error) {
	apps, err := m.cfg.Store.Apps(ctx)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	for _, a := range apps {
		names[a.Name] = true
	}
	for _, rt := range routes {
		names[rt.App] = true
	}
	var held []hostclaim.Held
	for name := range names {
		if name == app {
			continue
		}
		hosts, err := m.appHosts(ctx, name, routes)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			held = append(held, hostclaim.Held{App: name, Host: h})
		}
	}
	return held, nil
}

// staticMounts lists the files a routed release serves through its static
// file server (hop3 serve-static, see staticSpec): its STATIC_PATHS, then
// the whole site for a static: entry. Each mount names a root hop3
// controls (the current release link, or DATA_DIR) and a directory beneath
// it: the server resolves every file beneath that directory, so no symlink
// the app makes, now or later, leads it elsewhere.
func (m *Manager) staticMounts(r release) ([]staticserve.Mount, error) {
	e, ok := r.procfile.Routed()
	if !ok {
		return nil, nil
	}
	mounts, err := m.staticPaths(r.app, first(r.env, "STATIC_PATHS", "NGINX_STATIC_PATHS"))
	if err != nil {
		return nil, err
	}
	if e.Kind == procfile.KindStatic {
		catchAll := strings.TrimPrefix(first(r.env, "CATCH_ALL", "NGINX_CATCH_ALL"), "/")
		if catchAll != "" {
			catchAll = filepath.Clean(catchAll)
		}
		mounts = append(mounts, staticserve.Mount{Prefix: "/", Root: m.paths.Current(r.app), Dir: filepath.Clean(e.Command), CatchAll: catchAll})
	}
	if e.Kind == procfile.KindPHP {
		mounts = append(mounts, staticserve.Mount{Prefix: "/", Root: m.paths.Current(r.app), Dir: phpDocRoot(r.env, e), Script: router.PHPFrontController})
	}
	return mounts, nil
}

// staticPaths parses "/static:public/static,/media:data/media". A relative
// directory is inside the live release (through the current link, so a
// deploy changes no route); an absolute one must be inside the app's
// DATA_DIR. Anything that leaves those is refused; what the directories'
// symlinks point to is checked by the static file server, per request.
func (m *Manager) staticPaths(app, spec string) ([]staticserve.Mount, error) {
	var out []staticserve.Mount
	for _, item := range splitList(spec) {
		prefix, dir, ok := strings.Cut(item, ":")
		if !ok || !strings.HasPrefix(prefix, "/") || dir == "" {
			return nil, fmt.Errorf("STATIC_PATHS entry %q: use /url:directory", item)
		}
		root, abs := m.paths.Current(app), ""
		if filepath.IsAbs(dir) {
			root, abs = m.paths.Data(app), filepath.Clean(dir)
			if !within(root, abs) {
				return nil, fmt.Errorf("STATIC_PATHS entry %q: an absolute directory must be inside DATA_DIR (%s)", item, root)
			}
		} else if abs = filepath.Join(root, dir); !within(root, abs) {
			return nil, fmt.Errorf("STATIC_PATHS entry %q: the directory leaves the app", item)
		}
		rel, err := filepath.Rel(root, abs)
		if err != nil {
			return nil, fmt.Errorf("STATIC_PATHS entry %q: %w", item, err)
		}
		out = append(out, staticserve.Mount{Prefix: strings.TrimSuffix(prefix, "/"), Root: root, Dir: rel})
	}
	return out, nil
}

// webUpstreams lists the ports of the newest generation of app's web
// processes.
func (m *Manager) webUpstreams(app string) []string {
	newest := -1
	var ups []string
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] != app || st.Labels["port"] == "" {
			continue
		}
		gen, _ := strconv.Atoi(st.Labels["gen"])
		switch {
		case gen > newest:
			newest, ups = gen, []string{"127.0.0.1:" + st.Labels["port"]}
		case gen == newest:
			ups = append(ups, "127.0.0.1:"+st.Labels["port"])
		}
	}
	return ups
}

func (m *Manager) route(ctx context.Context, r release) error {
	route, ok, err := m.routeFor(ctx, r)
	if err != nil || !ok {
		return err
	}
	return m.cfg.Router.Set(ctx, route)
}

// first returns the first of keys set in env: hop3's name, then piku's.
func first(env map[string]string, keys ...string) string {
	for _, k := range keys {
		if v := strings.TrimSpace(env[k]); v != "" {
			return v
		}
	}
	return ""
}

// splitList splits on commas and white space.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// truthy reads a yes/no config var (HTTPS_ONLY, ACCESS_LOG, HOP3_NO_CACHE,
// ...) the one way they all read: 1, true, yes or on, in any case, is yes;
// anything else, unset included, is no.
func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// maxBodySize reads an app's MAX_BODY_SIZE (0 when unset: no limit).
func maxBodySize(env map[string]string) (int64, error) { return sizeEnv(env, "MAX_BODY_SIZE") }

// sizeEnv reads the size config var name (0 when unset), as every size
// setting reads (package bytesize); the error names the variable.
func sizeEnv(env map[string]string, name string) (int64, error) {
	v := env[name]
	if v == "" {
		return 0, nil
	}
	n, err := bytesize.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return n, nil
}

// ValidateConfig checks config vars that shape the route (hosts, static
// paths, sizes) before they are stored, so a bad value is refused with a
// reason instead of breaking the app's route later. The route is built by
// the code that builds it at every start (routeFor), for the live release's
// Procfile or, before the first deploy, a probe one; new host names are
// claimed as an admin's key or a deployer's (admin).
func (m *Manager) ValidateConfig(ctx context.Context, app string, vars map[string]string, admin bool) error {
	env := map[string]string{}
	for k, v := range vars {
		// No process could start with it: exec refuses NUL in the environment.
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s: a value may not contain a NUL byte", k)
		}
		env[k] = v
	}
	probe := release{app: app, env: env, procfile: m.probeProcfile(ctx, app)}
	route, _, err := m.routeFor(ctx, probe)
	if err != nil {
		return err
	}
	if err := m.ClaimHosts(ctx, app, append(route.Hosts, anyConfigHosts(env)...), admin); err != nil {
		return err
	}
	if _, err := maxBodySize(env); err != nil {
		return err
	}
	if _, err := appReleaseSize(env); err != nil {
		return err
	}
	if err := checkBackpressure(env); err != nil {
		return err
	}
	for _, k := range []string{"APP_START_TIMEOUT", "STOP_TIMEOUT", "BUILD_TIMEOUT", "DRAIN_TIMEOUT", "WS_DRAIN_TIMEOUT", "SETTLE_TIME"} {
		if v := strings.TrimSpace(env[k]); v != "" && durationEnv(env, k, -1) < 0 {
			return fmt.Errorf("%s %q: use seconds (60) or a duration (90s)", k, v)
		}
	}
	if _, err := keepReleases(env); err != nil {
		return err
	}
	if _, err := readPHPSettings(env); err != nil {
		return err
	}
	if _, err := ParseSleepAfter(env[SleepAfterKey]); err != nil {
		return err
	}
	return nil
}

// probeProcfile is the Procfile a config change is checked against: the
// live release's when it is routed, else one wsgi entry, so that every
// value that shapes a proxied route is checked.
func (m *Manager) probeProcfile(ctx context.Context, app string) *procfile.Procfile {
	if a, err := m.cfg.Store.App(ctx, app); err == nil && a.Release > 0 {
		if pf, err := readProcfile(m.paths.Release(app, a.Release)); err == nil {
			if e, ok := pf.Routed(); ok && e.Kind != procfile.KindWeb {
				return pf
			}
		}
	}
	pf, _ := procfile.Parse(strings.NewReader("wsgi: app:app\n"))
	return pf
}
