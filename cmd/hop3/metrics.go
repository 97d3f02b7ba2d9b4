package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"

	"hop3/internal/addons"
	"hop3/internal/app"
	"hop3/internal/metrics"
	"hop3/internal/router"
	"hop3/runtime/supervisor"
)

var _ app.Observer = (*metrics.Metrics)(nil)

// metricsServer is hop3 serve's Prometheus endpoint (--metrics-addr). A nil
// *metricsServer is a disabled one: every method does nothing.
type metricsServer struct {
	m      *metrics.Metrics
	ln     net.Listener
	caddy  atomic.Pointer[router.Caddy]
	disk   atomic.Pointer[func() map[string]app.DiskUsage]
	addons atomic.Pointer[addons.Manager]
	stop   func()
}

// startMetrics binds addr (port 0 picks a free port) and serves hop3's
// metrics and Caddy's (from its admin socket) there until ctx ends. It
// returns nil when addr is empty.
func startMetrics(ctx context.Context, addr string, sup *supervisor.Supervisor, rt *router.Router, adminSock string, certs func([]string) []router.CertStatus, logger *slog.Logger) (*metricsServer, error) {
	if addr == "" {
		return nil, nil
	}
	s := &metricsServer{}
	cfg := metrics.Config{
		Supervisor:       sup,
		Hosts:            func() map[string][]string { return routeHosts(rt) },
		DiskUsage:        func() map[string]map[string]int64 { return s.diskUsage() },
		CaddyAdminSocket: adminSock,
		CaddyRestarts: func() int {
			if c := s.caddy.Load(); c != nil {
				return c.Restarts()
			}
			return 0
		},
		Addons: func() []metrics.AddonStat {
			if a := s.addons.Load(); a != nil {
				return addonStats(ctx, a)
			}
			return nil
		},
		Version: version,
		Logger:  logger,
	}
	if certs != nil {
		cfg.Certificates = func() []router.CertStatus { return certs(allHosts(rt)) }
	}
	m, err := metrics.New(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		logger.Warn("the metrics endpoint is reachable from other hosts; it names every app", "component", "hop3", "addr", ln.Addr().String())
	}
	s.m, s.ln = m, ln
	ctx, cancel := context.WithCancel(ctx)
	events, unsubscribe := sup.Subscribe()
	s.stop = func() { cancel(); unsubscribe() }
	go m.Watch(ctx, events)
	go func() {
		if err := m.Serve(ctx, ln); err != nil {
			logger.Error("metrics endpoint stopped", "component", "hop3", "err", err)
		}
	}()
	return s, nil
}

// observer is what the orchestrator reports deploys and builds to.
func (s *metricsServer) observer() app.Observer {
	if s == nil {
		return nil
	}
	return s.m
}

// setCaddy names the Caddy process whose restarts are counted.
func (s *metricsServer) setCaddy(c *router.Caddy) {
	if s != nil {
		s.caddy.Store(c)
	}
}

// setAddons names the add-on manager whose add-ons are reported.
func (s *metricsServer) setAddons(a *addons.Manager) {
	if s != nil {
		s.addons.Store(a)
	}
}

func addonStats(ctx context.Context, a *addons.Manager) []metrics.AddonStat {
	var out []metrics.AddonStat
	for _, st := range a.Stats(ctx) {
		out = append(out, metrics.AddonStat{App: st.App, Name: st.Name, Kind: string(st.Kind), Running: st.State == "running", SizeBytes: st.Size})
	}
	return out
}

// setDisk names where each app's measured disk use is read.
func (s *metricsServer) setDisk(usage func() map[string]app.DiskUsage) {
	if s != nil {
		s.disk.Store(&usage)
	}
}

func (s *metricsServer) diskUsage() map[string]map[string]int64 {
	f := s.disk.Load()
	if f == nil {
		return nil
	}
	out := map[string]map[string]int64{}
	for a, d := range (*f)() {
		out[a] = map[string]int64{"repo": d.Repo, "releases": d.Releases, "envs": d.Envs, "data": d.Data}
	}
	return out
}

// readyNote is the metrics part of the ready line.
func (s *metricsServer) readyNote() string {
	if s == nil {
		return ""
	}
	return " metrics=" + s.ln.Addr().String()
}

func (s *metricsServer) close() {
	if s != nil {
		s.stop()
	}
}

// allHosts lists every host some route names.
func allHosts(rt *router.Router) []string {
	var out []string
	for _, r := range rt.Routes() {
		out = append(out, r.Hosts...)
	}
	return out
}

func routeHosts(rt *router.Router) map[string][]string {
	out := map[string][]string{}
	for _, r := range rt.Routes() {
		out[r.App] = append(out[r.App], r.Hosts...)
	}
	return out
}
