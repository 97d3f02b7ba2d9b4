// Package gitserver is hop3's SSH front door: host key, public-key
// authentication, a chain of session middlewares, the git wire protocol
// (served by the real git receive-pack/upload-pack) and command dispatch.
package gitserver

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
)

// Identity is who a session is: derived only from the key whose signature
// was verified for this connection.
type Identity struct {
	Name  string
	Admin bool
	Apps  []string // apps a deployer may use
	// Limits are the key's from= and expiry-time= options, checked at
	// every login.
	Limits KeyOptions
}

// CanAccess reports whether the identity may see or change app.
func (id Identity) CanAccess(app string) bool {
	if id.Admin {
		return true
	}
	for _, a := range id.Apps {
		if a == app {
			return true
		}
	}
	return false
}

// Keys resolves a public key fingerprint (SHA256:...) to an identity.
// An error means the key is not allowed in.
type Keys interface {
	Identify(ctx context.Context, fingerprint string) (Identity, error)
}

// Session is one SSH command, handed to the backend.
type Session struct {
	Identity Identity
	Args     []string // the command, split like a shell would (never run by one)
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	TTY      bool
	PTY      *PTY     // the terminal the client asked for (ssh -t), nil without one
	Env      []string // environment variables the client sent
	Remote   string
	// MaxInput is how many bytes RunPack reads from the client for a push
	// before it gives up on it; 0 means no limit.
	MaxInput int64
}

// Window is a terminal's size in characters.
type Window struct{ Cols, Rows int }

// PTY describes the terminal a client requested.
type PTY struct {
	Term   string
	Size   Window
	Resize <-chan Window // window changes; closed when the session ends
}

// Config configures a Server.
type Config struct {
	HostKeyPath string // created (ed25519) when missing
	Keys        Keys
	// Deployer decides pushes and allows clones; Repos says where their
	// files are. Commands runs every other command.
	Deployer Deployer
	Repos    Repos
	Commands Commands
	// ValidName refuses what is not an app name, before any path is built
	// from it.
	ValidName func(string) error
	// Color decides whether a session's output is coloured, from its
	// terminal and the environment the client sent; nil: never.
	Color  func(tty bool, env []string) bool
	Logger *slog.Logger
	// IdleTimeout closes a connection with no traffic; MaxTimeout bounds a
	// whole connection. Zero means the defaults (10 min, none).
	IdleTimeout time.Duration
	MaxTimeout  time.Duration
	// HandshakeTimeout bounds the time from accepting a connection to its
	// authentication, however slowly the client trickles bytes and however
	// long it waited for its address's turn (OpenSSH's LoginGraceTime).
	// Zero means 15 s.
	HandshakeTimeout time.Duration
	// MaxStartups bounds the connections not authenticated yet, as
	// OpenSSH's start:rate:full does: at Full, a new one is closed at once;
	// from Start on, one that would have to wait for its address's turn
	// (PerSourceStartups) is dropped with a probability rising from Rate %
	// to 100 % at Full. Zero means 64:30:128.
	MaxStartups Startups
	// PerSourceStartups is one source address's share: at most this many
	// of its connections are in the handshake at once, and the next ones
	// wait for a turn (a burst of logins from one machine is served a few
	// at a time, not refused). Zero means 8.
	PerSourceStartups int
	// PerSourceMaxStartups caps one address's connections not
	// authenticated yet, handshaking and waiting: more are closed at once,
	// so one address never takes every slot. Zero means half of
	// MaxStartups' Full.
	PerSourceMaxStartups int
	// MaxSessions caps the sessions open at once on one connection
	// (OpenSSH's MaxSessions). Zero means 10.
	MaxSessions int
	// MaxPushSize caps the bytes a push may send (git receive-pack's
	// input). Zero means 1 GiB; negative means no limit.
	MaxPushSize int64
}

// Defaults of Config's limits.
const (
	DefaultHandshakeTimeout  = 15 * time.Second
	DefaultPerSourceStartups = 8
	DefaultMaxSessions       = 10
	DefaultMaxPushSize       = 1 << 30
)

// Server is the SSH server.
type Server struct {
	cfg   Config
	srv   *ssh.Server
	local *ssh.Server
	log   *slog.Logger

	startups  *startups     // connections between accept and authentication
	windows   sync.Map      // session token -> <-chan Window, see filteredChannel
	closing   chan struct{} // closed by Shutdown: connections waiting for a turn give up
	closeOnce sync.Once
}

// LocalIdentity is who a command arriving on the local control socket is:
// the socket's file mode (0600, owned by hop3's user) is the credential.
var LocalIdentity = Identity{Name: "local", Admin: true}

