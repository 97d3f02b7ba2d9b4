package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Router holds the desired routes of every app and keeps Caddy in line with
// them. Its in-memory set is the source of truth for every full load: Caddy
// runs with persist off and is reloaded from here after a restart.
//
// All admin mutations go through one lock, so a full load never interleaves
// with a single-app change.
type Router struct {
	opts   Options
	client *Client
	logger *slog.Logger

	// sem serializes admin mutations; a channel so waiting honours ctx.
	sem chan struct{}

	mu       sync.Mutex
	desired  map[string]Route
	applied  map[string][]byte // route JSON Caddy is known to hold, by app
	known    bool              // applied is complete: apps missing from it are absent in Caddy
	attached bool
	slot     int // descriptor numbers of the inherited sockets in the last load (0 or 1)

	changes atomic.Int64
}

// New returns a Router with no routes. It makes no admin call: use Sync
// (managed Caddy), StartCaddy or Attach (someone else's Caddy) next.
func New(opts Options, client *Client, logger *slog.Logger) *Router {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Router{
		opts:    opts,
		client:  client,
		logger:  logger.With("component", "router"),
		sem:     make(chan struct{}, 1),
		desired: make(map[string]Route),
		applied: make(map[string][]byte),
	}
}

// Options returns the options the router builds configs with.
func (r *Router) Options() Options { return r.opts }

func (r *Router) lock(ctx context.Context) error {
	select {
	case r.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *Router) unlock() { <-r.sem }

// Routes returns the desired routes, sorted by app.
func (r *Router) Routes() []Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.routesLocked()
}

func (r *Router) routesLocked() []Route {
	out := make([]Route, 0, len(r.desired))
	for _, rt := range r.desired {
		out = append(out, rt.clone())
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.App, b.App) })
	return out
}

