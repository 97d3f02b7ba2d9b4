package piku

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/bytesize"
	"hop3/internal/hostclaim"
	"hop3/internal/layout"
	"hop3/internal/ui"
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
	// <Root>/repos/<app>.git and its DATA_DIR <Root>/data/<app>.
	Root string
	// PikuRoot is piku's directory (PIKU_ROOT), where its apps run.
	PikuRoot string
	// Stdout and Stderr receive the commands' output; progress goes to
	// Stderr.
	Stdout, Stderr io.Writer
	// DryRun only checks and says what would be done.
	DryRun bool
	// Data copies each app's data (piku's data/<app>) into its DATA_DIR,
	// with the app stopped in piku and not yet started in hop3.
	Data bool
	// DataOwner gives the owner of an app's copied data; nil means the
	// owner of the DATA_DIR hop3 made for the app (see dataOwner).
	DataOwner func(app string) (uid, gid int, err error)
	// StopWait bounds the wait for piku's processes of an app to exit once
	// stopped; zero means 30 seconds.
	StopWait time.Duration
	// Domain is hop3's: apps answer at <app>.<Domain>. The domain of the
	// apps hop3 has, when it has some, replaces it.
	Domain string
}

// Outcome is what happened to one app.
type Outcome struct {
	App    string // hop3's name
	Status Status
	// Reason says why; for a failure, its first line is the failure and
	// the others detail it (a build's or a crashed process's last lines).
	Reason string
	// Undone says, for a failure, what was undone and what is left.
	Undone string
	Hosts  []string // the piku host names it answers to
}

