// Package piku moves apps from a piku server into hop3: it reads piku's
// layout (PIKU_ROOT/repos/<app> bare repositories, PIKU_ROOT/envs/<app>/ENV
// config and SCALING) and, through the running hop3 daemon, creates each
// app, copies its repository, sets its config and scale and deploys it.
package piku

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"hop3/internal/appname"
	"hop3/procfile"
)

// App is what the import will do for one piku app.
type App struct {
	Name   string
	Repo   string   // the piku bare repository
	Branch string   // the branch deployed
	Heads  []string // every branch of the repository
	// Config is the app's config in hop3: the repository's ENV file, then
	// piku's config:set overrides (envs/<app>/ENV), expanded as piku did.
	Config map[string]string
	// Scale holds the process counts to set after the first deploy: the
	// SCALING entries that differ from hop3's defaults.
	Scale map[string]int
	// DataDir is piku's data directory of the app, when it holds files.
	DataDir string
	Notes   []string // what the operator should know
	Skip    string   // why the app is not imported; empty when it is
}

// Options tune a scan.
type Options struct {
	// Only limits the scan to these apps; empty means every app.
	Only []string
	// DataDir is the app's DATA_DIR in hop3, used to translate piku's
	// DATA_ROOT in config values and static paths.
	DataDir func(app string) string
}

// keys hop3 sets itself for every process: a config var of that name is
// refused, so piku's is dropped.
var reserved = map[string]string{
	"APP":          "hop3 sets it",
	"DATA_DIR":     "hop3 sets it",
	"PROC_TYPE":    "hop3 sets it",
	"PORT":         "hop3 gives each web process its own port",
	"BIND_ADDRESS": "hop3's processes listen on 127.0.0.1 or a unix socket",
}

// unused are piku settings hop3 imports but does not act on.
var unused = []string{"NGINX_CLOUDFLARE_ACL", "NGINX_INCLUDE_FILE", "NGINX_ALLOW_GIT_FOLDERS", "NGINX_IPV4_ADDRESS",
	"NGINX_IPV6_ADDRESS", "DISABLE_IPV6", "NGINX_CACHE_", "UWSGI_", "PIKU_AUTO_RESTART"}

// Scan reads the apps of the piku installation at root.
func Scan(ctx context.Context, root string, opts Options) ([]App, error) {
	reposDir := filepath.Join(root, "repos")
	entries, err := os.ReadDir(reposDir)
	if err != nil {
		return nil, fmt.Errorf("read piku repositories: %w (is %s a PIKU_ROOT, such as /home/piku/.piku?)", err, root)
	}
	var apps []App
	for _, e := range entries {
		if !e.IsDir() || (len(opts.Only) > 0 && !slices.Contains(opts.Only, e.Name())) {
			continue
		}
		apps = append(apps, scanApp(ctx, root, e.Name(), opts))
	}
	for _, name := range opts.Only {
		if !slices.ContainsFunc(apps, func(a App) bool { return a.Name == name }) {
			return nil, fmt.Errorf("no piku app %s in %s", name, reposDir)
		}
	}
	return apps, nil
}