// New builds a Server; it loads or creates the host key.
func New(cfg Config) (*Server, error) {
	if cfg.Keys == nil || cfg.Deployer == nil || cfg.Commands == nil || cfg.ValidName == nil {
		return nil, errors.New("gitserver: keys, deployer, commands and a name validator are required")
	}
	if cfg.Repos.Dir == nil || cfg.Repos.HooksDir == "" || cfg.Repos.GatesDir == "" || cfg.Repos.Executable == "" {
		return nil, errors.New("gitserver: the repositories' directories and hop3's executable are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxStartups == (Startups{}) {
		cfg.MaxStartups = DefaultMaxStartups
	}
	if err := cfg.MaxStartups.validate(); err != nil {
		return nil, fmt.Errorf("gitserver: %w", err)
	}
	if cfg.PerSourceStartups == 0 {
		cfg.PerSourceStartups = DefaultPerSourceStartups
	}
	if cfg.PerSourceMaxStartups == 0 {
		cfg.PerSourceMaxStartups = max(1, cfg.MaxStartups.Full/2)
	}
	if cfg.MaxSessions == 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	if cfg.MaxPushSize == 0 {
		cfg.MaxPushSize = DefaultMaxPushSize
	}
	signer, err := loadHostKey(cfg.HostKeyPath, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("component", "ssh"), startups: newStartups(cfg, nil), closing: make(chan struct{})}
	s.srv = &ssh.Server{
		Version:     "hop3",
		HostSigners: []ssh.Signer{signer},
		IdleTimeout: cfg.IdleTimeout,
		MaxTimeout:  cfg.MaxTimeout,
		// Only public keys; the user name is not a credential. Unknown keys
		// are refused here, before any session or command exists. This
		// answers the client's "would this key do?" and proves nothing:
		// who the session is comes from verifiedKey (see authenticated).
		PublicKeyHandler: func(ctx ssh.Context, key ssh.PublicKey) bool {
			_, err := s.admit(ctx, key, ctx.RemoteAddr())
			return err == nil
		},
		ConnCallback:         s.accept,
		ServerConfigCallback: s.serverConfig,
		// Sessions only: no direct-tcpip or streamlocal channels (local
		// forwarding), no global requests (tcpip-forward: remote
		// forwarding), no subsystems (sftp). Empty maps, not nil ones, so
		// that gliderlabs' package-level defaults are not copied in.
		ChannelHandlers:   map[string]ssh.ChannelHandler{"session": s.sessionChannel},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		Handler:           chain(s.dispatch, s.logged, s.authenticated, s.terminal, s.recovered),
	}
	// The control socket speaks the same protocol, so `hop3 COMMAND` on the
	// server gets the same dispatcher, streams and exit status as ssh.
	s.local = &ssh.Server{
		Version:           "hop3",
		HostSigners:       []ssh.Signer{signer},
		ChannelHandlers:   map[string]ssh.ChannelHandler{"session": s.sessionChannel},
		RequestHandlers:   map[string]ssh.RequestHandler{},
		SubsystemHandlers: map[string]ssh.SubsystemHandler{},
		Handler:           chain(s.dispatch, s.logged, s.localIdentity, s.terminal, s.recovered),
	}
	return s, nil
}

func (s *Server) localIdentity(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		sess.Context().SetValue(identityKey{}, LocalIdentity)
		next(sess)
	}
}

// ServeLocal serves the control socket listener l (a unix socket whose mode
// restricts it to hop3's user) until Shutdown.
func (s *Server) ServeLocal(l net.Listener) error {
	err := s.local.Serve(l)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// HostKey returns the server's public host key in authorized_keys form.
func (s *Server) HostKey() string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(s.srv.HostSigners[0].PublicKey())))
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting and waits for open sessions until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.local.Close()
	err := s.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return s.srv.Close()
	}
	return err
}

type middleware func(ssh.Handler) ssh.Handler

// chain applies middlewares so that the last one listed runs first.
func chain(h ssh.Handler, mws ...middleware) ssh.Handler {
	for _, mw := range mws {
		h = mw(h)
	}
	return h
}

type identityKey struct{}

func (s *Server) recovered(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("session panicked", "panic", r, "stack", string(debug.Stack()))
				fmt.Fprintln(sess.Stderr(), " !     internal error; see the hop3 log")
				sess.Exit(1)
			}
		}()
		next(sess)
	}
}

// authenticated derives the identity from the one key whose signature was
// verified on this connection (recorded by the VerifiedPublicKeyCallback
// set in serverConfig). It does not use gliderlabs' sess.PublicKey(), which
// is the last key the client offered and the server accepted: a client may
// offer keys it can not sign with, and only x/crypto's one-entry key cache
// (since the fix for CVE-2024-45337) keeps that the same key.
func (s *Server) authenticated(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		key, _ := sess.Context().Value(verifiedKey{}).(gossh.PublicKey)
		if key == nil {
			fmt.Fprintln(sess.Stderr(), " !     public key authentication required")
			sess.Exit(1)
			return
		}
		id, err := s.admit(sess.Context(), key, sess.RemoteAddr())
		if err != nil {
			fmt.Fprintln(sess.Stderr(), " !     key not allowed")
			sess.Exit(1)
			return
		}
		sess.Context().SetValue(identityKey{}, id)
		next(sess)
	}
}