// failure is an import that failed after it began to change things, with
// what was undone.
type failure struct {
	err    error
	undone string
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// Status is what the import did with one app.
type Status string

// The outcomes of an app.
const (
	Imported  Status = "imported"
	Unchanged Status = "unchanged"    // hop3 already had it, deployed
	Problem   Status = "not imported" // a check failed; nothing was changed
	Failed    Status = "failed"       // the import began and was undone (see Reason)
	Planned   Status = "planned"      // dry run
)

// hop3App is what the import needs to know of an app hop3 has.
type hop3App struct {
	release int
	hosts   []string
}

// Import checks every app, then creates, fills and deploys each one that
// passed, in turn. One app that fails does not stop the others and leaves
// nothing behind: it is destroyed again, and if even that fails the next
// run finds it undeployed and resumes it. The outcomes say which.
func (im *Importer) Import(ctx context.Context, apps []App) []Outcome {
	existing, err := im.hop3Apps(ctx)
	if err != nil {
		if !im.DryRun {
			return []Outcome{{Status: Failed, Reason: err.Error()}}
		}
		im.info("can not list hop3's apps (" + err.Error() + "): the plan assumes none exists")
	}
	im.check(apps, existing)
	var out []Outcome
	for _, a := range apps {
		o := Outcome{App: a.Name, Hosts: a.Hosts}
		ex, exists := existing[a.Name]
		switch {
		case exists && ex.release > 0:
			o.Status, o.Reason = Unchanged, "hop3 already has it, deployed"
			im.step(fmt.Sprintf("Leaving %s alone: hop3 already has an app of that name, deployed (destroy it there, or --rename, to import it again)", a.Name))
		case len(a.Problems) > 0:
			o.Status, o.Reason = Problem, strings.Join(a.Problems, "; ")
			im.fail(fmt.Sprintf("%s can not be imported:", a.PikuName))
			for _, p := range a.Problems {
				im.info("problem: " + p)
			}
		case im.DryRun:
			o.Status = Planned
			im.plan(a, exists)
		default:
			o.Status = Imported
			if exists {
				o.Reason = "resumed an import that did not finish"
			}
			if err := im.importApp(ctx, a, exists); err != nil {
				o.Status, o.Reason = Failed, err.Error()
				if f, ok := err.(*failure); ok {
					o.Undone = f.undone
				}
				first, _, _ := strings.Cut(err.Error(), "\n")
				im.fail(strings.TrimSuffix(fmt.Sprintf("%s: %s; %s", a.Name, first, o.Undone), "; "))
			}
		}
		out = append(out, o)
	}
	return out
}

func (im *Importer) step(msg string) { fmt.Fprintf(im.Stderr, "-----> %s\n", msg) }
func (im *Importer) info(msg string) { fmt.Fprintf(im.Stderr, "       %s\n", msg) }
func (im *Importer) fail(msg string) { fmt.Fprintf(im.Stderr, " !     %s\n", msg) }

// hop3Apps lists hop3's apps with the hosts each answers to.
func (im *Importer) hop3Apps(ctx context.Context) (map[string]hop3App, error) {
	var rows []struct {
		Name    string `json:"name"`
		Release int    `json:"release"`
	}
	if err := im.daemonJSON(ctx, &rows, "apps", "--json"); err != nil {
		return nil, err
	}
	out := map[string]hop3App{}
	for _, r := range rows {
		var d struct {
			Default    string   `json:"default"`
			Domains    []string `json:"domains"`
			FromConfig []string `json:"from_config"`
		}
		if err := im.daemonJSON(ctx, &d, "domains", r.Name, "--json"); err != nil {
			return nil, err
		}
		hosts := append(append([]string{d.Default}, d.Domains...), d.FromConfig...)
		out[r.Name] = hop3App{release: r.Release, hosts: hosts}
		// The daemon's own domain is more sure than the one configured.
		if domain, ok := strings.CutPrefix(d.Default, r.Name+"."); ok {
			im.Domain = domain
		}
	}
	return out, nil
}

func (im *Importer) daemonJSON(ctx context.Context, v any, args ...string) error {
	var stdout, stderr bytes.Buffer
	code, err := im.Daemon.Run(ctx, args, &stdout, &stderr)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("hop3 %s: exit status %d: %s", args[0], code, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(stdout.Bytes(), v); err != nil {
		return fmt.Errorf("hop3 %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

// check adds the problems only the whole plan shows: two apps with one
// name or host, a host another hop3 app answers to, too little space.
func (im *Importer) check(apps []App, existing map[string]hop3App) {
	names := map[string]string{}
	hosts := map[string]string{}
	for owner, h := range existing {
		for _, host := range h.hosts {
			hosts[host] = owner
		}
	}
	var need int64
	var pending []*App
	for i := range apps {
		a := &apps[i]
		if ex, ok := existing[a.Name]; ok && ex.release > 0 {
			continue
		}
		if other, ok := names[a.Name]; ok {
			a.Problems = append(a.Problems, fmt.Sprintf("piku's %s would also be named %s in hop3: --rename one of them", other, a.Name))
		}
		names[a.Name] = a.PikuName
		// hop3's one host rule, as the deploy will apply it (the import
		// acts as an admin), against every app hop3 has and the piku apps
		// before this one.
		var held []hostclaim.Held
		for host, owner := range hosts {
			held = append(held, hostclaim.Held{App: owner, Host: host})
		}
		slices.SortFunc(held, func(x, y hostclaim.Held) int { return strings.Compare(x.Host, y.Host) })
		for _, h := range a.Hosts {
			if err := (hostclaim.Rule{Domain: im.Domain}).Check(a.Name, h, true, held); err != nil {
				a.Problems = append(a.Problems, err.Error())
				continue
			}
			hosts[h] = a.Name
		}
		if len(a.Problems) == 0 {
			need += a.RepoBytes
			if im.Data {
				need += a.DataBytes
			}
			pending = append(pending, a)
		}
	}
	if len(pending) == 0 {
		return
	}
	free, err := freeSpace(im.Root)
	if err != nil {
		im.info(fmt.Sprintf("can not tell the free space in %s: %v", im.Root, err))
		return
	}
	// Builds (virtualenvs, node_modules) need more than the copies: ask
	// for twice what is copied.
	if free < 2*need {
		msg := fmt.Sprintf("%s has %s free; the repositories and data to copy take %s, and builds need more: free some space first", im.Root, bytesize.Human(free), bytesize.Human(need))
		for _, a := range pending {
			a.Problems = append(a.Problems, msg)
		}
	}
}

func freeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
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

func (a App) title() string {
	s := fmt.Sprintf("%s from %s (branch %s)", a.Name, a.Repo, a.Branch)
	if a.Name != a.PikuName {
		s = fmt.Sprintf("piku's %s as %s from %s (branch %s)", a.PikuName, a.Name, a.Repo, a.Branch)
	}
	return s
}

func (im *Importer) plan(a App, resume bool) {
	im.step("Would import " + a.title())
	create, _, deploy, scale := a.commands()
	if resume {
		im.info(fmt.Sprintf("hop3 has %s, never deployed (an import that did not finish?): resume it", a.Name))
	} else {
		im.info("hop3 " + strings.Join(create, " "))
	}
	copyMsg := fmt.Sprintf("copy branches %s into %s", strings.Join(a.Heads, ", "), im.repo(a.Name))
	if a.targetBranch() != a.Branch {
		copyMsg += fmt.Sprintf(", with %s also as main (hop3 deploys main or master)", a.Branch)
	}
	im.info(copyMsg)
	if len(a.Config) > 0 {
		// Names only: values may be secrets.
		im.info(fmt.Sprintf("hop3 config:set --no-restart %s %s", a.Name, strings.Join(slices.Sorted(maps.Keys(a.Config)), " ")))
	}
	if im.Data && a.DataDir != "" {
		im.info(fmt.Sprintf("stop piku's %s (%s), then copy its data (%s) into %s", a.PikuName, im.stopMethod(a), bytesize.Human(a.DataBytes), im.dataDir(a.Name)))
	}
	im.noteStillRunning(a)
	im.info("hop3 " + strings.Join(deploy, " "))
	if scale != nil {
		im.info("hop3 " + strings.Join(scale, " "))
	}
	if len(a.Hosts) > 0 {
		im.info("serves " + strings.Join(a.Hosts, ", "))
	}
	for _, n := range a.Notes {
		im.info("note: " + n)
	}
}

func (im *Importer) repo(app string) string    { return layout.New(im.Root).Repo(app) }
func (im *Importer) dataDir(app string) string { return layout.New(im.Root).Data(app) }

// importApp runs the import of one app; on failure it undoes it.
func (im *Importer) importApp(ctx context.Context, a App, resume bool) (err error) {
	im.step("Importing " + a.title())
	for _, n := range a.Notes {
		im.info("note: " + n)
	}
	hadData := hasFiles(im.dataDir(a.Name))
	var restartPiku func() error
	create, configure, deploy, scale := a.commands()
	if resume {
		im.info(fmt.Sprintf("hop3 has %s, never deployed, from an import that did not finish: resuming it", a.Name))
	} else if err := im.run(ctx, create); err != nil {
		// Nothing was made, or not by this run: nothing to undo.
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		undone := im.undo(context.WithoutCancel(ctx), a, hadData)
		if restartPiku != nil {
			if rerr := restartPiku(); rerr != nil {
				undone += fmt.Sprintf("; additionally, starting piku's %s again: %v", a.PikuName, rerr)
			} else {
				undone += fmt.Sprintf("; piku's %s runs again", a.PikuName)
				im.info(fmt.Sprintf("started piku's %s again", a.PikuName))
			}
		}
		err = &failure{err: err, undone: undone}
	}()
	if err := im.copyRepo(ctx, a); err != nil {
		return fmt.Errorf("copy repository: %w", err)
	}
	for _, c := range configure {
		if err := im.run(ctx, c); err != nil {
			return err
		}
	}
	if im.Data && a.DataDir != "" {
		if restartPiku, err = im.stopPiku(ctx, a); err != nil {
			return err
		}
		if err := im.copyData(ctx, a); err != nil {
			return fmt.Errorf("copy data: %w", err)
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
	restartPiku = nil
	im.noteStillRunning(a)
	return nil
}

// noteStillRunning says how to stop the app in piku when the import does
// not: until then its workers and cron jobs run in both, and its data
// drifts apart.
func (im *Importer) noteStillRunning(a App) {
	if im.Data && a.DataDir != "" {
		return
	}
	if n := len(im.vassals(a.PikuName)); n > 0 {
		im.info(fmt.Sprintf("note: piku still runs %s (%d process(es) in uwsgi-enabled): stop it there with `piku stop %s`, or import with --data", a.PikuName, n, a.PikuName))
	}
}

// undo destroys what the import of a made in hop3, and says what is left.
// The app's DATA_DIR goes too unless it held files before.
func (im *Importer) undo(ctx context.Context, a App, hadData bool) string {
	args := []string{"destroy", a.Name, "--confirm", a.Name}
	if !hadData {
		args = append(args, "--purge")
	}
	var out bytes.Buffer
	code, err := im.Daemon.Run(ctx, args, &out, &out)
	if err == nil && code != 0 {
		err = fmt.Errorf("exit status %d: %s", code, strings.TrimSpace(out.String()))
	}
	if err != nil {
		im.fail(fmt.Sprintf("could not remove %s from hop3: %v", a.Name, err))
		return fmt.Sprintf("%s is left in hop3, not deployed: the next run resumes it", a.Name)
	}
	im.info(fmt.Sprintf("removed %s from hop3 again", a.Name))
	return "it was removed from hop3: run the import again once fixed"
}

// run runs a daemon command with the importer's streams. A failure is
// returned with the command's own failure line and the lines that detail
// it (a build's last lines, a crashed process's log), which it printed.
func (im *Importer) run(ctx context.Context, args []string) error {
	w := &failWatch{w: im.Stderr}
	code, err := im.Daemon.Run(ctx, args, im.Stdout, w)
	w.flush()
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	if code != 0 {
		if len(w.lines) > 0 {
			return fmt.Errorf("%s failed: %s", args[0], strings.Join(w.lines, "\n"))
		}
		return fmt.Errorf("%s failed (exit status %d)", args[0], code)
	}
	return nil
}

// failWatch passes output through and keeps the first failure line
// (" !     ...") with the detail lines under it.
type failWatch struct {
	w       io.Writer
	partial []byte
	lines   []string
	done    bool
}

func (f *failWatch) Write(p []byte) (int, error) {
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		f.line(string(f.partial[:i]))
		f.partial = f.partial[i+1:]
	}
	return f.w.Write(p)
}

func (f *failWatch) flush() {
	if len(f.partial) > 0 {
		f.line(string(f.partial))
		f.partial = nil
	}
}

func (f *failWatch) line(l string) {
	l = ui.StripANSI(l)
	switch {
	case f.done:
	case len(f.lines) == 0:
		if msg, ok := strings.CutPrefix(l, " !     "); ok {
			f.lines = append(f.lines, msg)
		}
	case strings.HasPrefix(l, "       ") && len(f.lines) < 20:
		f.lines = append(f.lines, strings.TrimSpace(l))
	default:
		f.done = true
	}
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
	args := append([]string{"-c", "safe.directory=" + src, "fetch", "--quiet", "--no-write-fetch-head",
		"--upload-pack=" + uploadPack(src), src}, refspecs...)
	if _, err := git(ctx, dst, args...); err != nil {
		return err
	}
	if _, err := git(ctx, dst, "symbolic-ref", "HEAD", "refs/heads/"+target); err != nil {
		return err
	}
	im.info(fmt.Sprintf("copied %d branch(es) into %s", len(a.Heads), dst))
	return chownLike(im.Root, dst)
}

// copyData copies piku's data of the app into its DATA_DIR, which the
// app's processes do not use yet (it is deployed after), and gives it to
// the owner the app's processes run as.
func (im *Importer) copyData(ctx context.Context, a App) error {
	dst := im.dataDir(a.Name)
	uid, gid, err := im.dataOwner(a.Name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", "--", a.DataDir+"/.", dst+"/")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, strings.TrimSpace(string(out)))
	}
	if err := chownTree(dst, uid, gid); err != nil {
		return err
	}
	// cp -a gives DATA_DIR itself the mode of piku's directory: keep
	// the one hop3 chose.
	if err := os.Chmod(dst, fi.Mode().Perm()|fi.Mode()&(os.ModeSetgid|os.ModeSticky)); err != nil {
		return err
	}
	im.info(fmt.Sprintf("copied %s of data from %s into %s, owned by %d:%d", bytesize.Human(a.DataBytes), a.DataDir, dst, uid, gid))
	return nil
}

// dataOwner is the one place the owner of imported data is decided: the
// owner hop3 gave the app's DATA_DIR when it created the app (the app's
// own user when apps run as their own, else hop3's), or the owner of
// hop3's root.
func (im *Importer) dataOwner(app string) (int, int, error) {
	if im.DataOwner != nil {
		return im.DataOwner(app)
	}
	if uid, gid, err := OwnerOf(im.dataDir(app)); err == nil {
		return uid, gid, nil
	}
	return OwnerOf(im.Root)
}

// OwnerOf returns the owner of path.
func OwnerOf(path string) (uid, gid int, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, fmt.Errorf("no owner for %s", path)
	}
	return int(st.Uid), int(st.Gid), nil
}

// chownTree gives every file under dir to uid:gid (when it is not already
// theirs and we may).
func chownTree(dir string, uid, gid int) error {
	if os.Geteuid() != 0 {
		if u, g, err := OwnerOf(dir); err == nil && u == uid && g == gid {
			return nil
		}
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// chownLike gives every file under dir to the owner of ref, when running
// as root and ref belongs to someone else.
func chownLike(ref, dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := OwnerOf(ref)
	if err != nil || uid == 0 {
		return err
	}
	return chownTree(dir, uid, gid)
}

// pikuScript is piku's own command line, beside PIKU_ROOT in the piku
// user's home.
func (im *Importer) pikuScript() string {
	return filepath.Join(filepath.Dir(im.PikuRoot), "piku.py")
}

// vassals are the uWSGI configs that run an app in piku: piku writes one
// uwsgi-enabled/<app>_<kind>.<n>.ini per process, and its emperor runs
// what is there.
func (im *Importer) vassals(app string) []string {
	inis, _ := filepath.Glob(filepath.Join(im.PikuRoot, "uwsgi-enabled", globEscape(app)+"_*.ini"))
	return inis
}

func globEscape(s string) string {
	r := strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`)
	return r.Replace(s)
}

const stoppedSuffix = ".hop3-stopped"

func (im *Importer) stopMethod(a App) string {
	if _, err := os.Stat(im.pikuScript()); err == nil {
		return "piku.py stop " + a.PikuName
	}
	return fmt.Sprintf("renaming uwsgi-enabled/%s_*.ini to *.ini%s", a.PikuName, stoppedSuffix)
}

// stopPiku stops the app in piku, so that its processes and cron jobs no
// longer change its data: with piku's own `piku.py stop APP`, run as
// piku's user, when the script is there, else by renaming its uWSGI
// vassal configs, which makes piku's emperor stop them, as `piku stop`
// does. It waits for the app's processes (those working in its directory)
// to exit, and returns how to start it again in piku.
func (im *Importer) stopPiku(ctx context.Context, a App) (restart func() error, err error) {
	inis := im.vassals(a.PikuName)
	appDir := filepath.Join(im.PikuRoot, "apps", a.PikuName)
	if len(inis) == 0 && len(processesIn(appDir)) == 0 {
		im.info(fmt.Sprintf("piku's %s is not running (no uwsgi-enabled/%s_*.ini)", a.PikuName, a.PikuName))
		return nil, nil
	}
	script := im.pikuScript()
	if _, serr := os.Stat(script); serr == nil {
		if err := im.pikuCLI(ctx, "stop", a.PikuName); err == nil {
			im.info(fmt.Sprintf("stopped piku's %s with `piku.py stop %s` (start it there again with `piku restart %s`)", a.PikuName, a.PikuName, a.PikuName))
			restart = func() error { return im.pikuCLI(context.Background(), "restart", a.PikuName) }
		} else {
			im.info(fmt.Sprintf("piku.py stop %s failed (%v): stopping its uWSGI vassals instead", a.PikuName, err))
		}
	}
	if restart == nil {
		var renamed []string
		restart = func() error {
			var errs []error
			for _, ini := range renamed {
				errs = append(errs, os.Rename(ini+stoppedSuffix, ini))
			}
			return errors.Join(errs...)
		}
		for _, ini := range inis {
			if err := os.Rename(ini, ini+stoppedSuffix); err != nil {
				restart()
				return nil, fmt.Errorf("stop piku's %s: %w", a.PikuName, err)
			}
			renamed = append(renamed, ini)
		}
		im.info(fmt.Sprintf("stopped piku's %s: renamed %d uwsgi-enabled/%s_*.ini to *.ini%s, and piku's uWSGI emperor stops what they ran (rename them back to start it there again)",
			a.PikuName, len(renamed), a.PikuName, stoppedSuffix))
	}
	wait := im.StopWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	deadline := time.Now().Add(wait)
	for {
		pids := processesIn(appDir)
		if len(pids) == 0 {
			return restart, nil
		}
		if time.Now().After(deadline) {
			rerr := restart()
			msg := fmt.Sprintf("piku's %s still runs after %s (processes %v working in %s)", a.PikuName, wait, pids, appDir)
			if rerr != nil {
				msg += fmt.Sprintf("; additionally, starting it again: %v", rerr)
			}
			return nil, errors.New(msg)
		}
		select {
		case <-ctx.Done():
			restart()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// pikuCLI runs piku's own script as the owner of PIKU_ROOT.
func (im *Importer) pikuCLI(ctx context.Context, args ...string) error {
	uid, gid, err := OwnerOf(im.PikuRoot)
	if err != nil {
		return err
	}
	home := filepath.Dir(im.PikuRoot)
	cmd := exec.CommandContext(ctx, "python3", append([]string{im.pikuScript()}, args...)...)
	cmd.Dir = home
	cmd.Env = []string{"HOME=" + home, "PIKU_ROOT=" + im.PikuRoot, "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"}
	if os.Geteuid() == 0 && uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, lastLine(string(out)))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// processesIn lists the processes whose working directory is dir or below:
// piku runs every process of an app in the app's directory.
func processesIn(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if cwd == dir || strings.HasPrefix(cwd, dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}
