package app

import (
	"context"
	"path/filepath"
	"strconv"

	"hop3/internal/router"
	"hop3/procfile"
)

// routeFor describes how Caddy reaches an app. For wsgi, asgi and static
// apps it depends only on stable paths (the socket symlink, the current
// release link), so a deploy produces the same route and changes nothing in
// Caddy. A web process listens on a TCP port chosen per start, so its route
// follows the newest running generation.
func (m *Manager) routeFor(ctx context.Context, r release) (router.Route, bool, error) {
	e, ok := r.procfile.Routed()
	if !ok {
		return router.Route{}, false, nil
	}
	hosts := []string{r.app + "." + m.cfg.Domain}
	extra, err := m.cfg.Store.Domains(ctx, r.app)
	if err != nil {
		return router.Route{}, false, err
	}
	hosts = append(hosts, extra...)
	route := router.Route{App: r.app, Hosts: hosts}
	switch e.Kind {
	case procfile.KindStatic:
		route.Static = filepath.Join(m.paths.current(r.app), e.Command)
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
	return route, true, nil
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
