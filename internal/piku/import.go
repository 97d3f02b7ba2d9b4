package piku

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Daemon runs a command on the running hop3 daemon, as `hop3 COMMAND`
// does through its control socket, and returns its exit status.
type Daemon interface {
	Run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error)
}

// Importer moves scanned piku apps into a running hop3.
type Importer struct {
	Daemon Daemon
	// Root is hop3's state directory: an app's repository is
	// <Root>/repos/<app>.git.
	Root string
	// Stdout and Stderr receive the commands' output; progress goes to
	// Stderr.
	Stdout, Stderr io.Writer
	// DryRun only says what would be done.
	DryRun bool
}

// Outcome is what happened to one app.
type Outcome struct {
	App    string
	Status string // "imported", "skipped", "failed", "planned"
	Reason string
}

// Import creates, fills and deploys each app in turn. One app that fails
// does not stop the others; the outcomes say what happened to each.
func (im *Importer) Import(ctx context.Context, apps []App) []Outcome {
	existing, err := im.existingApps(ctx)
	if err != nil {
		if !im.DryRun {
			return []Outcome{{Status: "failed", Reason: err.Error()}}
		}
		im.info("can not list hop3's apps (" + err.Error() + "): the plan assumes none exists")
	}
	var out []Outcome
	for _, a := range apps {
		o := Outcome{App: a.Name}
		switch {
		case a.Skip != "":
			o.Status, o.Reason = "skipped", a.Skip
			im.step(fmt.Sprintf("Skipping %s: %s", a.Name, a.Skip))
		case existing[a.Name]:
			o.Status, o.Reason = "skipped", "hop3 already has an app of that name"
			im.step(fmt.Sprintf("Skipping %s: hop3 already has an app of that name (destroy it first to import it again)", a.Name))
		case im.DryRun:
			o.Status = "planned"
			im.plan(a)
		default:
			if err := im.importApp(ctx, a); err != nil {
				o.Status, o.Reason = "failed", err.Error()
				im.fail(fmt.Sprintf("%s: %v", a.Name, err))
			} else {
				o.Status = "imported"
			}
		}
		out = append(out, o)
	}
	return out
}

func (im *Importer) step(msg string) { fmt.Fprintf(im.Stderr, "-----> %s\n", msg) }
func (im *Importer) info(msg string) { fmt.Fprintf(im.Stderr, "       %s\n", msg) }
func (im *Importer) fail(msg string) { fmt.Fprintf(im.Stderr, " !     %s\n", msg) }

// existingApps lists hop3's apps.
func (im *Importer) existingApps(ctx context.Context) (map[string]bool, error) {
	var stdout, stderr bytes.Buffer
	code, err := im.Daemon.Run(ctx, []string{"apps", "--json"}, &stdout, &stderr)
	if err != nil {
		return nil, err
	}
	if code != 0 {
		return nil, fmt.Errorf("hop3 apps: exit status %d: %s", code, strings.TrimSpace(stderr.String()))
	}
	var rows []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rows); err != nil {
		return nil, fmt.Errorf("hop3 apps --json: %w", err)
	}
	out := map[string]bool{}
	for _, r := range rows {
		out[r.Name] = true
	}
	return out, nil
}

// commands lists the daemon commands that import an app, in order; the
// repository copy comes between the first and the others.
func (a App) commands() (create []string, configure [][]string, deploy []string, scale []string) {
	create = []string{"create", a.Name}
	if len(a.Config) > 0 {
		args := []string{"config:set", "--no-restart", a.Name}
		for _, k := range slices.Sorted(maps.Keys(a.Config)) {
			args = append(args, k+"="+a.Config[k])
		}
		configure = append(configure, args)
	}
	deploy = []string{"deploy", a.Name}
	if len(a.Scale) > 0 {
		scale = []string{"ps:scale", a.Name}
		for _, k := range slices.Sorted(maps.Keys(a.Scale)) {
			scale = append(scale, k+"="+strconv.Itoa(a.Scale[k]))
		}
	}
	return
}

