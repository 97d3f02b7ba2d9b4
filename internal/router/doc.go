// Package router drives hop3's edge: a Caddy process configured only
// through its JSON admin API, never through a config file that is
// rewritten and reloaded.
//
// It has four parts:
//
//   - Client, a small admin API client over a unix socket or loopback TCP;
//   - Config, which builds the full Caddy JSON from Options and Routes as a
//     pure function (golden-file tested);
//   - Router, which holds the desired routes in memory and applies them;
//   - Listen and StartCaddy: hop3 binds the edge's sockets and runs and
//     supervises a managed Caddy that inherits them.
//
// Config shape. hop3 owns one server, "hop3" (@id hop3_server). Its routes
// are one route per app (@id hop3_app_<app>, a host matcher, terminal, a
// subroute whose children have ids derived from the app's), then the
// catch-all 404 page (@id hop3_catchall), which must stay last: without it
// Caddy answers unknown hosts with an empty 200. App routes sit at the top
// level of the server, not inside one shared subroute, because automatic
// HTTPS only collects hostnames from the host matchers of top-level routes.
//
// Static files. Caddy never opens an app's files: a route's static paths
// and static sites are proxied to the app's own static file server
// (Route.StaticServer, package staticserve), which confines every lookup
// beneath the served directory; its error answers become Caddy errors, so
// hop3's pages render them. A file server inside Caddy would follow the
// app's symlinks with Caddy's rights. A PHP site (Route.PHPRoot) is Caddy's
// php_fastcgi with that server in place of Caddy's file matcher: it answers
// a static file, or names the script php-fpm is to run (try_files).
//
// User. A managed Caddy may run as its own user (ProcessOptions.User); it
// then owns only its state and its admin socket's directory, never a file
// hop3 writes (see StartCaddy).
//
// Sockets. A managed Caddy (Options.ListenFDs) serves on sockets hop3 bound
// with Listen and passes to every Caddy it starts: HTTP as fd 3, HTTPS as
// fd 4, HTTP/3 (UDP, the HTTPS port) as fd 5, and the two TCP sockets again
// as fds 6 and 7. Caddy (2.9 and later) listens on "fd/N" addresses by
// duplicating the descriptor, so the same socket, hence the same accept
// queue, lives through every config reload and every restart of Caddy:
//
//   - a reload never resets connections waiting in an accept queue (when
//     Caddy binds an address itself, each reload binds a new SO_REUSEPORT
//     socket and closes the old one, resetting what was queued on it);
//   - while Caddy restarts after a crash, new connections wait in the queue
//     and are answered by the next Caddy instead of being refused;
//   - port 0 works (tests) with no window in which another process could
//     take the port, and hop3 can hold ports 80 and 443 itself.
//
// Inherited sockets need Caddy 2.9 or later (InheritsSockets). hop3 reads
// the version of the Caddy it runs (CaddyVersion) and lets 2.7 and 2.8
// bind HTTPAddr and HTTPSAddr themselves, with per-app admin calls and
// none of the above; the admin client sends Host 127.0.0.1, which Caddy
// accepts on a unix socket before 2.10 as well.
//
// Caddy decides per server, not per socket, whether a listener speaks TLS,
// and inherited sockets have no port to compare with http_port; with TLS
// the managed config therefore has two servers with the same routes:
// "hop3" (HTTPS and HTTP/3) and "hop3_http" (plain HTTP, automatic HTTPS
// off, ids prefixed hop3_http_). A TLS automation policy without subjects
// (internal or ACME issuer) covers every host, including hosts added later.
//
// Changes. With inherited sockets every change is one POST /load of the
// whole config: the router's desired set is the source of truth, and Caddy
// reloads its whole config on any admin change anyway. Successive configs
// name the TCP sockets by alternating descriptor numbers (3/4, then 6/7)
// and set the http app's shutdown_delay to ReloadOverlap (100ms): Caddy
// applies that delay only to listeners that go away, and during it the old
// server keeps serving beside the new one. Caddy provisions a new config
// while the old server still accepts, and is often too busy then to read
// the requests of what it accepted; the overlap lets it answer them before
// it shuts down. A change therefore takes about 100ms. HTTP/3 keeps one
// descriptor: two QUIC listeners on one UDP socket would take each other's
// packets.
//
// Attached mode (Router.Attach, someone else's Caddy): hop3 manages only
// apps/http/servers/hop3, which listens on addresses Caddy binds; changes
// are per-app admin calls (PATCH /id/hop3_app_<app>, PUT at index 0 of the
// server's routes for a new app, DELETE), and the owner's settings apply.
//
// Config changes and traffic. In-flight requests finish on the old config
// and upgraded connections (WebSockets) survive because of
// stream_close_delay, but a reload does close idle keep-alive connections
// (clients resend idempotent requests on those) and aborts requests
// waiting in a reverse_proxy retry loop. That is why hop3's deploys swap a
// per-app socket symlink instead of calling the admin API.
//
// The sockets have TCP_DEFER_ACCEPT: a connection reaches Caddy's accept
// only once its first bytes arrived, so a server reads a request as soon as
// it accepts its connection.
//
// What remains, and only Caddy or Go could fix: when the old server's
// shutdown begins, Go's net/http closes without an answer any connection
// it accepted but whose first request it had not read yet (it checks for
// shutdown right after reading a request), and the old server keeps
// accepting until that moment, alongside the new one. A connection that
// arrives in the last instant before a reload's shutdown can thus be
// closed unanswered: the client sees EOF before any response byte, and the
// request never reached an app. With TLS the window includes the handshake
// round trip, since the request follows it. Closing this fully needs Caddy
// to stop the old server's accepting on a shared socket before it shuts it
// down (or as soon as the new one runs), or Go's server to answer a request
// it read during shutdown.
//
// Measured with TestMeasureReloadDrops on a 2-CPU machine shared with other
// work: 150 route changes of one app while 20 clients request another,
// counting requests closed unanswered plus connections reset:
//
//	                               keep-alive, 2 idle    new connection per request
//	Caddy binds its own sockets     44 of 15984 (0.28%)   1185 of 14337 (8.3%)
//	inherited, no overlap           14 of 14222 (0.10%)    634 of 11826 (5.4%)
//	inherited (hop3's setup)         3 of 117707           154 of 54790 (0.28%)
//
// Resets occur only when Caddy binds (26 and 443 of the above); the rest
// are connections closed unanswered. With the overlap each change lasts
// 100ms longer, hence the larger request counts.
package router