// admit resolves a key to its identity if it may log in from remote now:
// registered, and within its from= and expiry-time= options.
func (s *Server) admit(ctx context.Context, key gossh.PublicKey, remote net.Addr) (Identity, error) {
	fp := gossh.FingerprintSHA256(key)
	id, err := s.cfg.Keys.Identify(ctx, fp)
	if err != nil {
		return Identity{}, err
	}
	if err := id.Limits.Allow(remote, time.Now()); err != nil {
		s.log.Info("key refused by its options", "key", id.Name, "remote", remote.String(), "why", err.Error())
		return Identity{}, err
	}
	return id, nil
}

type ptyKey struct{}

// terminal gives a session with a terminal its size and the window
// changes the request filter set aside for it (see filteredChannel), and
// takes the filter's token out of the session's environment.
func (s *Server) terminal(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		var resize <-chan Window
		for _, kv := range sess.Environ() {
			if token, ok := strings.CutPrefix(kv, sessionEnv+"="); ok {
				if v, ok := s.windows.LoadAndDelete(token); ok {
					resize = v.(<-chan Window)
				}
			}
		}
		// pty-req comes before the command and window changes never reach
		// gliderlabs, so nothing writes what Pty returns any more.
		if req, _, ok := sess.Pty(); ok && resize != nil {
			sess.Context().SetValue(ptyKey{}, &PTY{
				Term:   req.Term,
				Size:   Window{Cols: req.Window.Width, Rows: req.Window.Height},
				Resize: resize,
			})
		}
		next(sess)
	}
}

// environ is the environment the client sent, without the filter's token.
func environ(sess ssh.Session) []string {
	var env []string
	for _, kv := range sess.Environ() {
		if !strings.HasPrefix(kv, sessionEnv+"=") {
			env = append(env, kv)
		}
	}
	return env
}

func (s *Server) logged(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		id, _ := sess.Context().Value(identityKey{}).(Identity)
		start := time.Now()
		s.log.Info("session", "key", id.Name, "remote", sess.RemoteAddr().String(), "command", firstWord(sess.RawCommand()))
		next(sess)
		s.log.Info("session done", "key", id.Name, "command", firstWord(sess.RawCommand()), "duration", time.Since(start).Round(time.Millisecond))
	}
}

func firstWord(cmd string) string {
	f := strings.Fields(cmd)
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

func (s *Server) dispatch(sess ssh.Session) {
	id, _ := sess.Context().Value(identityKey{}).(Identity)
	_, _, tty := sess.Pty()
	if sess.Subsystem() != "" {
		fmt.Fprintf(sess.Stderr(), " !     subsystem %q is not supported\n", sess.Subsystem())
		sess.Exit(1)
		return
	}
	session := &Session{
		Identity: id,
		Args:     sess.Command(),
		Stdin:    sess,
		Stdout:   sess,
		Stderr:   sess.Stderr(),
		TTY:      tty,
		Env:      environ(sess),
		Remote:   sess.RemoteAddr().String(),
	}
	if pty, ok := sess.Context().Value(ptyKey{}).(*PTY); ok && tty {
		session.PTY = pty
	}
	ctx := sess.Context()
	code := 0
	switch {
	case len(session.Args) >= 1 && (session.Args[0] == "git-receive-pack" || session.Args[0] == "git-upload-pack"):
		if len(session.Args) != 2 {
			fmt.Fprintf(sess.Stderr(), " !     usage: %s APP\n", session.Args[0])
			sess.Exit(2)
			return
		}
		app, err := RepoName(session.Args[1], s.cfg.ValidName)
		if err != nil {
			fmt.Fprintf(sess.Stderr(), " !     %v\n", err)
			sess.Exit(1)
			return
		}
		if !id.CanAccess(app) {
			fmt.Fprintf(sess.Stderr(), " !     key %s may not use app %s\n", id.Name, app)
			sess.Exit(1)
			return
		}
		if session.Args[0] == "git-receive-pack" {
			if s.cfg.MaxPushSize > 0 {
				session.MaxInput = s.cfg.MaxPushSize
			}
			code = s.receive(ctx, session, app)
		} else {
			code = s.upload(ctx, session, app)
		}
	default:
		code = s.cfg.Commands.Run(ctx, session)
	}
	sess.Exit(code)
}

func loadHostKey(path string, log *slog.Logger) (ssh.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		signer, err := gossh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("read host key %s: %w", path, err)
		}
		// Whoever reads the host key can impersonate the server and, with
		// `hop3 COMMAND`, prove to be hop3's user: owner only, as sshd wants.
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("host key %s is readable by others (%v) and can not be fixed: %w", path, fi.Mode().Perm(), err)
			}
			log.Warn("host key was readable by others; made it 0600", "component", "ssh", "path", path, "mode", fi.Mode().Perm().String())
		}
		return signer, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read host key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "hop3 host key")
	if err != nil {
		return nil, fmt.Errorf("encode host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create host key dir: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("write host key: %w", err)
	}
	return gossh.NewSignerFromKey(priv)
}
