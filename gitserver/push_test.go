package gitserver_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitrepo"
	"hop3/gitserver"
	"hop3/hooks"
	"hop3/internal/appname"
)

// TestMain lets this test binary stand in for hop3 as git's pre-receive
// hook (`hop3 hook pre-receive`), so that a push runs the real hook.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "hook" && os.Args[2] == "pre-receive" {
		os.Exit(hooks.RunPreReceive(os.Stdin, os.Environ(), os.Stderr))
	}
	os.Exit(m.Run())
}

// deployed is one DeployPush call.
type deployed struct {
	app, rev, pusher string
	admin            bool
	quarantined      bool // git's quarantine variables came along
}

// recordingDeployer creates bare repositories, records each deploy, and
// refuses one while refuse is set.
type recordingDeployer struct {
	repos func(string) string

	mu      sync.Mutex
	refuse  bool
	deploys []deployed
}

func (d *recordingDeployer) PreparePush(ctx context.Context, app string, out io.Writer, color bool) (func(), error) {
	dir := d.repos(app)
	if _, err := os.Stat(dir); err == nil {
		return func() {}, nil
	}
	if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", dir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("git init: %v: %s", err, out)
	}
	return func() {}, nil
}

func (d *recordingDeployer) DeployPush(ctx context.Context, app, rev, pusher string, admin bool, env []string, out io.Writer, color bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GIT_QUARANTINE_PATH=") })
	d.deploys = append(d.deploys, deployed{app, rev, pusher, admin, q})
	if d.refuse {
		fmt.Fprintln(out, " !     deploy failed")
		return errors.New("deploy failed")
	}
	return nil
}

func (d *recordingDeployer) CanRead(ctx context.Context, app string) error {
	if _, err := os.Stat(d.repos(app)); err != nil {
		return err
	}
	return nil
}

func (d *recordingDeployer) calls() []deployed {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.deploys)
}

func (d *recordingDeployer) setRefuse(v bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refuse = v
}

// A push goes through the real git receive-pack and pre-receive hook to
// the Deployer: the deploy branch's revision is deployed from git's
// quarantine, by the pusher; a refused deploy moves no ref; other branches
// are stored, not deployed; HEAD follows the branch that went live; and a
// clone reads what was pushed.
func TestPushReachesDeployer(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	repos := func(app string) string { return filepath.Join(dir, "repos", app+".git") }
	dep := &recordingDeployer{repos: repos}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sshPub, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	keys := &fakeKeys{ids: map[string]gitserver.Identity{
		gossh.FingerprintSHA256(sshPub): {Name: "dee", Apps: []string{"mine"}},
	}}
	srv, err := gitserver.New(gitserver.Config{
		HostKeyPath: filepath.Join(dir, "ssh", "host_ed25519"),
		Keys:        keys,
		Deployer:    dep,
		Commands:    fakeCommands{},
		ValidName:   appname.Validate,
		Repos: gitserver.Repos{
			Dir:        repos,
			HooksDir:   filepath.Join(dir, "git", "hooks"),
			GatesDir:   filepath.Join(dir, "git", "pushes"),
			Executable: self,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, srv)
	block, err := gossh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := strings.Cut(addr, ":")
	remote := "ssh://hop3@" + host + ":" + port + "/mine"
	sshCmd := "ssh -F /dev/null -i " + keyFile + " -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"

	work := t.TempDir()
	git := func(args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+sshCmd, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mustGit := func(args ...string) string {
		t.Helper()
		out, err := git(args...)
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(out)
	}
	mustGit("init", "-q", "-b", "main")
	mustGit("commit", "-q", "--allow-empty", "-m", "one")
	rev := mustGit("rev-parse", "HEAD")
	bare := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"--git-dir", repos("mine")}, args...)...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	dep.setRefuse(true)
	if out, err := git("push", remote, "HEAD:main"); err == nil || !strings.Contains(out, "deploy failed") {
		t.Fatalf("a refused deploy was accepted: %v\n%s", err, out)
	}
	if got, err := bare("rev-parse", "--verify", "-q", "refs/heads/main"); err == nil {
		t.Fatalf("main moved to %s although the deploy failed", got)
	}

	dep.setRefuse(false)
	if out, err := git("push", remote, "HEAD:main"); err != nil {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if got, _ := bare("rev-parse", "refs/heads/main"); got != rev {
		t.Fatalf("main is %q after the push, want %s", got, rev)
	}
	want := deployed{app: "mine", rev: rev, pusher: "dee", admin: false, quarantined: true}
	if calls := dep.calls(); len(calls) != 2 || calls[0] != want || calls[1] != want {
		t.Fatalf("deploys = %+v, want twice %+v", calls, want)
	}

	out, err := git("push", remote, "HEAD:feature")
	if err != nil || !strings.Contains(out, "branch feature stored, not deployed (push to main or master to deploy)") {
		t.Fatalf("push of another branch: %v\n%s", err, out)
	}
	if n := len(dep.calls()); n != 2 {
		t.Fatalf("a push of another branch deployed (%d deploys)", n)
	}

	mustGit("commit", "-q", "--allow-empty", "-m", "two")
	mustGit("push", "-q", remote, "HEAD:master")
	if head, _ := bare("symbolic-ref", "HEAD"); head != "refs/heads/"+gitrepo.DeployBranches[1] {
		t.Fatalf("HEAD is %q after master went live", head)
	}

	clone := filepath.Join(t.TempDir(), "clone")
	mustGit("clone", "-q", remote, clone)
	if out, err := exec.Command("git", "-C", clone, "log", "-1", "--format=%s").Output(); err != nil || strings.TrimSpace(string(out)) != "two" {
		t.Fatalf("clone checks out %q (%v), want the live branch", out, err)
	}
	if out, err := git("clone", "-q", "ssh://hop3@"+host+":"+port+"/nothere", filepath.Join(t.TempDir(), "x")); err == nil || !strings.Contains(out, "may not use app nothere") {
		t.Fatalf("clone of an app the key may not use: %v\n%s", err, out)
	}
}
