// Package piku moves apps from a piku server into hop3: it reads piku's
// layout (PIKU_ROOT/repos/<app> bare repositories, PIKU_ROOT/envs/<app>/ENV
// config and SCALING, data/<app>, uwsgi-enabled) and piku's
// authorized_keys, checks everything the import needs, and, through the
// running hop3 daemon, creates each app, copies its repository, config and
// data (with the app stopped in piku), deploys it and sets its scale. It
// also owns the syntax of piku's ENV file, which hop3 reads from a
// repository at every deploy.
package piku

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"hop3/bytesize"
	"hop3/internal/appname"
	"hop3/internal/hostclaim"
	"hop3/procfile"
)

// App is what the import will do for one piku app.
type App struct {
	Name     string   // the app's name in hop3 (piku's, or its --rename)
	PikuName string   // the app's name in piku
	Repo     string   // the piku bare repository
	Branch   string   // the branch deployed
	Heads    []string // every branch of the repository
	// Config is the app's config in hop3: piku's config:set overrides
	// (envs/<app>/ENV), expanded as piku did. The repository's ENV file is
	// not copied: hop3 reads it from the repository at every deploy, under
	// config, as piku did.
	Config map[string]string
	// Scale holds the process counts to set after the first deploy: the
	// SCALING entries that differ from hop3's defaults.
	Scale map[string]int
	// Hosts are the names the app answers to in piku (NGINX_SERVER_NAME or
	// HOST_NAME, from the repository's ENV and config:set).
	Hosts []string
	// DataDir is piku's data directory of the app, when it holds files.
	DataDir   string
	RepoBytes int64    // size of the repository
	DataBytes int64    // size of DataDir
	Notes     []string // what the operator should know
	// Problems say why the app can not be imported as it stands; an app
	// with one is left alone. The dry run finds them all.
	Problems []string
}

// Options tune a scan.
type Options struct {
	// Only limits the scan to these apps (piku's names); empty means every app.
	Only []string
	// Rename gives apps a hop3 name: piku name -> hop3 name.
	Rename map[string]string
	// DataDir is the app's DATA_DIR in hop3, used to translate piku's
	// DATA_ROOT in config values and static paths.
	DataDir func(app string) string
	// Data says the apps' data will be copied: its readability is checked.
	Data bool
}

// keys hop3 sets itself for every process: a config var of that name is
// refused, so piku's is dropped.
var reserved = map[string]string{
	"APP":          "hop3 sets it",
	"DATA_DIR":     "hop3 sets it",
	"DATA_ROOT":    "hop3 sets it to the app's DATA_DIR",
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
	for from := range opts.Rename {
		if !slices.ContainsFunc(entries, func(e os.DirEntry) bool { return e.Name() == from }) {
			return nil, fmt.Errorf("--rename %s=...: no piku app %s in %s", from, from, reposDir)
		}
	}
	var apps []App
	for _, e := range entries {
		if !e.IsDir() || (len(opts.Only) > 0 && !slices.Contains(opts.Only, e.Name())) {
			continue
		}
		apps = append(apps, scanApp(ctx, root, e.Name(), opts))
	}
	for _, name := range opts.Only {
		if !slices.ContainsFunc(apps, func(a App) bool { return a.PikuName == name }) {
			return nil, fmt.Errorf("no piku app %s in %s", name, reposDir)
		}
	}
	return apps, nil
}

// suggestName turns a name hop3 refuses into one it may accept.
func suggestName(name string) string {
	s := strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, name), "-0123456789")
	if s == "" {
		s = "app"
	}
	if len(s) > appname.MaxLen {
		s = strings.TrimRight(s[:appname.MaxLen], "-")
	}
	return s
}

