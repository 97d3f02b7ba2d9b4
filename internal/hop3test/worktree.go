package hop3test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// WorkTree is a local git repository of an app's source.
type WorkTree struct {
	Dir string
}

// InitWorkTree makes dir a repository on branch main and commits files in
// it (with what dir already holds).
func InitWorkTree(dir string, files map[string]string) (*WorkTree, error) {
	w := &WorkTree{Dir: dir}
	if out, err := w.Git(nil, "init", "-q", "-b", "main"); err != nil {
		return nil, fmt.Errorf("git init: %v\n%s", err, out)
	}
	return w, w.Commit("initial", files)
}

// Git runs git in the work tree with a fixed identity and env added, and
// returns its combined output.
func (w *WorkTree) Git(env []string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = w.Dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Commit writes files (an empty content deletes the file) and commits
// everything, with an empty commit when nothing changed.
func (w *WorkTree) Commit(msg string, files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(w.Dir, name)
		if content == "" {
			os.Remove(p)
			continue
		}
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "--allow-empty", "-m", msg}} {
		if out, err := w.Git(nil, args...); err != nil {
			return fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// Push pushes refspecs (HEAD:main when none) to app on d as u, with the
// real git and ssh clients, and returns git's combined output. flags go
// before the remote ("-q").
func (w *WorkTree) Push(ctx context.Context, d *Daemon, u User, app string, flags []string, refspecs ...string) (string, error) {
	if len(refspecs) == 0 {
		refspecs = []string{"HEAD:main"}
	}
	args := append(append([]string{"push"}, flags...), d.Remote(app))
	cmd := exec.CommandContext(ctx, "git", append(args, refspecs...)...)
	cmd.Dir = w.Dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+d.SSHCommand(u))
	out, err := cmd.CombinedOutput()
	return string(out), err
}
