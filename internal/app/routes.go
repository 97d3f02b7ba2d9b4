package app

import (
	"context"
	"path/filepath"

	"hop3/internal/router"
	"hop3/procfile"
)

// routeFor describes how Caddy reaches a release of an app. It depends only
// on stable paths, so a deploy of the same app produces the same route.
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
	default:
		return router.Route{}, false, nil
	}
	return route, true, nil
}

func (m *Manager) route(ctx context.Context, r release) error {
	route, ok, err := m.routeFor(ctx, r)
	if err != nil || !ok {
		return err
	}
	return m.cfg.Router.Set(ctx, route)
}

