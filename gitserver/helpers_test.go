package gitserver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
	"hop3/internal/appname"
)

// fakeKeys is a key table; it records every fingerprint it was asked about.
type fakeKeys struct {
	mu    sync.Mutex
	ids   map[string]gitserver.Identity
	asked []string
}

func (k *fakeKeys) Identify(_ context.Context, fp string) (gitserver.Identity, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.asked = append(k.asked, fp)
	id, ok := k.ids[fp]
	if !ok {
		return gitserver.Identity{}, errors.New("unknown key")
	}
	return id, nil
}

func (k *fakeKeys) wasAsked(fp string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, a := range k.asked {
		if a == fp {
			return true
		}
	}
	return false
}

// refusingDeployer takes no push: it says which app a push reached, and
// refuses it.
type refusingDeployer struct{}

func (refusingDeployer) PreparePush(ctx context.Context, app string, out io.Writer, color bool) (func(), error) {
	fmt.Fprintf(out, "prepare %s\n", app)
	return nil, errors.New("not taking pushes")
}

func (refusingDeployer) DeployPush(ctx context.Context, app, rev, pusher string, admin bool, env []string, out io.Writer, color bool) error {
	return errors.New("not taking pushes")
}

func (refusingDeployer) CanRead(ctx context.Context, app string) error { return errors.New("no app") }

// withFakes completes cfg with stand-ins for what New requires besides
// keys: a deployer that refuses pushes, the command fake, and directories
// under t's temporary one.
func withFakes(t *testing.T, cfg gitserver.Config) gitserver.Config {
	dir := t.TempDir()
	cfg.Deployer = refusingDeployer{}
	cfg.Commands = fakeCommands{}
	cfg.ValidName = appname.Validate
	cfg.Repos = gitserver.Repos{
		Dir:        func(app string) string { return filepath.Join(dir, "repos", app+".git") },
		HooksDir:   filepath.Join(dir, "hooks"),
		GatesDir:   filepath.Join(dir, "pushes"),
		Executable: "/bin/false",
	}
	return cfg
}

// fakeCommands answers commands: "whoami" prints the session's identity,
// "wait" blocks until stdin ends, "env" prints the environment it got.
type fakeCommands struct{}

func (fakeCommands) Run(ctx context.Context, s *gitserver.Session) int {
	if len(s.Args) == 0 {
		return 2
	}
	switch s.Args[0] {
	case "whoami":
		admin := ""
		if s.Identity.Admin {
			admin = " (admin)"
		}
		fmt.Fprintf(s.Stdout, "%s%s\n", s.Identity.Name, admin)
		return 0
	case "wait":
		io.Copy(io.Discard, s.Stdin)
		return 0
	case "env":
		fmt.Fprintf(s.Stdout, "%d\n", len(s.Env))
		return 0
	case "winch":
		// Prints the terminal's size, then the first change to 100x40.
		if s.PTY == nil {
			fmt.Fprintln(s.Stdout, "no terminal")
			return 1
		}
		fmt.Fprintf(s.Stdout, "%dx%d\n", s.PTY.Size.Cols, s.PTY.Size.Rows)
		timeout := time.After(20 * time.Second)
		for {
			select {
			case w, ok := <-s.PTY.Resize:
				if !ok {
					return 1
				}
				if w.Cols == 100 && w.Rows == 40 {
					fmt.Fprintf(s.Stdout, "resized %dx%d\n", w.Cols, w.Rows)
					return 0
				}
			case <-timeout:
				fmt.Fprintln(s.Stdout, "no resize")
				return 1
			}
		}
	}
	return 2
}

// key is a generated ed25519 key.
type key struct {
	signer gossh.Signer
	fp     string
}

func newKey(t *testing.T) key {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return key{signer: s, fp: gossh.FingerprintSHA256(s.PublicKey())}
}

// testServer is a gitserver.Server on loopback.
type testServer struct {
	addr    string
	keys    *fakeKeys
	admin   key // registered as an admin
	deploy  key // registered as a deployer of app "mine"
	hostKey gossh.PublicKey
}

func startServer(t *testing.T, cfg gitserver.Config) *testServer {
	t.Helper()
	ts := &testServer{admin: newKey(t), deploy: newKey(t)}
	ts.keys = &fakeKeys{ids: map[string]gitserver.Identity{
		ts.admin.fp:  {Name: "admin", Admin: true},
		ts.deploy.fp: {Name: "deployer", Apps: []string{"mine"}},
	}}
	cfg.Keys = ts.keys
	cfg = withFakes(t, cfg)
	cfg.HostKeyPath = filepath.Join(t.TempDir(), "ssh", "host_ed25519")
	srv, err := gitserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hk, _, _, _, err := gossh.ParseAuthorizedKey([]byte(srv.HostKey()))
	if err != nil {
		t.Fatal(err)
	}
	ts.hostKey = hk
	ts.addr = serve(t, srv)
	return ts
}

// serve serves srv on loopback until the test ends and returns its address.
func serve(t *testing.T, srv *gitserver.Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
	return l.Addr().String()
}

// clientConfig authenticates with the given auth methods.
func (ts *testServer) clientConfig(auth ...gossh.AuthMethod) *gossh.ClientConfig {
	return &gossh.ClientConfig{
		User:            "hop3",
		Auth:            auth,
		HostKeyCallback: gossh.FixedHostKey(ts.hostKey),
		Timeout:         10 * time.Second,
	}
}

// dial connects with k.
func (ts *testServer) dial(t *testing.T, k key) *gossh.Client {
	t.Helper()
	c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(k.signer)))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd in a new session and returns its stdout.
func run(c *gossh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	var out, errb bytes.Buffer
	s.Stdout, s.Stderr = &out, &errb
	if err := s.Run(cmd); err != nil {
		return out.String(), fmt.Errorf("%v (stderr %q)", err, errb.String())
	}
	return out.String(), nil
}

// querySigner offers a public key whose private half the client does not
// have: the server may accept the offer, but the client can not sign.
type querySigner struct{ pub gossh.PublicKey }

func (q querySigner) PublicKey() gossh.PublicKey { return q.pub }
func (q querySigner) Sign(io.Reader, []byte) (*gossh.Signature, error) {
	return nil, errors.New("no private key for this public key")
}

// wrongSigner claims pub but signs with another key.
type wrongSigner struct {
	pub   gossh.PublicKey
	other gossh.Signer
}

func (w wrongSigner) PublicKey() gossh.PublicKey { return w.pub }
func (w wrongSigner) Sign(r io.Reader, data []byte) (*gossh.Signature, error) {
	return w.other.Sign(r, data)
}

// readBanner reads the server's version line from a raw connection.
func readBanner(conn net.Conn, timeout time.Duration) (string, error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := conn.Read(b); err != nil {
			return string(line), err
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			return string(line), nil
		}
	}
}

// waitClosed reads from conn until the server closes it, or fails after
// limit (a bound for the test, not the behaviour under test).
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %s", limit)
	}
}
