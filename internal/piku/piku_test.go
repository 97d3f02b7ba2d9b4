package piku

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestParseENV(t *testing.T) {
	env := map[string]string{"APP": "shop", "DATA_ROOT": "/srv/data/shop"}
	vars, err := ParseENV(`# comment
GREETING = hello world
  # not a comment: piku only skips lines starting with '#', and this has no equals sign
`, env)
	if err == nil {
		t.Fatalf("a line without '=' was accepted: %v", vars)
	}
	if !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "piku ignored this whole file") {
		t.Errorf("error %q does not name the line and the consequence", err)
	}

	env = map[string]string{"APP": "shop", "DATA_ROOT": "/srv/data/shop"}
	vars, err = ParseENV(`# settings
GREETING = hello world

UPLOADS=$DATA_ROOT/uploads
NAME=${APP}-site
PRICE=$$5
KEEP=$UNKNOWN and ${ALSO_UNKNOWN} and ${bad-name} and $
EMPTY=
EQUALS=a=b=c
REF=$GREETING!
`, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{
		{"GREETING", "hello world"},
		{"UPLOADS", "/srv/data/shop/uploads"},
		{"NAME", "shop-site"},
		{"PRICE", "$5"},
		{"KEEP", "$UNKNOWN and ${ALSO_UNKNOWN} and ${bad-name} and $"},
		{"EMPTY", ""},
		{"EQUALS", "a=b=c"},
		{"REF", "hello world!"},
	}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("ParseENV:\n got %q\nwant %q", vars, want)
	}
	if env["NAME"] != "shop-site" {
		t.Errorf("env not extended: %v", env)
	}
}

func TestParseScaling(t *testing.T) {
	got, problems := ParseScaling("wsgi:1\n worker : 3 \n\n# c\nstatic:1\nbad line\nweb:-2\n")
	want := map[string]int{"wsgi": 1, "worker": 3, "static": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseScaling = %v, want %v", got, want)
	}
	if len(problems) != 2 {
		t.Errorf("problems = %q, want two", problems)
	}
}

func FuzzParseENV(f *testing.F) {
	f.Add("A=1\nB=$A${A}$$\n")
	f.Add("#x\nno equals")
	f.Add("X=${")
	f.Fuzz(func(t *testing.T, text string) {
		vars, err := ParseENV(text, map[string]string{"A": "a"})
		if err != nil {
			return
		}
		for _, v := range vars {
			if strings.ContainsAny(v.Key, "\n=") {
				t.Fatalf("key %q", v.Key)
			}
		}
	})
}

func FuzzParseScaling(f *testing.F) {
	f.Add("web:2\nworker:0\n")
	f.Fuzz(func(t *testing.T, text string) {
		counts, _ := ParseScaling(text)
		for k, n := range counts {
			if n < 0 || k == "" {
				t.Fatalf("%q:%d", k, n)
			}
		}
	})
}

