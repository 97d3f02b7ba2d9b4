package gitserver

import (
	"crypto/rand"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// What an internet-facing SSH port gets from strangers: connections that
// never authenticate, handshakes trickled a byte at a time, and clients
// asking for more than hop3 offers (forwarding, agents, X11, sftp). This
// file bounds the first two and refuses the rest.

// verifiedKey is the context key of the public key whose signature x/crypto
// verified on a connection: the only key a session's identity comes from.
type verifiedKey struct{}

// connStateKey is the context key of a connection's *connState.
type connStateKey struct{}

// connState is what the limits track per TCP connection.
type connState struct {
	srv      *Server
	remote   string
	grace    *time.Timer // closes the connection if it is not authenticated in time
	once     sync.Once   // gives back the unauthenticated slot once
	sessions atomic.Int32
}

// release gives the connection's unauthenticated slot back, once.
func (cs *connState) release() {
	cs.once.Do(func() { cs.srv.unauthenticated.Add(-1) })
}

// authenticated is called when the connection's key is verified: from then
// on it is a user's connection, bound by IdleTimeout and MaxSessions.
func (cs *connState) authenticated() {
	cs.grace.Stop()
	cs.release()
}

// accept admits a new TCP connection (gliderlabs' ConnCallback, before the
// SSH handshake) unless too many are already unauthenticated; it arms the
// handshake timeout. A nil return closes the connection.
func (s *Server) accept(ctx ssh.Context, conn net.Conn) net.Conn {
	if n := s.unauthenticated.Add(1); n > int64(s.cfg.MaxUnauthenticated) {
		s.unauthenticated.Add(-1)
		s.log.Warn("too many unauthenticated connections; closing one", "remote", conn.RemoteAddr().String(), "limit", s.cfg.MaxUnauthenticated)
		return nil
	}
	cs := &connState{srv: s, remote: conn.RemoteAddr().String()}
	cs.grace = time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		s.log.Info("not authenticated in time; closing", "remote", cs.remote, "timeout", s.cfg.HandshakeTimeout)
		conn.Close()
	})
	ctx.SetValue(connStateKey{}, cs)
	return &limitedConn{Conn: conn, cs: cs}
}

// limitedConn gives back the connection's slot when it closes.
type limitedConn struct {
	net.Conn
	cs *connState
}

func (c *limitedConn) Close() error {
	c.cs.grace.Stop()
	c.cs.release()
	return c.Conn.Close()
}

// serverConfig is the x/crypto configuration of one connection: it records
// the key whose signature was verified, which ends the handshake timeout.
func (s *Server) serverConfig(ctx ssh.Context) *gossh.ServerConfig {
	return &gossh.ServerConfig{
		VerifiedPublicKeyCallback: func(conn gossh.ConnMetadata, key gossh.PublicKey, perms *gossh.Permissions, _ string) (*gossh.Permissions, error) {
			// The key's options are checked again on the key that signed.
			if _, err := s.admit(ctx, key, conn.RemoteAddr()); err != nil {
				return nil, err
			}
			ctx.SetValue(verifiedKey{}, key)
			if cs, ok := ctx.Value(connStateKey{}).(*connState); ok {
				cs.authenticated()
			}
			return perms, nil
		},
	}
}

// sessionChannel opens a session channel unless the connection already has
// MaxSessions open, and refuses the session requests hop3 does not serve.
func (s *Server) sessionChannel(srv *ssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx ssh.Context) {
	if cs, ok := ctx.Value(connStateKey{}).(*connState); ok {
		if n := cs.sessions.Add(1); n > int32(s.cfg.MaxSessions) {
			cs.sessions.Add(-1)
			s.log.Warn("too many sessions on one connection; refusing one", "remote", cs.remote, "limit", s.cfg.MaxSessions)
			nc.Reject(gossh.ResourceShortage, fmt.Sprintf("too many sessions on one connection (at most %d)", s.cfg.MaxSessions))
			return
		}
		defer cs.sessions.Add(-1)
	}
	// Returns when the channel is closed.
	ssh.DefaultSessionHandler(srv, conn, filteredChannel{NewChannel: nc, s: s, remote: conn.RemoteAddr().String()}, ctx)
}

// maxEnvRequests bounds the environment variables one session may send:
// each is kept in memory until the session ends.
const maxEnvRequests = 64

// sessionEnv is the environment variable through which a session's request
// filter tells its handler (the terminal middleware) which window changes
// are its own. Clients may not send it.
const sessionEnv = "HOP3_INTERNAL_SESSION"

// filteredChannel is a session channel whose requests pass through refuse
// before gliderlabs sees them.
type filteredChannel struct {
	gossh.NewChannel
	s      *Server
	remote string
}

func (c filteredChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, in, err := c.NewChannel.Accept()
	if err != nil {
		return nil, nil, err
	}
	out := make(chan *gossh.Request)
	// Window changes never reach gliderlabs, which would block the
	// session's request loop on a one-slot channel nobody reads and write
	// the size the handler reads without a lock; they go to resize, newest
	// first, which the terminal middleware hands to the backend.
	resize := make(chan Window, 1)
	token := rand.Text()
	c.s.windows.Store(token, (<-chan Window)(resize))
	go func() {
		defer close(out)
		defer close(resize)
		defer c.s.windows.Delete(token)
		envs := 0
		for req := range in {
			if req.Type == "env" {
				envs++
			}
			if why := refuse(req, envs); why != "" {
				c.s.log.Info("refused session request", "remote", c.remote, "type", req.Type, "why", why)
				if req.WantReply {
					req.Reply(false, nil)
				}
				continue
			}
			switch req.Type {
			case "window-change":
				w, ok := parseWindow(req.Payload)
				if ok {
					select {
					case <-resize: // not read yet: the newest size wins
					default:
					}
					resize <- w
				}
				if req.WantReply {
					req.Reply(ok, nil)
				}
				continue
			case "exec", "shell":
				// Name the session for its handler; gliderlabs accepts env
				// until the command starts, and a request that wants no
				// reply needs no channel to answer on.
				out <- &gossh.Request{Type: "env", Payload: gossh.Marshal(struct{ Name, Value string }{sessionEnv, token})}
			}
			out <- req
		}
	}()
	return ch, out, nil
}

// parseWindow reads a window-change request: columns, rows, then pixels.
func parseWindow(payload []byte) (Window, bool) {
	var w struct{ Cols, Rows, Width, Height uint32 }
	if err := gossh.Unmarshal(payload, &w); err != nil || w.Cols > 1<<16 || w.Rows > 1<<16 {
		return Window{}, false
	}
	return Window{Cols: int(w.Cols), Rows: int(w.Rows)}, true
}

// refuse says why a session request is refused, or "" to let it through.
func refuse(req *gossh.Request, envs int) string {
	switch req.Type {
	case "auth-agent-req@openssh.com":
		return "agent forwarding is not offered"
	case "x11-req":
		return "X11 forwarding is not offered"
	case "subsystem":
		return "no subsystems (sftp) are offered"
	case "env":
		if envs > maxEnvRequests {
			return fmt.Sprintf("more than %d environment variables", maxEnvRequests)
		}
		var kv struct{ Name, Value string }
		if gossh.Unmarshal(req.Payload, &kv) == nil && kv.Name == sessionEnv {
			return "reserved name"
		}
	}
	return ""
}
