package gitserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// LocalCommand runs one command on a running daemon through its control
// socket, wiring the given streams, and returns the command's exit status.
// hostKeyPath is the daemon's host key: reading it proves we are its user,
// and it pins the server we talk to.
func LocalCommand(socket, hostKeyPath string, args []string, stdin io.Reader, stdout, stderr io.Writer, env []string) (int, error) {
	b, err := os.ReadFile(hostKeyPath)
	if err != nil {
		return 0, fmt.Errorf("read host key: %w", err)
	}
	signer, err := gossh.ParsePrivateKey(b)
	if err != nil {
		return 0, fmt.Errorf("read host key: %w", err)
	}
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("hop3 is not running (%s): %w", socket, err)
	}
	cc, chans, reqs, err := gossh.NewClientConn(conn, "local", &gossh.ClientConfig{
		User:            "hop3",
		HostKeyCallback: gossh.FixedHostKey(signer.PublicKey()),
	})
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("connect to hop3: %w", err)
	}
	client := gossh.NewClient(cc, chans, reqs)
	defer client.Close()
	sess, err := client.NewSession()
	if err != nil {
		return 0, err
	}
	defer sess.Close()
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			sess.Setenv(k, v)
		}
	}
	sess.Stdin, sess.Stdout, sess.Stderr = stdin, stdout, stderr
	err = sess.Run(shellJoin(args))
	var ee *gossh.ExitError
	if errors.As(err, &ee) {
		return ee.ExitStatus(), nil
	}
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// shellJoin quotes args so that the server's shell-style split gives them
// back exactly; nothing on the server runs them through a shell.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}
