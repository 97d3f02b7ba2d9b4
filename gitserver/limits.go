package gitserver

import (
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
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

// Startups is OpenSSH's MaxStartups start:rate:full (see
// Config.MaxStartups).
type Startups struct{ Start, Rate, Full int }

// DefaultMaxStartups is MaxStartups when none is given.
var DefaultMaxStartups = Startups{Start: 64, Rate: 30, Full: 128}

// ParseStartups reads "start:rate:full", or a single number as full alone.
func ParseStartups(s string) (Startups, error) {
	parts := strings.Split(s, ":")
	var n []int
	for _, p := range parts {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return Startups{}, fmt.Errorf("max startups %q: use start:rate:full, e.g. 64:30:128", s)
		}
		n = append(n, v)
	}
	var st Startups
	switch len(n) {
	case 1:
		st = Startups{Start: n[0], Rate: 100, Full: n[0]}
	case 3:
		st = Startups{Start: n[0], Rate: n[1], Full: n[2]}
	default:
		return Startups{}, fmt.Errorf("max startups %q: use start:rate:full, e.g. 64:30:128", s)
	}
	return st, st.validate()
}

func (st Startups) String() string { return fmt.Sprintf("%d:%d:%d", st.Start, st.Rate, st.Full) }

func (st Startups) validate() error {
	if st.Full < 1 || st.Start < 1 || st.Start > st.Full || st.Rate < 0 || st.Rate > 100 {
		return fmt.Errorf("max startups %s: want 1 <= start <= full and a rate from 0 to 100", st)
	}
	return nil
}

// dropChance is the probability of dropping a new connection that would
// have to wait while n connections are not authenticated: 0 below Start,
// Rate % at Start rising linearly to 100 % at Full.
func (st Startups) dropChance(n int) float64 {
	switch {
	case n >= st.Full:
		return 1
	case n < st.Start:
		return 0
	}
	return (float64(st.Rate) + float64(100-st.Rate)*float64(n-st.Start)/float64(st.Full-st.Start)) / 100
}

// startups tracks the connections not authenticated yet, per source
// address.
type startups struct {
	limit     Startups
	share     int // per source, in the handshake at once
	perSource int // per source, handshaking and waiting
	random    func() float64

	mu      sync.Mutex
	total   int
	sources map[string]*source
}

// source is one address's connections not authenticated yet.
type source struct {
	addr    string
	pending int           // handshaking and waiting
	turns   chan struct{} // a slot per connection in the handshake
}

func newStartups(cfg Config, random func() float64) *startups {
	if random == nil {
		random = mrand.Float64
	}
	return &startups{limit: cfg.MaxStartups, share: cfg.PerSourceStartups, perSource: cfg.PerSourceMaxStartups, random: random, sources: map[string]*source{}}
}

// admit counts a new connection from addr, or says why it is closed: the
// server is full, the address has its maximum, or, past Start, by random
// early drop when the address has used its share of handshakes. An address
// with turns to spare is never dropped at random: a flood from one address
// does not crowd out another.
func (st *startups) admit(addr string) (*source, string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.total >= st.limit.Full {
		return nil, fmt.Sprintf("%d connections are not authenticated yet (MaxStartups %s)", st.total, st.limit)
	}
	src := st.sources[addr]
	if src == nil {
		src = &source{addr: addr, turns: make(chan struct{}, st.share)}
		st.sources[addr] = src
	}
	switch {
	case src.pending >= st.perSource:
		return nil, fmt.Sprintf("%d connections from %s are not authenticated yet (at most %d)", src.pending, addr, st.perSource)
	case src.pending >= st.share && st.random() < st.limit.dropChance(st.total):
		return nil, fmt.Sprintf("random early drop with %d connections not authenticated (MaxStartups %s)", st.total, st.limit)
	}
	src.pending++
	st.total++
	return src, ""
}

// done uncounts a connection admit counted.
func (st *startups) done(src *source) {
	st.mu.Lock()
	defer st.mu.Unlock()
	src.pending--
	st.total--
	if src.pending == 0 {
		delete(st.sources, src.addr)
	}
}

// connState is what the limits track per TCP connection.
type connState struct {
	srv      *Server
	remote   string
	src      *source
	grace    *time.Timer   // closes the connection if it is not authenticated in time
	expired  chan struct{} // closed when grace fires
	turn     bool          // holds one of its address's handshake turns
	once     sync.Once     // gives back the slot and turn once
	sessions atomic.Int32
}

// release gives the connection's slot (and turn) back, once.
func (cs *connState) release() {
	cs.once.Do(func() {
		if cs.turn {
			<-cs.src.turns
		}
		cs.srv.startups.done(cs.src)
	})
}

// authenticated is called when the connection's key is verified: from then
// on it is a user's connection, bound by IdleTimeout and MaxSessions.
func (cs *connState) authenticated() {
	cs.grace.Stop()
	cs.release()
}

// accept admits a new TCP connection (gliderlabs' ConnCallback, before the
// SSH handshake, on the connection's own goroutine) within MaxStartups and
// its address's share, and arms the handshake timeout. A connection beyond
// its address's share of handshakes waits here, its timeout running, for a
// turn. A nil return closes the connection.
func (s *Server) accept(ctx ssh.Context, conn net.Conn) net.Conn {
	addr := conn.RemoteAddr().String()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	src, why := s.startups.admit(host)
	if why != "" {
		s.log.Warn("closing a connection before the handshake", "remote", addr, "why", why)
		return nil
	}
	cs := &connState{srv: s, remote: addr, src: src, expired: make(chan struct{})}
	cs.grace = time.AfterFunc(s.cfg.HandshakeTimeout, func() {
		s.log.Info("not authenticated in time; closing", "remote", cs.remote, "timeout", s.cfg.HandshakeTimeout)
		close(cs.expired)
		conn.Close()
	})
	select {
	case src.turns <- struct{}{}:
		cs.turn = true
	case <-cs.expired:
		cs.release()
		return nil
	case <-s.closing:
		cs.grace.Stop()
		cs.release()
		return nil
	}
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