// targetBranch is the branch name the app gets in hop3, which deploys
// main or master.
func (a App) targetBranch() string {
	if a.Branch == "main" || a.Branch == "master" {
		return a.Branch
	}
	return "main"
}

func (im *Importer) plan(a App) {
	im.step(fmt.Sprintf("Would import %s from %s (branch %s)", a.Name, a.Repo, a.Branch))
	create, _, deploy, scale := a.commands()
	im.info("hop3 " + strings.Join(create, " "))
	copyMsg := fmt.Sprintf("copy branches %s into %s", strings.Join(a.Heads, ", "), im.repo(a.Name))
	if a.targetBranch() != a.Branch {
		copyMsg += fmt.Sprintf(", with %s also as main (hop3 deploys main or master)", a.Branch)
	}
	im.info(copyMsg)
	if len(a.Config) > 0 {
		// Names only: values may be secrets.
		im.info(fmt.Sprintf("hop3 config:set --no-restart %s %s", a.Name, strings.Join(slices.Sorted(maps.Keys(a.Config)), " ")))
	}
	im.info("hop3 " + strings.Join(deploy, " "))
	if scale != nil {
		im.info("hop3 " + strings.Join(scale, " "))
	}
	for _, n := range a.Notes {
		im.info("note: " + n)
	}
}

func (im *Importer) repo(app string) string {
	return filepath.Join(im.Root, "repos", app+".git")
}

func (im *Importer) importApp(ctx context.Context, a App) error {
	im.step(fmt.Sprintf("Importing %s from %s (branch %s)", a.Name, a.Repo, a.Branch))
	for _, n := range a.Notes {
		im.info("note: " + n)
	}
	create, configure, deploy, scale := a.commands()
	if err := im.run(ctx, create); err != nil {
		return err
	}
	if err := im.copyRepo(ctx, a); err != nil {
		return fmt.Errorf("copy repository: %w", err)
	}
	for _, c := range configure {
		if err := im.run(ctx, c); err != nil {
			return err
		}
	}
	if err := im.run(ctx, deploy); err != nil {
		return err
	}
	if scale != nil {
		if err := im.run(ctx, scale); err != nil {
			return err
		}
	}
	return nil
}

// run runs a daemon command with the importer's streams.
func (im *Importer) run(ctx context.Context, args []string) error {
	code, err := im.Daemon.Run(ctx, args, im.Stdout, im.Stderr)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if code != 0 {
		return fmt.Errorf("%s failed (exit status %d)", args[0], code)
	}
	return nil
}

// copyRepo fetches every branch and tag of the piku repository into the
// app's repository in hop3, which `create` made, and points HEAD at the
// branch deployed. As root, the copied files are given to the owner of
// hop3's root, the daemon's user.
func (im *Importer) copyRepo(ctx context.Context, a App) error {
	dst := im.repo(a.Name)
	if _, err := os.Stat(filepath.Join(dst, "HEAD")); err != nil {
		return fmt.Errorf("hop3 made no repository at %s: %w", dst, err)
	}
	src, err := filepath.Abs(a.Repo)
	if err != nil {
		return err
	}
	refspecs := []string{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	target := a.targetBranch()
	if target != a.Branch {
		refspecs = append(refspecs, "+refs/heads/"+a.Branch+":refs/heads/"+target)
	}
	args := append([]string{"-c", "safe.directory=" + src, "fetch", "--quiet", "--no-write-fetch-head", src}, refspecs...)
	if _, err := git(ctx, dst, args...); err != nil {
		return err
	}
	if _, err := git(ctx, dst, "symbolic-ref", "HEAD", "refs/heads/"+target); err != nil {
		return err
	}
	im.info(fmt.Sprintf("copied %d branch(es) into %s", len(a.Heads), dst))
	return chownLike(im.Root, dst)
}

// chownLike gives every file under dir to the owner of ref, when running
// as root and ref belongs to someone else.
func chownLike(ref, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(ref)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Uid == 0 {
		return nil
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(st.Uid), int(st.Gid))
	})
}