// SetDesired replaces the desired set without any admin call, so that
// StartCaddy boots Caddy with every route already in place.
func (r *Router) SetDesired(routes []Route) error {
	if err := validateRoutes(routes); err != nil {
		return fmt.Errorf("set desired routes: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired = make(map[string]Route, len(routes))
	for _, rt := range routes {
		r.desired[rt.App] = rt.clone()
	}
	return nil
}

// Changes returns how many config-changing admin calls succeeded.
func (r *Router) Changes() int64 { return r.changes.Load() }

func (rt Route) clone() Route {
	rt.Hosts = slices.Clone(rt.Hosts)
	rt.Upstreams = slices.Clone(rt.Upstreams)
	rt.StaticPaths = slices.Clone(rt.StaticPaths)
	return rt
}

// mutate sends one config-changing call and counts it when it succeeds.
func (r *Router) mutate(ctx context.Context, method, path string, body any) error {
	return r.count(r.client.Do(ctx, method, path, body))
}

func (r *Router) count(err error) error {
	if err == nil {
		r.changes.Add(1)
	}
	return err
}

// Sync replaces the desired set with routes and applies it in one call: a
// POST /load of the full config, or, when attached, a replacement of hop3's
// server only. The set is replaced even when the call fails, so the next
// Sync or Caddy restart applies it.
func (r *Router) Sync(ctx context.Context, routes []Route) error {
	if err := validateRoutes(routes); err != nil {
		return fmt.Errorf("sync routes: %w", err)
	}
	if err := r.lock(ctx); err != nil {
		return fmt.Errorf("sync routes: %w", err)
	}
	defer r.unlock()
	r.mu.Lock()
	r.desired = make(map[string]Route, len(routes))
	for _, rt := range routes {
		r.desired[rt.App] = rt.clone()
	}
	r.mu.Unlock()
	if err := r.applyAllLocked(ctx); err != nil {
		return fmt.Errorf("sync routes: %w", err)
	}
	r.logger.Info("routes synced", "apps", len(routes))
	return nil
}

// applyAllLocked pushes the whole desired set to Caddy. The caller holds sem.
func (r *Router) applyAllLocked(ctx context.Context) error {
	r.mu.Lock()
	routes := r.routesLocked()
	attached := r.attached
	r.mu.Unlock()
	var err error
	if attached {
		err = r.putServer(ctx, routes)
	} else {
		// Inherited sockets go by the other descriptor numbers than in
		// the running config, so Caddy applies the reload overlap.
		slot := r.slot
		if r.opts.ListenFDs {
			slot ^= 1
		}
		var cfg []byte
		if cfg, err = config(r.opts, routes, slot); err == nil {
			if err = r.count(r.client.Load(ctx, cfg)); err == nil {
				r.slot = slot
			}
		}
	}
	if err != nil {
		r.forget()
		return err
	}
	r.markApplied(routes)
	return nil
}

// putServer replaces hop3's server in someone else's Caddy, creating it
// when missing, and touches nothing else.
func (r *Router) putServer(ctx context.Context, routes []Route) error {
	srv, err := serverObj(r.opts, routes, 0)
	if err != nil {
		return err
	}
	body, err := marshal(srv)
	if err != nil {
		return err
	}
	p := "apps/http/servers/" + ServerName
	err = r.mutate(ctx, http.MethodPatch, p, body)
	if !isStatus(err) {
		return err
	}
	// The server, or one of its parents, is missing. Caddy answers 404 for
	// a missing last key but 500 "invalid traversal path" for a missing
	// parent, so any answer leads here. PUT sets only a missing last key:
	// walk up, wrapping the server in each parent, until one is created.
	var obj any = json.RawMessage(body)
	keys := []string{"apps", "http", "servers", ServerName}
	var first error
	for i := len(keys); i > 0; i-- {
		perr := r.mutate(ctx, http.MethodPut, strings.Join(keys[:i], "/"), obj)
		if perr == nil {
			return nil
		}
		if first == nil {
			first = perr
		}
		var e *Error
		if !errors.As(perr, &e) || e.Status == 0 || e.Status == http.StatusConflict {
			// Unreachable, or this parent exists: the server itself was
			// refused, and the first answer says why.
			break
		}
		obj = map[string]any{keys[i-1]: obj}
	}
	return first
}

// isStatus reports whether err is an answer from Caddy (not a transport
// error).
func isStatus(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status != 0
}

// markApplied records that Caddy holds exactly routes.
func (r *Router) markApplied(routes []Route) {
	applied := make(map[string][]byte, len(routes))
	for _, rt := range routes {
		if b, err := routeJSON(r.opts, rt); err == nil {
			applied[rt.App] = b
		}
	}
	r.mu.Lock()
	r.applied = applied
	r.known = true
	r.mu.Unlock()
}

// forget records that Caddy's state is unknown, e.g. after a failed call or
// a crash, so the next Set checks instead of assuming.
func (r *Router) forget() {
	r.mu.Lock()
	r.applied = make(map[string][]byte)
	r.known = false
	r.mu.Unlock()
}

func routeJSON(opts Options, rt Route) ([]byte, error) {
	b, err := json.Marshal(appRoute(opts, rt, AppID(rt.App)))
	if err != nil {
		return nil, fmt.Errorf("marshal route %s: %w", rt.App, err)
	}
	return b, nil
}

// Set creates or replaces one app's route and never changes another app's.
// With inherited sockets (Options.ListenFDs) it loads the whole config
// (see the package doc); otherwise an existing route is replaced with
// PATCH /id/hop3_app_<app> and a new one is inserted at the head of hop3's
// server routes (before the catch-all, which must stay last). Nothing is
// sent when Caddy already holds this route.
// When the call fails the route stays desired and the next Sync or Caddy
// restart applies it.
func (r *Router) Set(ctx context.Context, route Route) error {
	if err := route.Validate(); err != nil {
		return fmt.Errorf("set route: %w", err)
	}
	if err := r.opts.validate(); err != nil {
		return fmt.Errorf("set route %s: %w", route.App, err)
	}
	route = route.clone()
	if err := r.lock(ctx); err != nil {
		return fmt.Errorf("set route %s: %w", route.App, err)
	}
	defer r.unlock()

	r.mu.Lock()
	if err := r.checkHostsLocked(route); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("set route %s: %w", route.App, err)
	}
	prev := r.desired[route.App]
	r.desired[route.App] = route
	cur, present := r.applied[route.App]
	known := r.known
	r.mu.Unlock()

	body, err := routeJSON(r.opts, route)
	if err != nil {
		return fmt.Errorf("set route %s: %w", route.App, err)
	}
	if present && bytes.Equal(cur, body) {
		return nil
	}
	var op string
	if r.opts.ListenFDs || route.HasWildcard() || prev.HasWildcard() {
		// The inherited sockets' descriptor numbers change with every
		// config, and with TLS two servers hold every route: one load
		// changes it all at once. A wildcard's route goes after every
		// exact host's, which a single insert at the head can not do.
		op, err = "load", r.applyAllLocked(ctx)
	} else {
		op, err = r.putRoute(ctx, route.App, body, present || !known)
	}
	if err != nil {
		r.forget()
		return fmt.Errorf("set route %s: %w", route.App, err)
	}
	r.mu.Lock()
	r.applied[route.App] = body
	r.mu.Unlock()
	r.logger.Info("route set", "app", route.App, "op", op)
	return nil
}

// putRoute replaces or inserts one app route and says which it did.
func (r *Router) putRoute(ctx context.Context, app string, body []byte, maybePresent bool) (string, error) {
	if maybePresent {
		err := r.mutate(ctx, http.MethodPatch, "/id/"+AppID(app), body)
		if !IsNotFound(err) {
			return "replace", err
		}
	}
	err := r.mutate(ctx, http.MethodPut, "/id/"+serverID+"/routes/0", body)
	if !IsNotFound(err) {
		return "insert", err
	}
	// hop3's server itself is gone (someone else's Caddy was reloaded
	// without it): rebuild it from the desired set, this route included.
	return "rebuild", r.applyAllLocked(ctx)
}

// checkHostsLocked refuses a host another app already claims: Caddy would
// route it to whichever app comes first.
func (r *Router) checkHostsLocked(route Route) error {
	mine := make(map[string]bool, len(route.Hosts))
	for _, h := range route.Hosts {
		mine[strings.ToLower(h)] = true
	}
	for app, other := range r.desired {
		if app == route.App {
			continue
		}
		for _, h := range other.Hosts {
			if mine[strings.ToLower(h)] {
				return fmt.Errorf("host %s already belongs to %s", h, app)
			}
		}
	}
	return nil
}

// Remove deletes one app's route: DELETE /id/hop3_app_<app>, or a load of
// the whole config with inherited sockets. A route Caddy does not have is
// not an error.
func (r *Router) Remove(ctx context.Context, app string) error {
	if err := r.lock(ctx); err != nil {
		return fmt.Errorf("remove route %s: %w", app, err)
	}
	defer r.unlock()
	r.mu.Lock()
	prev := r.desired[app]
	delete(r.desired, app)
	_, present := r.applied[app]
	known := r.known
	r.mu.Unlock()
	if known && !present {
		return nil
	}
	if r.opts.ListenFDs || prev.HasWildcard() {
		if err := r.applyAllLocked(ctx); err != nil {
			return fmt.Errorf("remove route %s: %w", app, err)
		}
		r.logger.Info("route removed", "app", app)
		return nil
	}
	err := r.mutate(ctx, http.MethodDelete, "/id/"+AppID(app), nil)
	if err != nil && !IsNotFound(err) {
		r.forget()
		return fmt.Errorf("remove route %s: %w", app, err)
	}
	r.mu.Lock()
	delete(r.applied, app)
	r.mu.Unlock()
	if err == nil {
		r.logger.Info("route removed", "app", app)
	}
	return nil
}

// Attach switches the router to someone else's Caddy: instead of loading
// whole configs it manages only apps/http/servers/hop3, creating that
// server when missing and replacing it (only it) on every Sync; Set and
// Remove work as usual. The tls and pki apps and http_port stay the
// owner's business: with a TLS mode the server listens on both addresses,
// the owner's http_port decides which one stays plain HTTP, and the
// owner's automation policies issue the certificates.
func (r *Router) Attach(ctx context.Context) error {
	if r.opts.ListenFDs {
		return errors.New("attach to caddy: someone else's caddy can not inherit hop3's sockets; use listen addresses")
	}
	if err := r.lock(ctx); err != nil {
		return fmt.Errorf("attach to caddy: %w", err)
	}
	defer r.unlock()
	r.mu.Lock()
	r.attached = true
	r.mu.Unlock()
	if err := r.applyAllLocked(ctx); err != nil {
		return fmt.Errorf("attach to caddy: %w", err)
	}
	r.logger.Info("attached to caddy", "server", ServerName, "admin", r.client.Addr())
	return nil
}

// Attached reports whether the router manages only its server in someone
// else's Caddy.
func (r *Router) Attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attached
}

// restore starts (or restarts) a managed Caddy with the full desired config
// while holding the mutation lock, so no single-app change can slip between
// the snapshot and Caddy answering.
func (r *Router) restore(ctx context.Context, start func(ctx context.Context, cfg []byte) error) (int, error) {
	if err := r.lock(ctx); err != nil {
		return 0, err
	}
	defer r.unlock()
	r.forget()
	routes := r.Routes()
	cfg, err := config(r.opts, routes, r.slot)
	if err != nil {
		return 0, err
	}
	if err := start(ctx, cfg); err != nil {
		return 0, err
	}
	r.markApplied(routes)
	return len(routes), nil
}
