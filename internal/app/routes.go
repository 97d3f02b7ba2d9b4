package app

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"hop3/internal/router"
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
	if route.StaticPaths, err = m.staticPaths(r.app, first(r.env, "STATIC_PATHS", "NGINX_STATIC_PATHS")); err != nil {
		return router.Route{}, false, err
	}
	if v := r.env["MAX_BODY_SIZE"]; v != "" {
		if route.MaxBodySize, err = parseSize(v); err != nil {
			return router.Route{}, false, fmt.Errorf("MAX_BODY_SIZE: %w", err)
		}
	}
	switch e.Kind {
	case procfile.KindStatic:
		route.Static = filepath.Join(m.paths.current(r.app), e.Command)
		route.CatchAll = first(r.env, "CATCH_ALL", "NGINX_CATCH_ALL")
		route.CatchAll = strings.TrimPrefix(route.CatchAll, "/")
	case procfile.KindWSGI, procfile.KindASGI:
		route.Upstreams = []string{"unix/" + m.paths.webSocket(r.app)}
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
// with domains:add, and HOST_NAME (piku's NGINX_SERVER_NAME). A name that
// another app already answers to is refused with that app's name.
func (m *Manager) hosts(ctx context.Context, app string, env map[string]string) ([]string, error) {
	hosts := []string{app + "." + m.cfg.Domain}
	extra, err := m.cfg.Store.Domains(ctx, app)
	if err != nil {
		return nil, err
	}
	hosts = append(hosts, extra...)
	hosts = append(hosts, splitList(first(env, "HOST_NAME", "NGINX_SERVER_NAME"))...)
	seen := map[string]bool{}
	var out []string
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if h == "" || h == "_" || seen[h] {
			continue
		}
		if !hostRe.MatchString(h) {
			return nil, fmt.Errorf("invalid host name %q", h)
		}
		if owner := m.hostOwner(ctx, h); owner != "" && owner != app {
			return nil, fmt.Errorf("host %s belongs to app %s", h, owner)
		}
		seen[h] = true
		out = append(out, h)
	}
	return out, nil
}

var hostRe = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// hostOwner names the app that answers to host, from the store's domains
// and from the routes already in Caddy.
func (m *Manager) hostOwner(ctx context.Context, host string) string {
	if owner, err := m.cfg.Store.DomainOwner(ctx, host); err == nil {
		return owner
	}
	if lister, ok := m.cfg.Router.(interface{ Routes() []router.Route }); ok {
		for _, rt := range lister.Routes() {
			for _, h := range rt.Hosts {
				if strings.EqualFold(h, host) {
					return rt.App
				}
			}
		}
	}
	return ""
}

// staticPaths parses "/static:public/static,/media:data/media". A relative
// directory is inside the live release (through the current link, so a
// deploy changes no route); an absolute one must be inside the app's
// DATA_DIR. Anything that leaves those is refused.
func (m *Manager) staticPaths(app, spec string) ([]router.StaticPath, error) {
	var out []router.StaticPath
	for _, item := range splitList(spec) {
		prefix, dir, ok := strings.Cut(item, ":")
		if !ok || !strings.HasPrefix(prefix, "/") || dir == "" {
			return nil, fmt.Errorf("STATIC_PATHS entry %q: use /url:directory", item)
		}
		var abs string
		if filepath.IsAbs(dir) {
			abs = filepath.Clean(dir)
			if !within(m.paths.data(app), abs) {
				return nil, fmt.Errorf("STATIC_PATHS entry %q: an absolute directory must be inside DATA_DIR (%s)", item, m.paths.data(app))
			}
		} else {
			abs = filepath.Join(m.paths.current(app), dir)
			if !within(m.paths.current(app), abs) {
				return nil, fmt.Errorf("STATIC_PATHS entry %q: the directory leaves the app", item)
			}
		}
		out = append(out, router.StaticPath{Prefix: strings.TrimSuffix(prefix, "/"), Dir: abs})
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

func truthy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// parseSize reads "1048576", "512k", "10MB", "1g".
func parseSize(s string) (int64, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}} {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (e.g. 10MB)", s)
	}
	return n * mult, nil
}

// ValidateConfig checks config vars that shape the route (hosts, static
// paths, sizes) before they are stored, so a bad value is refused with a
// reason instead of breaking the app's route later.
func (m *Manager) ValidateConfig(ctx context.Context, app string, vars map[string]string) error {
	env := map[string]string{}
	for k, v := range vars {
		// No process could start with it: exec refuses NUL in the environment.
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s: a value may not contain a NUL byte", k)
		}
		env[k] = v
	}
	if _, err := m.hosts(ctx, app, env); err != nil {
		return err
	}
	if _, err := m.staticPaths(app, first(env, "STATIC_PATHS", "NGINX_STATIC_PATHS")); err != nil {
		return err
	}
	if v := env["MAX_BODY_SIZE"]; v != "" {
		if _, err := parseSize(v); err != nil {
			return fmt.Errorf("MAX_BODY_SIZE: %w", err)
		}
	}
	for _, k := range []string{"APP_START_TIMEOUT", "STOP_TIMEOUT", "BUILD_TIMEOUT", "DRAIN_TIMEOUT", "WS_DRAIN_TIMEOUT", "SETTLE_TIME"} {
		if v := strings.TrimSpace(env[k]); v != "" && durationEnv(env, k, -1) < 0 {
			return fmt.Errorf("%s %q: use seconds (60) or a duration (90s)", k, v)
		}
	}
	return nil
}