func scanApp(ctx context.Context, root, name string, opts Options) App {
	a := App{Name: name, Repo: filepath.Join(root, "repos", name), Config: map[string]string{}, Scale: map[string]int{}}
	if err := appname.Validate(name); err != nil {
		a.Skip = fmt.Sprintf("%v; rename it in piku first or copy it by hand", err)
		return a
	}
	heads, err := gitLines(ctx, a.Repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
	if err != nil {
		a.Skip = "not a git repository: " + err.Error()
		return a
	}
	if len(heads) == 0 {
		a.Skip = "its repository has no branch: nothing was ever pushed"
		return a
	}
	a.Heads = heads
	a.Branch = deployBranch(ctx, a.Repo, heads)

	pf, err := readProcfile(ctx, a.Repo, a.Branch)
	if err != nil {
		a.Skip = err.Error()
		return a
	}

	dataDir := ""
	if opts.DataDir != nil {
		dataDir = opts.DataDir(name)
	}
	// piku expands settings against its bootstrap environment; these are
	// hop3's equivalents of the parts an ENV file can mean.
	env := map[string]string{"APP": name}
	if dataDir != "" {
		env["DATA_ROOT"] = dataDir
		env["HOME"] = dataDir
	}
	if text, ok := gitShow(ctx, a.Repo, a.Branch, "ENV"); ok {
		vars, err := ParseENV(text, env)
		if err != nil {
			a.Notes = append(a.Notes, "the repository's ENV file: "+err.Error())
		}
		a.addVars(vars, "the repository's ENV")
	}
	if b, err := os.ReadFile(filepath.Join(root, "envs", name, "ENV")); err == nil {
		vars, err := ParseENV(string(b), env)
		if err != nil {
			a.Notes = append(a.Notes, "envs/"+name+"/ENV: "+err.Error())
		}
		a.addVars(vars, "envs/"+name+"/ENV")
	}
	a.translatePaths(root, dataDir)
	a.noteUnused()

	if b, err := os.ReadFile(filepath.Join(root, "envs", name, "SCALING")); err == nil {
		counts, problems := ParseScaling(string(b))
		a.Notes = append(a.Notes, problems...)
		a.setScale(pf, counts)
	}
	if d := filepath.Join(root, "data", name); hasFiles(d) {
		a.DataDir = d
		to := "hop3's DATA_DIR of the app"
		if dataDir != "" {
			to = dataDir
		}
		a.Notes = append(a.Notes, fmt.Sprintf("its data in %s is not copied: copy it to %s (cp -a %s/. %s/) and give it to the app's user (chown -R, to the uid `ps` shows)", d, to, d, to))
	}
	return a
}

func (a *App) addVars(vars []Var, from string) {
	for _, v := range vars {
		if why, ok := reserved[v.Key]; ok {
			a.Notes = append(a.Notes, fmt.Sprintf("%s from %s is not imported: %s", v.Key, from, why))
			continue
		}
		if !configKey(v.Key) {
			a.Notes = append(a.Notes, fmt.Sprintf("%q from %s is not a valid config name: not imported", v.Key, from))
			continue
		}
		if strings.ContainsAny(v.Value, "\x00") {
			a.Notes = append(a.Notes, fmt.Sprintf("%s from %s holds a NUL byte: not imported", v.Key, from))
			continue
		}
		a.Config[v.Key] = v.Value
	}
}

func configKey(k string) bool { return isIdent(k) }

// translatePaths rewrites absolute paths into piku's directories of the app
// in NGINX_STATIC_PATHS: hop3 serves relative directories from the live
// release and absolute ones only from the app's DATA_DIR.
func (a *App) translatePaths(pikuRoot, dataDir string) {
	spec, ok := a.Config["NGINX_STATIC_PATHS"]
	if !ok {
		return
	}
	appRoot := filepath.Join(pikuRoot, "apps", a.Name)
	pikuData := filepath.Join(pikuRoot, "data", a.Name)
	var items []string
	for _, item := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' }) {
		item = strings.TrimSpace(item)
		prefix, dir, found := strings.Cut(item, ":")
		if found && filepath.IsAbs(dir) {
			switch {
			case within(appRoot, dir):
				rel, _ := filepath.Rel(appRoot, dir)
				item = prefix + ":" + rel
			case within(pikuData, dir) && dataDir != "":
				rel, _ := filepath.Rel(pikuData, dir)
				item = prefix + ":" + filepath.Join(dataDir, rel)
			default:
				a.Notes = append(a.Notes, fmt.Sprintf("NGINX_STATIC_PATHS entry %s is outside the app and its data: hop3 will refuse it; move the files into the repository or DATA_DIR", item))
			}
		}
		items = append(items, item)
	}
	a.Config["NGINX_STATIC_PATHS"] = strings.Join(items, ",")
}

