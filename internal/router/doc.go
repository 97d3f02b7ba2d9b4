// Package router drives hop3's edge: a Caddy process configured only
// through its JSON admin API, never through a config file that is
// rewritten and reloaded.
//
// It has three parts:
//
//   - Client, a small admin API client over a unix socket or loopback TCP;
//   - Config, which builds the full Caddy JSON from Options and Routes as a
//     pure function (golden-file tested);
//   - Router, which holds the desired routes in memory and applies them,
//     plus StartCaddy, which runs and supervises a managed Caddy.
//
// Config shape. hop3 owns one server, "hop3" (@id hop3_server). Its routes
// are one route per app (@id hop3_app_<app>, a host matcher, terminal, a
// subroute whose children have ids derived from the app's), then the
// catch-all 404 page (@id hop3_catchall), which must stay last: without it
// Caddy answers unknown hosts with an empty 200. App routes sit at the top
// level of the server, not inside one shared subroute, because automatic
// HTTPS only collects hostnames from the host matchers of top-level routes;
// new apps are therefore inserted at index 0 (PUT /id/hop3_server/routes/0).
//
// With TLS the same server listens on the HTTP and the HTTPS address and
// Caddy enables TLS on every listener except the one on http_port, so each
// app has a single route for both ports and a change to an app is a single
// admin call. A TLS automation policy without subjects (internal or ACME
// issuer) covers every host, including hosts added later.
//
// Config changes and traffic. Every admin change reloads Caddy's whole
// config. In-flight requests finish on the old config and upgraded
// connections (WebSockets) survive because of stream_close_delay, but a
// reload does close idle keep-alive connections, aborts requests waiting in
// a reverse_proxy retry loop, and may close a brand-new connection accepted
// by the old server at that instant without answering it (Go's net/http
// behaviour during Shutdown). That is why hop3's deploys swap a per-app
// socket symlink instead of calling the admin API.
package router
