package gitserver

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"hop3/gitrepo"
	"hop3/hooks"
)

// Deployer is what a push and a clone need from the orchestrator. Its
// methods tell out (the session's stderr, coloured when color is true)
// about their own failures; a returned error only says to refuse.
type Deployer interface {
	// PreparePush holds app for one push until done is called, creating
	// it (record, directories, repository) on first use. A push that has
	// to wait for another is told so on out.
	PreparePush(ctx context.Context, app string, out io.Writer, color bool) (done func(), err error)
	// DeployPush builds revision rev of app and makes it live, for pusher
	// (admin: whether the pusher's key is an admin's, which decides the
	// hosts the app may claim). env holds git's quarantine variables: the
	// pushed objects are readable only with them until the push is
	// accepted.
	DeployPush(ctx context.Context, app, rev, pusher string, admin bool, env []string, out io.Writer, color bool) error
	// CanRead reports whether app exists to be cloned or fetched.
	CanRead(ctx context.Context, app string) error
}

// Commands runs every SSH command other than git's and returns its exit
// status.
type Commands interface {
	Run(ctx context.Context, s *Session) int
}

// Repos says where git's side of hop3 keeps its files.
type Repos struct {
	// Dir is the bare repository of an app.
	Dir func(app string) string
	// HooksDir is the only directory git runs hooks from: outside every
	// repository, written by hop3 alone.
	HooksDir string
	// GatesDir holds the private directory of each push's pre-receive
	// socket.
	GatesDir string
	// Executable is hop3's own binary, which git runs as the pre-receive
	// hook.
	Executable string
}

// receive serves a push. The real git receive-pack stores the objects in
// its quarantine and runs hop3's pre-receive hook, which hands the ref
// updates to this process: a push to main (or master) is built, released
// and started right then, while git waits and the pusher watches. Only when
// the new release is live does the hook accept, and only then does git move
// the branch. A failed deploy is refused by git itself ("[remote
// rejected]"): the branch, the client's tracking ref and the serving
// release stay where they were.
func (s *Server) receive(ctx context.Context, sess *Session, app string) int {
	// The deploy's output goes straight to the session's stderr, as the
	// client's git passes it through untouched, rather than through the
	// hook's stderr, which git would prefix with "remote: " line by line.
	out, color := sess.Stderr, s.colorFor(sess)
	done, err := s.cfg.Deployer.PreparePush(ctx, app, out, color)
	if err != nil {
		return 1
	}
	defer done()
	if err := writeHook(s.cfg.Repos.HooksDir, s.cfg.Repos.Executable); err != nil {
		s.log.Error("write git hooks", "err", err)
		// File system errors are one line: the path and the reason.
		fmt.Fprintln(out, " !     the server cannot take pushes: "+err.Error())
		return 1
	}
	gate, err := hooks.Listen(s.cfg.Repos.GatesDir)
	if err != nil {
		s.log.Error("open push gate", "app", app, "err", err)
		fmt.Fprintln(out, " !     the server cannot take pushes: "+err.Error())
		return 1
	}
	defer gate.Close()
	repo := s.cfg.Repos.Dir(app)
	packDone := make(chan error, 1)
	go func() {
		packDone <- RunPack(ctx, "receive-pack", repo, sess, PackOptions{HooksDir: s.cfg.Repos.HooksDir, Env: []string{gate.Env()}})
	}()
	type hooked struct {
		push *hooks.Push
		err  error
	}
	waitCtx, stopWaiting := context.WithCancel(ctx)
	defer stopWaiting()
	arrived := make(chan hooked, 1)
	go func() {
		p, err := gate.Wait(waitCtx)
		arrived <- hooked{p, err}
	}()

	code, branch := 0, ""
	var packErr error
	select {
	case packErr = <-packDone:
		// git ended without running the hook: nothing to update, or a pack
		// it refused (too large, malformed); it told the client why.
		stopWaiting()
		if h := <-arrived; h.push != nil {
			h.push.Reply(1) // not reached: git waits for its hook
		}
	case h := <-arrived:
		if h.err != nil {
			s.log.Warn("pre-receive hook", "app", app, "err", h.err)
			packErr = <-packDone
			break
		}
		code, branch = s.preReceive(ctx, app, sess.Identity, h.push, out, color)
		if err := h.push.Reply(code); err != nil {
			s.log.Warn("answer the pre-receive hook", "app", app, "err", err)
		}
		packErr = <-packDone
	}
	if packErr != nil {
		s.log.Warn("receive-pack failed", "app", app, "err", packErr)
		return 1
	}
	if code != 0 {
		return code
	}
	if branch != "" {
		if err := gitrepo.SetHead(repo, branch); err != nil {
			s.log.Warn("set HEAD", "app", app, "err", err)
		}
	}
	return 0
}

// preReceive decides a push while git waits: it deploys the deploy branch's
// new revision from git's quarantine and returns the hook's exit status and
// the branch that went live.
func (s *Server) preReceive(ctx context.Context, app string, id Identity, p *hooks.Push, out io.Writer, color bool) (int, string) {
	plan := hooks.PlanFor(p.Updates)
	for _, b := range plan.Ignored {
		fmt.Fprintf(out, "       branch %s stored, not deployed (push to %s to deploy)\n", b, strings.Join(gitrepo.DeployBranches, " or "))
	}
	if plan.Deploy == nil {
		return 0, ""
	}
	// The variables come from the git this process started, through a
	// socket only hop3's user can reach.
	if err := s.cfg.Deployer.DeployPush(ctx, app, plan.Deploy.New, id.Name, id.Admin, p.Env, out, color); err != nil {
		return 1, ""
	}
	return 0, plan.Deploy.Branch()
}

// writeHook writes the pre-receive hook git runs for every push into dir:
// hop3's own executable exe, run as `hop3 hook pre-receive`. It lives
// outside every repository (git is told so with core.hooksPath), so a hook
// written into a repository is never run.
func writeHook(dir, exe string) error {
	script := "#!/bin/sh\nexec '" + strings.ReplaceAll(exe, "'", `'\''`) + "' hook pre-receive\n"
	path := filepath.Join(dir, "pre-receive")
	if b, err := os.ReadFile(path); err == nil && string(b) == script {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// A fresh name per writer: pushes to other apps may be here at once,
	// and git must never run a half-written hook.
	f, err := os.CreateTemp(dir, "pre-receive.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(script); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o700); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// upload serves a clone or fetch of an app's repository.
func (s *Server) upload(ctx context.Context, sess *Session, app string) int {
	if err := s.cfg.Deployer.CanRead(ctx, app); err != nil {
		fmt.Fprintf(sess.Stderr, " !     no app named %s\n", app)
		return 1
	}
	if err := RunPack(ctx, "upload-pack", s.cfg.Repos.Dir(app), sess, PackOptions{}); err != nil {
		s.log.Warn("upload-pack failed", "app", app, "err", err)
		return 1
	}
	return 0
}

// colorFor decides colour for one session's output, as Config.Color says.
func (s *Server) colorFor(sess *Session) bool {
	return s.cfg.Color != nil && s.cfg.Color(sess.TTY, sess.Env)
}
