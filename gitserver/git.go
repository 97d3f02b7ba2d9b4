package gitserver

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"hop3/internal/appname"
)

// RepoName turns the path a git client sends ('/myapp', 'myapp.git',
// '~/myapp') into an app name, refusing anything that is not one.
func RepoName(arg string) (string, error) {
	name := strings.TrimPrefix(arg, "~/")
	name = strings.TrimPrefix(name, "/")
	name = strings.TrimSuffix(name, "/")
	name = strings.TrimSuffix(name, ".git")
	if err := appname.Validate(name); err != nil {
		return "", err
	}
	return name, nil
}

// RunPack serves one git wire-protocol exchange with the real git binary
// (receive-pack or upload-pack) on repoDir. Using git itself rather than
// go-git's server side is deliberate: go-git mishandles the thin packs stock
// git sends on a second push and advertises no side-band.
func RunPack(ctx context.Context, service, repoDir string, s *Session) error {
	if service != "receive-pack" && service != "upload-pack" {
		return fmt.Errorf("unknown git service %q", service)
	}
	cmd := exec.CommandContext(ctx, "git", service, repoDir)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + repoDir}
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
	// The client keeps its side open after the exchange (it waits for the
	// deploy output), so the copy is not awaited: git ends the exchange.
	go func() {
		io.Copy(stdin, s.Stdin)
		stdin.Close()
	}()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("git %s: %w", service, err)
	}
	return nil
}
