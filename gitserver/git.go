package gitserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	"hop3/bytesize"
	"hop3/gitrepo"
)

// RepoName turns the path a git client sends ('/myapp', 'myapp.git',
// '~/myapp') into an app name, refusing, through valid, anything that is
// not one.
func RepoName(arg string, valid func(string) error) (string, error) {
	name := strings.TrimPrefix(arg, "~/")
	name = strings.TrimPrefix(name, "/")
	name = strings.TrimSuffix(name, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := valid(name); err != nil {
		return "", err
	}
	return name, nil
}

// PackOptions are what the caller adds to a git exchange.
type PackOptions struct {
	// HooksDir is the only directory git runs hooks from. Empty: none run.
	// It must lie outside every repository, so that a file a push or an app
	// writes into a repository's hooks/ is never executed.
	HooksDir string
	// Env is added to git's environment, and so to its hooks'.
	Env []string
}

// RunPack serves one git wire-protocol exchange with the real git binary
// (receive-pack or upload-pack) on repoDir. Using git itself rather than
// go-git's server side is deliberate: go-git mishandles the thin packs stock
// git sends on a second push and advertises no side-band.
func RunPack(ctx context.Context, service, repoDir string, s *Session, opts PackOptions) error {
	if service != "receive-pack" && service != "upload-pack" {
		return fmt.Errorf("unknown git service %q", service)
	}
	hooksDir := opts.HooksDir
	if hooksDir == "" {
		hooksDir = os.DevNull // not a directory: git finds no hook in it
	}
	args := []string{
		"-c", "core.hooksPath=" + hooksDir,
		// Malformed trees (duplicate names, "..", ".git") are refused while
		// the pack is received, before any of it is stored or checked out.
		"-c", "receive.fsckObjects=true",
		service, repoDir,
	}
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Env = append(gitrepo.Env(repoDir), opts.Env...)
	for _, kv := range s.Env {
		// Protocol v2 makes clones and fetches cheaper; git sends it as an env var.
		if strings.HasPrefix(kv, "GIT_PROTOCOL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.Stdout
	cmd.Stderr = s.Stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start git %s: %w", service, err)
	}
	in := &capReader{r: s.Stdin, left: s.MaxInput}
	if service != "receive-pack" || s.MaxInput <= 0 {
		in.left = -1
	}
	// The client keeps its side open after the exchange (it waits for the
	// deploy output), so the copy is not awaited: git ends the exchange.
	// A push over the limit is cut off: git sees the pack end early, fails
	// to unpack it and removes its quarantined objects, so neither a ref
	// nor an object of it is left behind.
	go func() {
		io.Copy(stdin, in)
		stdin.Close()
	}()
	err = cmd.Wait()
	if in.over.Load() {
		fmt.Fprintf(s.Stderr, " !     push refused: it sends more than %s, the server's limit (hop3 serve --max-push-size)\n", bytesize.Format(s.MaxInput))
		return fmt.Errorf("git %s: %w (%d bytes)", service, ErrPushTooLarge, s.MaxInput)
	}
	if err != nil {
		return fmt.Errorf("git %s: %w", service, err)
	}
	return nil
}

// ErrPushTooLarge reports a push cut off at the size limit.
var ErrPushTooLarge = errors.New("push larger than the limit")

// capReader reads at most left bytes (left < 0: no limit); reading more
// sets over and ends the stream.
type capReader struct {
	r    io.Reader
	left int64
	over atomic.Bool
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left < 0 {
		return c.r.Read(p)
	}
	if c.left == 0 {
		// Probe for one more byte: a push of exactly the limit is fine.
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			c.over.Store(true)
			return 0, ErrPushTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}