func runGit(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// pikuApp makes PIKU_ROOT/repos/<name> with one commit of files on branch,
// as a push to piku would.
func pikuApp(t *testing.T, root, name, branch string, files map[string]string) {
	t.Helper()
	repo := filepath.Join(root, "repos", name)
	os.MkdirAll(repo, 0o755)
	runGit(t, repo, "init", "-q", "--bare", "-b", branch)
	work := t.TempDir()
	runGit(t, work, "init", "-q", "-b", branch)
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(work, p)), 0o755)
		os.WriteFile(filepath.Join(work, p), []byte(c), 0o644)
	}
	runGit(t, work, "add", "-A")
	runGit(t, work, "commit", "-q", "-m", "app")
	runGit(t, work, "push", "-q", repo, branch)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestScan(t *testing.T) {
	root := t.TempDir()
	pikuApp(t, root, "shop", "master", map[string]string{
		"Procfile": "wsgi: app:app\nworker: python worker.py\ncron: */5 * * * * echo hi\n",
		"ENV":      "NGINX_SERVER_NAME=shop.example.com\nGREETING=from the repo\nPORT=5000\nUWSGI_PROCESSES=4\n",
	})
	writeFile(t, filepath.Join(root, "envs", "shop", "ENV"),
		"GREETING=overridden\nSECRET=s3cr3t\nNGINX_STATIC_PATHS=/static:static,/media:"+filepath.Join(root, "apps", "shop", "public", "media")+
			",/up:"+filepath.Join(root, "data", "shop", "up")+",/etc:/etc\nUPLOADS=$DATA_ROOT/up\n")
	writeFile(t, filepath.Join(root, "envs", "shop", "SCALING"), "wsgi:1\nworker:2\ncron:1\nghost:3\n")
	writeFile(t, filepath.Join(root, "data", "shop", "up", "photo.jpg"), "jpeg")
	pikuApp(t, root, "blog", "trunk", map[string]string{"index.html": "<h1>blog</h1>", "ENV": "NGINX_SERVER_NAME=blog.example.com\n"})
	pikuApp(t, root, "Bad_Name", "master", map[string]string{"Procfile": "web: x\n"})
	pikuApp(t, root, "php", "master", map[string]string{"Procfile": "php: .\n"})
	os.MkdirAll(filepath.Join(root, "repos", "empty"), 0o755)
	runGit(t, filepath.Join(root, "repos", "empty"), "init", "-q", "--bare")
	writeFile(t, filepath.Join(root, "envs", "broken", "ENV"), "A=1\n")
	pikuApp(t, root, "broken", "main", map[string]string{"Procfile": "web: x\n"})
	writeFile(t, filepath.Join(root, "envs", "broken", "ENV"), "A=1\nnot a setting\n")

	apps, err := Scan(context.Background(), root, Options{DataDir: func(a string) string { return "/var/lib/hop3/data/" + a }})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]App{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	if len(apps) != 6 {
		t.Fatalf("%d apps: %v", len(apps), apps)
	}

	shop := byName["shop"]
	if shop.Skip != "" || shop.Branch != "master" {
		t.Fatalf("shop: %+v", shop)
	}
	wantConfig := map[string]string{
		"NGINX_SERVER_NAME":  "shop.example.com",
		"GREETING":           "overridden",
		"SECRET":             "s3cr3t",
		"UWSGI_PROCESSES":    "4",
		"UPLOADS":            "/var/lib/hop3/data/shop/up",
		"NGINX_STATIC_PATHS": "/static:static,/media:public/media,/up:/var/lib/hop3/data/shop/up,/etc:/etc",
	}
	if !reflect.DeepEqual(shop.Config, wantConfig) {
		t.Errorf("shop config:\n got %v\nwant %v", shop.Config, wantConfig)
	}
	if !reflect.DeepEqual(shop.Scale, map[string]int{"worker": 2}) {
		t.Errorf("shop scale = %v, want worker=2 only (wsgi:1 and cron:1 are defaults)", shop.Scale)
	}
	notes := strings.Join(shop.Notes, "\n")
	for _, want := range []string{"PORT from the repository's ENV is not imported", "UWSGI_PROCESSES", "ghost", "/etc:/etc", "is not copied", "cp -a"} {
		if !strings.Contains(notes, want) {
			t.Errorf("shop notes lack %q:\n%s", want, notes)
		}
	}

	blog := byName["blog"]
	if blog.Skip != "" || blog.Branch != "trunk" || blog.targetBranch() != "main" || blog.Config["NGINX_SERVER_NAME"] != "blog.example.com" {
		t.Errorf("blog: %+v", blog)
	}
	for name, want := range map[string]string{"Bad_Name": "invalid app name", "php": "does not suit hop3", "empty": "no branch"} {
		if !strings.Contains(byName[name].Skip, want) {
			t.Errorf("%s: skip %q, want it to say %q", name, byName[name].Skip, want)
		}
	}
	broken := byName["broken"]
	if broken.Skip != "" || len(broken.Config) != 0 || !strings.Contains(strings.Join(broken.Notes, " "), "line 2") {
		t.Errorf("broken ENV: piku ignored the whole file, so must the import: %+v", broken)
	}

	if _, err := Scan(context.Background(), root, Options{Only: []string{"nope"}}); err == nil {
		t.Error("an unknown app in Only was accepted")
	}
	if _, err := Scan(context.Background(), t.TempDir(), Options{}); err == nil {
		t.Error("a directory without repos/ was accepted")
	}
}

// fakeDaemon stands in for hop3: it records commands and, for create,
// makes the bare repository as hop3 does.
type fakeDaemon struct {
	root     string
	mu       sync.Mutex
	calls    []string
	existing []string
	failOn   string
}

func (d *fakeDaemon) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, strings.Join(args, " "))
	switch args[0] {
	case "apps":
		var rows []map[string]string
		for _, n := range d.existing {
			rows = append(rows, map[string]string{"name": n})
		}
		json.NewEncoder(stdout).Encode(rows)
	case "create":
		repo := filepath.Join(d.root, "repos", args[1]+".git")
		os.MkdirAll(repo, 0o755)
		if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", repo).CombinedOutput(); err != nil {
			return 1, fmt.Errorf("%v: %s", err, out)
		}
	}
	if args[0] == d.failOn {
		fmt.Fprintln(stderr, " !     it failed")
		return 1, nil
	}
	return 0, nil
}

