package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"hop3/internal/hostclaim"
)

// AskPath is the path of the on-demand TLS permission endpoint.
const AskPath = "/ask"

// Claims reports whether some app's route answers host: an exact host of
// a route, or a name one of its wildcards covers (hostclaim.Covers, the
// rule Caddy's host matcher follows).
func (r *Router) Claims(host string) bool {
	host = strings.ToLower(host)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rt := range r.desired {
		for _, h := range rt.Hosts {
			if hostclaim.Covers(strings.ToLower(h), host) {
				return true
			}
		}
	}
	return false
}

// AskHandler answers Caddy's on-demand TLS permission requests
// (GET /ask?domain=HOST, module tls.permission.http): 200 when an app's
// route claims HOST, 403 when none does, 400 when HOST is not a host name.
// Caddy obtains a certificate only after a 200, so a handshake for a name
// no app answers never becomes an order at the CA.
func AskHandler(claims func(host string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if req.URL.Path != AskPath {
			http.NotFound(w, req)
			return
		}
		q := req.URL.Query()["domain"]
		if len(q) != 1 {
			http.Error(w, "want one domain parameter", http.StatusBadRequest)
			return
		}
		host, err := hostclaim.Normalize(q[0])
		if err != nil || strings.HasPrefix(host, "*.") {
			// A handshake names one host; a wildcard is never one.
			http.Error(w, "not a host name", http.StatusBadRequest)
			return
		}
		if !claims(host) {
			http.Error(w, "no app answers "+host, http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// AskServer serves AskHandler for a managed Caddy.
//
// It listens on TCP on 127.0.0.1, on a port the kernel picks, not on a
// unix socket: Caddy's tls.permission.http module asks its endpoint with
// a plain net/http client whose transport dials TCP only, so a unix
// socket path can not be its endpoint. What it tells a local process is
// which hosts hop3 serves, which those hosts' DNS and hop3's own answers
// tell anyone already.
type AskServer struct {
	ln  net.Listener
	srv *http.Server
}

// ListenAsk starts the permission endpoint; claims decides each host.
func ListenAsk(claims func(host string) bool, logger *slog.Logger) (*AskServer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for on-demand tls asks: %w", err)
	}
	s := &AskServer{ln: ln, srv: &http.Server{
		Handler:           AskHandler(claims),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       time.Minute,
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			// Caddy's asks fail from now on: nothing more is issued on
			// demand, which is the safe side.
			logger.Error("on-demand tls ask endpoint stopped", "component", "router", "err", err)
		}
	}()
	return s, nil
}

// URL is the endpoint to give Caddy (Options.OnDemandAsk).
func (s *AskServer) URL() string { return "http://" + s.ln.Addr().String() + AskPath }

// Close stops the endpoint.
func (s *AskServer) Close(ctx context.Context) error { return s.srv.Shutdown(ctx) }