func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, filepath.Clean(p))
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (a *App) noteUnused() {
	var names []string
	for k := range a.Config {
		for _, u := range unused {
			if k == u || (strings.HasSuffix(u, "_") && strings.HasPrefix(k, u)) {
				names = append(names, k)
			}
		}
	}
	if len(names) > 0 {
		slices.Sort(names)
		a.Notes = append(a.Notes, "imported but not used by hop3: "+strings.Join(names, ", "))
	}
}

// setScale keeps the SCALING entries hop3 can apply and that change
// something. piku rewrites SCALING with every kind on each deploy, so a
// count of 1 usually means "never scaled": hop3's defaults (1 process; for
// wsgi and asgi, Granian's worker count) are kept then.
func (a *App) setScale(pf *procfile.Procfile, counts map[string]int) {
	for kind, n := range counts {
		e, ok := pf.Get(kind)
		if !ok {
			a.Notes = append(a.Notes, fmt.Sprintf("SCALING names %s, which the Procfile does not have: ignored", kind))
			continue
		}
		switch e.Kind {
		case procfile.KindWeb, procfile.KindWorker:
			if n != 1 {
				a.Scale[kind] = n
			}
		case procfile.KindWSGI, procfile.KindASGI:
			if n != 1 {
				a.Scale[kind] = n
				a.Notes = append(a.Notes, fmt.Sprintf("%s=%d: in hop3 this is the number of Granian workers of the one %s server", kind, n, kind))
			}
		default:
			if n == 0 {
				a.Notes = append(a.Notes, fmt.Sprintf("SCALING %s:0 can not be applied: hop3 scales only wsgi, asgi, web and worker processes", kind))
			}
		}
	}
}

// deployBranch is the branch hop3 deploys: main, else master, else the
// repository's HEAD, else the first branch.
func deployBranch(ctx context.Context, repo string, heads []string) string {
	for _, b := range []string{"main", "master"} {
		if slices.Contains(heads, b) {
			return b
		}
	}
	if out, err := gitLines(ctx, repo, "symbolic-ref", "--short", "HEAD"); err == nil && len(out) == 1 && slices.Contains(heads, out[0]) {
		return out[0]
	}
	return heads[0]
}

// readProcfile reads the Procfile hop3 would use (hop3/Procfile, else
// Procfile) from the branch, or says why the app can not run.
func readProcfile(ctx context.Context, repo, branch string) (*procfile.Procfile, error) {
	for _, name := range []string{"hop3/Procfile", "Procfile"} {
		text, ok := gitShow(ctx, repo, branch, name)
		if !ok {
			continue
		}
		pf, err := procfile.Parse(strings.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("its %s does not suit hop3: %v", name, err)
		}
		return pf, nil
	}
	if _, ok := gitShow(ctx, repo, branch, "index.html"); ok {
		return procfile.Parse(strings.NewReader("static: .\n"))
	}
	return nil, fmt.Errorf("branch %s has no Procfile", branch)
}

func gitShow(ctx context.Context, repo, branch, path string) (string, bool) {
	out, err := git(ctx, repo, "show", "refs/heads/"+branch+":"+path)
	if err != nil {
		return "", false
	}
	return out, true
}

func gitLines(ctx context.Context, repo string, args ...string) ([]string, error) {
	out, err := git(ctx, repo, args...)
	if err != nil {
		return nil, err
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

// git runs git on a bare repository and returns its stdout.
func git(ctx context.Context, repo string, args ...string) (string, error) {
	// piku's repositories belong to the piku user: say they are safe, or
	// git refuses to read another user's repository.
	argv := append([]string{"-c", "safe.directory=" + repo, "--git-dir", repo}, args...)
	cmd := exec.CommandContext(ctx, "git", argv...)
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		return "", errors.New(msg)
	}
	return stdout.String(), nil
}

func hasFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}