func TestImport(t *testing.T) {
	piku := t.TempDir()
	pikuApp(t, piku, "shop", "master", map[string]string{"Procfile": "web: python -m http.server $PORT\nworker: sleep 1000\n"})
	writeFile(t, filepath.Join(piku, "envs", "shop", "ENV"), "B=2 words\nA=1\n")
	writeFile(t, filepath.Join(piku, "envs", "shop", "SCALING"), "worker:3\n")
	pikuApp(t, piku, "blog", "trunk", map[string]string{"index.html": "hi"})
	pikuApp(t, piku, "taken", "main", map[string]string{"index.html": "hi"})
	apps, err := Scan(context.Background(), piku, Options{})
	if err != nil {
		t.Fatal(err)
	}

	hop := t.TempDir()
	d := &fakeDaemon{root: hop, existing: []string{"taken"}}
	var stderr bytes.Buffer
	dry := &Importer{Daemon: d, Root: hop, Stdout: io.Discard, Stderr: &stderr, DryRun: true}
	outcomes := dry.Import(context.Background(), apps)
	if got := strings.Join(d.calls, "; "); got != "apps --json" {
		t.Errorf("a dry run ran %q", got)
	}
	if entries, _ := os.ReadDir(hop); len(entries) != 0 {
		t.Errorf("a dry run wrote into hop3's root: %v", entries)
	}
	plan := stderr.String()
	for _, want := range []string{"Would import shop", "hop3 create shop", "hop3 config:set --no-restart shop A B", "hop3 deploy shop",
		"hop3 ps:scale shop worker=3", "with trunk also as main", "Skipping taken"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "2 words") {
		t.Errorf("the plan shows a config value:\n%s", plan)
	}
	if fmt.Sprint(outcomes) != "[{blog planned } {shop planned } {taken skipped hop3 already has an app of that name}]" {
		t.Errorf("dry-run outcomes: %v", outcomes)
	}

	d.calls = nil
	stderr.Reset()
	im := &Importer{Daemon: d, Root: hop, Stdout: io.Discard, Stderr: &stderr}
	outcomes = im.Import(context.Background(), apps)
	want := []string{
		"apps --json",
		"create blog", "deploy blog",
		"create shop", "config:set --no-restart shop A=1 B=2 words", "deploy shop", "ps:scale shop worker=3",
	}
	if !reflect.DeepEqual(d.calls, want) {
		t.Errorf("calls:\n got %q\nwant %q", d.calls, want)
	}
	if fmt.Sprint(outcomes) != "[{blog imported } {shop imported } {taken skipped hop3 already has an app of that name}]" {
		t.Errorf("outcomes: %v\n%s", outcomes, stderr.String())
	}
	// The repositories hold piku's commits; blog's trunk is also main, and
	// HEAD names the branch deployed.
	for app, branch := range map[string]string{"shop": "master", "blog": "main"} {
		repo := filepath.Join(hop, "repos", app+".git")
		src := filepath.Join(piku, "repos", app)
		srcBranch := map[string]string{"shop": "master", "blog": "trunk"}[app]
		got, err := git(context.Background(), repo, "rev-parse", "refs/heads/"+branch)
		if err != nil {
			t.Fatalf("%s: %v", app, err)
		}
		wantRev, _ := git(context.Background(), src, "rev-parse", "refs/heads/"+srcBranch)
		if got != wantRev {
			t.Errorf("%s %s = %s, want %s", app, branch, got, wantRev)
		}
		head, _ := git(context.Background(), repo, "symbolic-ref", "HEAD")
		if strings.TrimSpace(head) != "refs/heads/"+branch {
			t.Errorf("%s HEAD = %s", app, head)
		}
	}

	// A failing deploy stops that app, not the next, and is reported.
	hop2 := t.TempDir()
	d2 := &fakeDaemon{root: hop2, failOn: "deploy"}
	stderr.Reset()
	outcomes = (&Importer{Daemon: d2, Root: hop2, Stdout: io.Discard, Stderr: &stderr}).Import(context.Background(), apps)
	failed := 0
	for _, o := range outcomes {
		if o.Status == "failed" {
			failed++
			if !strings.Contains(o.Reason, "deploy failed") {
				t.Errorf("reason %q", o.Reason)
			}
		}
	}
	if failed != 3 {
		t.Errorf("outcomes %v, want 3 failed deploys", outcomes)
	}
	for _, c := range d2.calls {
		if strings.HasPrefix(c, "ps:scale") {
			t.Errorf("scaled after a failed deploy: %v", d2.calls)
		}
	}
}