func scanApp(ctx context.Context, root, pikuName string, opts Options) App {
	name := pikuName
	if to, ok := opts.Rename[pikuName]; ok {
		name = to
	}
	a := App{Name: name, PikuName: pikuName, Repo: filepath.Join(root, "repos", pikuName), Config: map[string]string{}, Scale: map[string]int{}}
	if err := appname.Validate(name); err != nil {
		hint := fmt.Sprintf("import it as --rename %s=%s", pikuName, suggestName(pikuName))
		if name != pikuName {
			hint = "choose another --rename"
		}
		a.Problems = append(a.Problems, fmt.Sprintf("%v: %s", err, hint))
	}
	size, err := readable(a.Repo)
	a.RepoBytes = size
	if err != nil {
		a.Problems = append(a.Problems, "its repository can not be read: "+err.Error())
		return a
	}
	heads, err := gitLines(ctx, a.Repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
	if err != nil {
		a.Problems = append(a.Problems, "not a git repository: "+err.Error())
		return a
	}
	if len(heads) == 0 {
		a.Problems = append(a.Problems, "its repository has no branch: nothing was ever pushed")
		return a
	}
	// The copy runs git upload-pack on the repository, as the fetch will:
	// check that path, then that every object the branches need is there.
	if err := checkUploadPack(ctx, a.Repo); err != nil {
		a.Problems = append(a.Problems, "git can not copy its repository: "+err.Error())
		return a
	}
	if _, err := git(ctx, a.Repo, "fsck", "--connectivity-only", "--no-dangling", "--no-progress"); err != nil {
		a.Problems = append(a.Problems, "its repository is damaged (git fsck): "+err.Error())
		return a
	}
	a.Heads = heads
	a.Branch = deployBranch(ctx, a.Repo, heads)

	pf, err := readProcfile(ctx, a.Repo, a.Branch)
	if err != nil {
		a.Problems = append(a.Problems, err.Error())
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
		env["DATA_DIR"] = dataDir
		env["HOME"] = dataDir
	}
	live := map[string]string{}
	if text, ok := gitShow(ctx, a.Repo, a.Branch, "ENV"); ok {
		vars, err := ParseENV(text, maps.Clone(env))
		for _, v := range vars {
			if err == nil {
				err = CheckVar(v)
			}
			live[v.Key] = v.Value
		}
		if err != nil {
			a.Problems = append(a.Problems, fmt.Sprintf("the repository's ENV: %v; hop3 refuses such a file at every deploy: fix it in the repository and push it to piku, then import", err))
		}
		if strings.Contains(text, filepath.Join(root, "data")) || strings.Contains(text, filepath.Join(root, "apps")) {
			a.Notes = append(a.Notes, "the repository's ENV names piku's directories: hop3 reads it as it is at every deploy; write $DATA_ROOT instead")
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "envs", pikuName, "ENV")); err == nil {
		vars, err := ParseENV(string(b), env)
		if err != nil {
			a.Notes = append(a.Notes, "envs/"+pikuName+"/ENV: "+err.Error())
		}
		a.addVars(vars, "envs/"+pikuName+"/ENV")
	} else if !errors.Is(err, os.ErrNotExist) {
		a.Problems = append(a.Problems, "its config can not be read: "+err.Error())
	}
	a.translatePaths(root, dataDir)
	a.noteUnused()
	maps.Copy(live, a.Config)
	_, a.Hosts = hostclaim.FromConfig(live)
	if len(a.Hosts) > 0 {
		for _, h := range a.Hosts {
			if _, err := hostclaim.Normalize(h); err != nil {
				a.Problems = append(a.Problems, err.Error())
			}
		}
	}

	if _, ok := a.Config["LOG_ROOT"]; !ok {
		// piku sets LOG_ROOT (its logs directory); hop3 writes the
		// processes' output itself, where apps may not.
		if files, err := gitLines(ctx, a.Repo, "grep", "-l", "-I", "-F", "LOG_ROOT", "refs/heads/"+a.Branch, "--"); err == nil && len(files) > 0 {
			for i, f := range files {
				files[i] = strings.TrimPrefix(f, "refs/heads/"+a.Branch+":")
			}
			a.Notes = append(a.Notes, fmt.Sprintf("%s name LOG_ROOT, which hop3 does not set: the processes' output is in `logs %s`; for files of its own, config:set LOG_ROOT to a directory under its DATA_DIR",
				strings.Join(files, ", "), name))
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "envs", pikuName, "SCALING")); err == nil {
		counts, problems := ParseScaling(string(b))
		a.Notes = append(a.Notes, problems...)
		a.setScale(pf, counts)
	}
	if d := filepath.Join(root, "data", pikuName); hasFiles(d) {
		a.DataDir = d
		size, err := readable(d)
		a.DataBytes = size
		switch {
		case opts.Data && err != nil:
			a.Problems = append(a.Problems, "its data can not be read: "+err.Error())
		case !opts.Data:
			a.Notes = append(a.Notes, fmt.Sprintf("its data in %s (%s) is not copied: run the import with --data", d, bytesize.Human(size)))
		}
	}
	return a
}

// readable walks dir, opening every file for reading as the copy will,
// and returns the bytes it holds.
func readable(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		f.Close()
		if fi, err := d.Info(); err == nil {
			total += fi.Size()
		}
		return nil
	})
	return total, err
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

// readProcfile reads the Procfile hop3 would use (procfile.Where) from the
// branch, or says why the app can not run.
func readProcfile(ctx context.Context, repo, branch string) (*procfile.Procfile, error) {
	texts := map[string]string{}
	name, static := procfile.Where(func(name string) bool {
		text, ok := gitShow(ctx, repo, branch, name)
		texts[name] = text
		return ok
	})
	switch {
	case name != "":
		pf, err := procfile.Parse(strings.NewReader(texts[name]))
		if err != nil {
			return nil, fmt.Errorf("its %s does not suit hop3: %v", name, err)
		}
		return pf, nil
	case static:
		return procfile.Parse(strings.NewReader(procfile.StaticSite))
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
	return gitAt(ctx, "", append([]string{"-c", "safe.directory=" + repo, "--git-dir", repo}, args...)...)
}

// gitAt runs git with args, in dir when it is not empty.
func gitAt(ctx context.Context, dir string, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", argv...)
	cmd.Dir = dir
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

// uploadPack is the upload-pack command git runs for a fetch from the
// local repository src. git does not pass -c safe.directory on to the
// upload-pack it starts, so a repository owned by another user (piku's,
// read by root) is refused unless the setting is given to upload-pack
// itself.
func uploadPack(src string) string {
	return "git -c safe.directory=" + shellQuote(src) + " upload-pack"
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// checkUploadPack runs upload-pack on repo as the copy does, listing its
// refs.
func checkUploadPack(ctx context.Context, repo string) error {
	src, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	_, err = gitAt(ctx, "", "ls-remote", "--heads", "--upload-pack="+uploadPack(src), src)
	return err
}

func hasFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0
}
