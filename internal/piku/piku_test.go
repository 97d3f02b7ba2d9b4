package piku

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
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
		"audit.py": "import os\nLOG = os.path.join(os.environ['LOG_ROOT'], 'audit.log')\n",
	})
	writeFile(t, filepath.Join(root, "envs", "shop", "ENV"),
		"GREETING=overridden\nSECRET=s3cr3t\nPORT=6000\nNGINX_STATIC_PATHS=/static:static,/media:"+filepath.Join(root, "apps", "shop", "public", "media")+
			",/up:"+filepath.Join(root, "data", "shop", "up")+",/etc:/etc\nUPLOADS=$DATA_ROOT/up\nHOST_NAME=shop.example.com, www.shop.example.com\n")
	writeFile(t, filepath.Join(root, "envs", "shop", "SCALING"), "wsgi:1\nworker:2\ncron:1\nghost:3\n")
	writeFile(t, filepath.Join(root, "data", "shop", "up", "photo.jpg"), "jpeg")
	pikuApp(t, root, "blog", "trunk", map[string]string{"index.html": "<h1>blog</h1>", "ENV": "NGINX_SERVER_NAME=blog.example.com\n"})
	pikuApp(t, root, "Bad_Name", "master", map[string]string{"Procfile": "web: x\n"})
	pikuApp(t, root, "java", "master", map[string]string{"Procfile": "jwsgi: app.war\n"})
	os.MkdirAll(filepath.Join(root, "repos", "empty"), 0o755)
	runGit(t, filepath.Join(root, "repos", "empty"), "init", "-q", "--bare")
	pikuApp(t, root, "broken", "main", map[string]string{"Procfile": "web: x\n"})
	writeFile(t, filepath.Join(root, "envs", "broken", "ENV"), "A=1\nnot a setting\n")
	pikuApp(t, root, "badenv", "main", map[string]string{"Procfile": "web: x\n", "ENV": "A=1\nnot a setting\n"})
	pikuApp(t, root, "badhost", "main", map[string]string{"Procfile": "web: x\n", "ENV": "NGINX_SERVER_NAME=ok.example.com bad_host!\n"})
	pikuApp(t, root, "damaged", "main", map[string]string{"Procfile": "web: x\n", "big.txt": "a blob the import needs\n"})
	removeBlob(t, filepath.Join(root, "repos", "damaged"), "big.txt")

	apps, err := Scan(context.Background(), root, Options{DataDir: func(a string) string { return "/var/lib/hop3/data/" + a }})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]App{}
	for _, a := range apps {
		byName[a.Name] = a
	}
	if len(apps) != 9 {
		t.Fatalf("%d apps: %v", len(apps), apps)
	}

	shop := byName["shop"]
	if len(shop.Problems) != 0 || shop.Branch != "master" {
		t.Fatalf("shop: %+v", shop)
	}
	// Only config:set values become config; the repository's ENV is read
	// from the repository at each deploy.
	wantConfig := map[string]string{
		"GREETING":           "overridden",
		"SECRET":             "s3cr3t",
		"UPLOADS":            "/var/lib/hop3/data/shop/up",
		"NGINX_STATIC_PATHS": "/static:static,/media:public/media,/up:/var/lib/hop3/data/shop/up,/etc:/etc",
		"HOST_NAME":          "shop.example.com, www.shop.example.com",
	}
	if !reflect.DeepEqual(shop.Config, wantConfig) {
		t.Errorf("shop config:\n got %v\nwant %v", shop.Config, wantConfig)
	}
	if !reflect.DeepEqual(shop.Hosts, []string{"shop.example.com", "www.shop.example.com"}) {
		t.Errorf("shop hosts = %v (HOST_NAME wins over NGINX_SERVER_NAME, as in hop3's routes)", shop.Hosts)
	}
	if !reflect.DeepEqual(shop.Scale, map[string]int{"worker": 2}) {
		t.Errorf("shop scale = %v, want worker=2 only (wsgi:1 and cron:1 are defaults)", shop.Scale)
	}
	if shop.DataDir != filepath.Join(root, "data", "shop") || shop.DataBytes != 4 || shop.RepoBytes == 0 {
		t.Errorf("shop data %q %d bytes, repo %d bytes", shop.DataDir, shop.DataBytes, shop.RepoBytes)
	}
	notes := strings.Join(shop.Notes, "\n")
	for _, want := range []string{"PORT from envs/shop/ENV is not imported", "ghost", "/etc:/etc", "is not copied", "--data",
		"audit.py name LOG_ROOT, which hop3 does not set"} {
		if !strings.Contains(notes, want) {
			t.Errorf("shop notes lack %q:\n%s", want, notes)
		}
	}

	blog := byName["blog"]
	if len(blog.Problems) != 0 || blog.Branch != "trunk" || blog.targetBranch() != "main" || len(blog.Config) != 0 ||
		!reflect.DeepEqual(blog.Hosts, []string{"blog.example.com"}) {
		t.Errorf("blog: %+v", blog)
	}
	for name, want := range map[string]string{
		"Bad_Name": "--rename Bad_Name=bad-name", "java": "does not suit hop3", "empty": "no branch",
		"badenv": "line 2", "badhost": "bad_host!", "damaged": "damaged",
	} {
		if !strings.Contains(strings.Join(byName[name].Problems, "; "), want) {
			t.Errorf("%s: problems %q, want one saying %q", name, byName[name].Problems, want)
		}
	}
	broken := byName["broken"]
	if len(broken.Problems) != 0 || len(broken.Config) != 0 || !strings.Contains(strings.Join(broken.Notes, " "), "line 2") {
		t.Errorf("broken config: piku ignored the whole file, so must the import: %+v", broken)
	}

	renamed, err := Scan(context.Background(), root, Options{Only: []string{"Bad_Name"}, Rename: map[string]string{"Bad_Name": "bad-name"}})
	if err != nil || len(renamed) != 1 || renamed[0].Name != "bad-name" || renamed[0].PikuName != "Bad_Name" || len(renamed[0].Problems) != 0 {
		t.Errorf("rename: %+v, %v", renamed, err)
	}
	if _, err := Scan(context.Background(), root, Options{Rename: map[string]string{"nope": "x"}}); err == nil {
		t.Error("a rename of an unknown app was accepted")
	}
	if _, err := Scan(context.Background(), root, Options{Only: []string{"nope"}}); err == nil {
		t.Error("an unknown app in Only was accepted")
	}
	if _, err := Scan(context.Background(), t.TempDir(), Options{}); err == nil {
		t.Error("a directory without repos/ was accepted")
	}
}

// removeBlob deletes the loose object of path in a bare repository's
// newest commit, as a damaged disk would.
func removeBlob(t *testing.T, repo, path string) {
	t.Helper()
	id, err := git(context.Background(), repo, "rev-parse", "HEAD:"+path)
	if err != nil {
		t.Fatal(err)
	}
	id = strings.TrimSpace(id)
	if err := os.Remove(filepath.Join(repo, "objects", id[:2], id[2:])); err != nil {
		t.Fatal(err)
	}
}

func TestSuggestName(t *testing.T) {
	for in, want := range map[string]string{"my_app": "my-app", "Shop": "shop", "9lives": "lives", "__": "app", "a.b": "a-b"} {
		if got := suggestName(in); got != want {
			t.Errorf("suggestName(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeDaemon stands in for hop3: it records commands and, for create,
// makes the bare repository as hop3 does.
type fakeDaemon struct {
	root     string
	mu       sync.Mutex
	calls    []string
	existing map[string]int // app -> live release
	hosts    map[string][]string
	failOn   string
}

func (d *fakeDaemon) Run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, strings.Join(args, " "))
	if d.existing == nil {
		d.existing = map[string]int{}
	}
	switch args[0] {
	case "apps":
		rows := []map[string]any{}
		for _, n := range slices.Sorted(maps.Keys(d.existing)) {
			rows = append(rows, map[string]any{"name": n, "release": d.existing[n]})
		}
		json.NewEncoder(stdout).Encode(rows)
	case "domains":
		json.NewEncoder(stdout).Encode(map[string]any{"default": args[1] + ".example.net", "domains": []string{}, "from_config": d.hosts[args[1]]})
	case "create":
		repo := filepath.Join(d.root, "repos", args[1]+".git")
		os.MkdirAll(repo, 0o755)
		// hop3 makes DATA_DIR the app's alone.
		os.MkdirAll(filepath.Join(d.root, "data", args[1]), 0o700)
		if out, err := exec.Command("git", "init", "-q", "--bare", "-b", "main", repo).CombinedOutput(); err != nil {
			return 1, fmt.Errorf("%v: %s", err, out)
		}
		d.existing[args[1]] = 0
	case "destroy":
		delete(d.existing, args[1])
		os.RemoveAll(filepath.Join(d.root, "repos", args[1]+".git"))
		if slices.Contains(args, "--purge") {
			os.RemoveAll(filepath.Join(d.root, "data", args[1]))
		}
	}
	if args[0] == d.failOn {
		fmt.Fprint(stderr, "-----> Starting processes\n !     it failed\n       worker.1: KeyError: 'X'\n-----> after\n")
		return 1, nil
	}
	if args[0] == "deploy" {
		d.existing[args[1]] = 1
	}
	return 0, nil
}

func (d *fakeDaemon) reset() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	calls := d.calls
	d.calls = nil
	return calls
}

func TestImport(t *testing.T) {
	piku := t.TempDir()
	pikuApp(t, piku, "shop", "master", map[string]string{"Procfile": "web: python -m http.server $PORT\nworker: sleep 1000\n"})
	writeFile(t, filepath.Join(piku, "envs", "shop", "ENV"), "B=2 words\nA=1\n")
	writeFile(t, filepath.Join(piku, "envs", "shop", "SCALING"), "worker:3\n")
	pikuApp(t, piku, "blog", "trunk", map[string]string{"index.html": "hi", "ENV": "NGINX_SERVER_NAME=blog.example.com\n"})
	pikuApp(t, piku, "taken", "main", map[string]string{"index.html": "hi"})
	apps, err := Scan(context.Background(), piku, Options{})
	if err != nil {
		t.Fatal(err)
	}

	hop := t.TempDir()
	d := &fakeDaemon{root: hop, existing: map[string]int{"taken": 3}}
	var stderr bytes.Buffer
	dry := &Importer{Daemon: d, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr, DryRun: true}
	outcomes := dry.Import(context.Background(), apps)
	if got := strings.Join(d.reset(), "; "); got != "apps --json; domains taken --json" {
		t.Errorf("a dry run ran %q", got)
	}
	if entries, _ := os.ReadDir(hop); len(entries) != 0 {
		t.Errorf("a dry run wrote into hop3's root: %v", entries)
	}
	plan := stderr.String()
	for _, want := range []string{"Would import shop", "hop3 create shop", "hop3 config:set --no-restart shop A B", "hop3 deploy shop",
		"hop3 ps:scale shop worker=3", "with trunk also as main", "Leaving taken alone", "serves blog.example.com"} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if strings.Contains(plan, "2 words") {
		t.Errorf("the plan shows a config value:\n%s", plan)
	}
	if got := statuses(outcomes); got != "blog:planned shop:planned taken:unchanged" {
		t.Errorf("dry-run outcomes: %v", outcomes)
	}

	stderr.Reset()
	im := &Importer{Daemon: d, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr}
	outcomes = im.Import(context.Background(), apps)
	want := []string{
		"apps --json", "domains taken --json",
		"create blog", "deploy blog",
		"create shop", "config:set --no-restart shop A=1 B=2 words", "deploy shop", "ps:scale shop worker=3",
	}
	if got := d.reset(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls:\n got %q\nwant %q", got, want)
	}
	if got := statuses(outcomes); got != "blog:imported shop:imported taken:unchanged" {
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

	// Again: everything is there, nothing is run.
	outcomes = im.Import(context.Background(), apps)
	if got := statuses(outcomes); got != "blog:unchanged shop:unchanged taken:unchanged" {
		t.Errorf("second import: %v", outcomes)
	}
	for _, c := range d.reset() {
		if !strings.HasPrefix(c, "apps ") && !strings.HasPrefix(c, "domains ") {
			t.Errorf("a second import ran %q", c)
		}
	}
}

func statuses(outcomes []Outcome) string {
	var s []string
	for _, o := range outcomes {
		s = append(s, o.App+":"+string(o.Status))
	}
	return strings.Join(s, " ")
}

// A failing deploy undoes that app, not the next; an app hop3 has but
// never deployed (an interrupted import) is resumed.
func TestImportFailureAndResume(t *testing.T) {
	piku := t.TempDir()
	pikuApp(t, piku, "shop", "main", map[string]string{"Procfile": "worker: sleep 1000\n"})
	pikuApp(t, piku, "blog", "main", map[string]string{"index.html": "hi"})
	apps, err := Scan(context.Background(), piku, Options{})
	if err != nil {
		t.Fatal(err)
	}
	hop := t.TempDir()
	d := &fakeDaemon{root: hop, failOn: "deploy"}
	var stderr bytes.Buffer
	outcomes := (&Importer{Daemon: d, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr}).Import(context.Background(), apps)
	for _, o := range outcomes {
		// The failure line and the lines detailing it; what was undone.
		if o.Status != Failed || o.Reason != "deploy failed: it failed\nworker.1: KeyError: 'X'" ||
			o.Undone != "it was removed from hop3: run the import again once fixed" {
			t.Errorf("outcome %+v", o)
		}
	}
	calls := d.reset()
	if !slices.Contains(calls, "destroy blog --confirm blog --purge") || !slices.Contains(calls, "destroy shop --confirm shop --purge") {
		t.Errorf("failed apps were not removed: %q", calls)
	}
	if len(d.existing) != 0 {
		t.Errorf("half-apps left: %v", d.existing)
	}

	// An interrupted run left blog created but not deployed: it is resumed.
	d.failOn = ""
	d.existing = map[string]int{"blog": 0}
	os.MkdirAll(filepath.Join(hop, "repos", "blog.git"), 0o755)
	runGit(t, hop, "init", "-q", "--bare", filepath.Join(hop, "repos", "blog.git"))
	outcomes = (&Importer{Daemon: d, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr}).Import(context.Background(), apps)
	if got := statuses(outcomes); got != "blog:imported shop:imported" || !strings.Contains(outcomes[0].Reason, "resumed") {
		t.Errorf("outcomes %+v", outcomes)
	}
	if calls := d.reset(); slices.Contains(calls, "create blog") || !slices.Contains(calls, "deploy blog") {
		t.Errorf("resume: %q", calls)
	}
}

// check finds what only the whole plan shows.
func TestImportChecks(t *testing.T) {
	piku := t.TempDir()
	pikuApp(t, piku, "one", "main", map[string]string{"index.html": "1", "ENV": "NGINX_SERVER_NAME=shared.example.com\n"})
	pikuApp(t, piku, "two", "main", map[string]string{"index.html": "2", "ENV": "NGINX_SERVER_NAME=shared.example.com\n"})
	pikuApp(t, piku, "three", "main", map[string]string{"index.html": "3", "ENV": "NGINX_SERVER_NAME=owned.example.com\n"})
	pikuApp(t, piku, "four", "main", map[string]string{"index.html": "4"})
	// <app>.<domain> is that app's, whether it exists or not.
	pikuApp(t, piku, "five", "main", map[string]string{"index.html": "5", "ENV": "NGINX_SERVER_NAME=one.example.net\n"})
	pikuApp(t, piku, "x_four", "main", map[string]string{"index.html": "4"})
	apps, err := Scan(context.Background(), piku, Options{Rename: map[string]string{"x_four": "four"}})
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDaemon{root: t.TempDir(), existing: map[string]int{"other": 1}, hosts: map[string][]string{"other": {"owned.example.com"}}}
	var stderr bytes.Buffer
	outcomes := (&Importer{Daemon: d, Root: d.root, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr, DryRun: true}).Import(context.Background(), apps)
	got := map[string]Outcome{}
	for _, o := range outcomes {
		got[o.App+"/"+string(o.Status)] = o
	}
	for key, want := range map[string]string{
		"two/not imported":   "host shared.example.com belongs to app one",
		"three/not imported": "host owned.example.com belongs to app other",
		"five/not imported":  "host one.example.net is reserved for an app named one",
		"four/not imported":  "piku's four would also be named four",
	} {
		if !strings.Contains(got[key].Reason, want) {
			t.Errorf("%s: %q, want %q\n%s", key, got[key].Reason, want, stderr.String())
		}
	}
	if _, ok := got["one/planned"]; !ok {
		t.Errorf("one: %v", outcomes)
	}
}

// With Data, piku's app is stopped (its uWSGI vassal configs renamed, its
// processes gone) and its data copied; a failed deploy starts it again.
func TestImportData(t *testing.T) {
	piku := t.TempDir()
	pikuApp(t, piku, "shop", "main", map[string]string{"Procfile": "worker: sleep 1000\n"})
	writeFile(t, filepath.Join(piku, "data", "shop", "db", "orders.txt"), "order 1\n")
	writeFile(t, filepath.Join(piku, "apps", "shop", "Procfile"), "worker: sleep 1000\n")
	ini := filepath.Join(piku, "uwsgi-enabled", "shop_worker.1.ini")
	writeFile(t, ini, "[uwsgi]\n")
	writeFile(t, filepath.Join(piku, "uwsgi-enabled", "shopping_web.1.ini"), "[uwsgi]\n")
	// piku's emperor stands in: a process working in the app's directory
	// that exits once its config is gone.
	vassal := exec.Command("sh", "-c", `while [ -e "$1" ]; do sleep 0.05; done`, "sh", ini)
	vassal.Dir = filepath.Join(piku, "apps", "shop")
	if err := vassal.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- vassal.Wait() }()
	t.Cleanup(func() { vassal.Process.Kill() })

	apps, err := Scan(context.Background(), piku, Options{Data: true})
	if err != nil {
		t.Fatal(err)
	}
	hop := t.TempDir()
	d := &fakeDaemon{root: hop, failOn: "deploy"}
	var stderr bytes.Buffer
	im := &Importer{Daemon: d, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr, Data: true, StopWait: 10 * time.Second}
	outcomes := im.Import(context.Background(), apps)
	if outcomes[0].Status != Failed {
		t.Fatalf("outcome %+v", outcomes)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("piku's process still runs")
	}
	if _, err := os.Stat(ini); err != nil {
		t.Errorf("piku's app was not started again after the failure: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(hop, "data", "shop")); !os.IsNotExist(err) {
		t.Errorf("the failed import left its data copy: %v", err)
	}

	d.failOn = ""
	stderr.Reset()
	outcomes = im.Import(context.Background(), apps)
	if outcomes[0].Status != Imported {
		t.Fatalf("outcome %+v\n%s", outcomes, stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(hop, "data", "shop", "db", "orders.txt")); err != nil || string(b) != "order 1\n" {
		t.Errorf("data: %q, %v", b, err)
	}
	// The copy keeps the owner and mode hop3 gave DATA_DIR, not piku's.
	if fi, err := os.Stat(filepath.Join(hop, "data", "shop")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("DATA_DIR mode after the copy: %v, %v", fi.Mode(), err)
	}
	if uid, _, err := OwnerOf(filepath.Join(hop, "data", "shop", "db", "orders.txt")); err != nil || uid != os.Getuid() {
		t.Errorf("copied data owned by %d, want %d: %v", uid, os.Getuid(), err)
	}
	if _, err := os.Stat(ini + stoppedSuffix); err != nil {
		t.Errorf("piku's vassal config was not set aside: %v", err)
	}
	if _, err := os.Stat(filepath.Join(piku, "uwsgi-enabled", "shopping_web.1.ini")); err != nil {
		t.Errorf("another app's config was touched: %v", err)
	}
	if !strings.Contains(stderr.String(), "stopped piku's shop: renamed 1 uwsgi-enabled/shop_*.ini") {
		t.Errorf("output does not say how piku's app was stopped:\n%s", stderr.String())
	}
}

func TestParseAuthorizedKeys(t *testing.T) {
	key := func(comment string) string {
		pub, _, err := ed25519.GenerateKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		sshPub, err := gossh.NewPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sshPub))) + " " + comment
	}
	prefix := `command="FINGERPRINT=SHA256:x NAME=default /usr/bin/python3 /home/piku/piku.py $SSH_ORIGINAL_COMMAND",no-agent-forwarding,no-user-rc,no-X11-forwarding,no-port-forwarding `
	alice, bob, shell, from, env := key("alice@laptop"), key(""), key("admin"), key("ci"), key("env")
	text := strings.Join([]string{
		"# piku keys",
		prefix + alice,
		prefix + bob,
		shell,
		`environment="A=B",` + prefix + env,
		"garbage line",
		prefix + alice,
		`command="/usr/bin/other" ` + key("other"),
		`from="10.0.0.0/8",` + prefix + from,
		"",
	}, "\n")
	keys, skipped := ParseAuthorizedKeys(text)
	if len(keys) != 3 {
		t.Fatalf("keys %+v\nskipped %q", keys, skipped)
	}
	// from= is a restriction hop3 honours: the key keeps it.
	if keys[2].Name != "piku-ci" || keys[2].Options != `from="10.0.0.0/8"` || keys[0].Options != "" {
		t.Errorf("options: %+v", keys)
	}
	if keys[0].Name != "piku-alice@laptop" || keys[0].Line != 2 || !strings.HasPrefix(alice, keys[0].PublicKey) || strings.Contains(keys[0].PublicKey, "command") {
		t.Errorf("alice: %+v", keys[0])
	}
	if keys[1].Name != "piku-2" || !strings.HasPrefix(keys[1].Fingerprint, "SHA256:") {
		t.Errorf("bob: %+v", keys[1])
	}
	all := strings.Join(skipped, "\n")
	for _, want := range []string{"line 4", "shell login", "line 5", "environment=", "line 6", "not a public key", "line 7", "same key as line 2", "line 8", "not piku's"} {
		if !strings.Contains(all, want) {
			t.Errorf("skipped lacks %q:\n%s", want, all)
		}
	}
}

func FuzzParseAuthorizedKeys(f *testing.F) {
	f.Add(`command="piku.py" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvEfpKfRWmrpRG3o1Ld1eYuA3lvhD0K1d+ezOE7u8nX x`)
	f.Fuzz(func(t *testing.T, text string) {
		keys, _ := ParseAuthorizedKeys(text)
		names := map[string]bool{}
		for _, k := range keys {
			if names[k.Name] || strings.ContainsAny(k.PublicKey, "\n\"") {
				t.Fatalf("key %+v", k)
			}
			names[k.Name] = true
		}
	})
}

// With piku's own script beside PIKU_ROOT, the import stops the app with
// `piku.py stop APP` and, when the import fails, starts it again with
// `piku.py restart APP`.
func TestImportStopsWithPikuCLI(t *testing.T) {
	home := t.TempDir()
	piku := filepath.Join(home, ".piku")
	pikuApp(t, piku, "shop", "main", map[string]string{"Procfile": "worker: sleep 1000\n"})
	writeFile(t, filepath.Join(piku, "data", "shop", "orders.txt"), "order 1\n")
	ini := filepath.Join(piku, "uwsgi-enabled", "shop_worker.1.ini")
	writeFile(t, ini, "[uwsgi]\n")
	// A stand-in for piku.py: stop removes the app's vassal configs, as
	// piku's does; restart writes them again.
	writeFile(t, filepath.Join(home, "piku.py"), `import glob, os, sys
cmd, app = sys.argv[1], sys.argv[2]
enabled = os.path.join(os.environ["PIKU_ROOT"], "uwsgi-enabled")
with open(os.path.join(os.environ["PIKU_ROOT"], "calls"), "a") as f:
    f.write(cmd + " " + app + "\n")
if cmd == "stop":
    for p in glob.glob(os.path.join(enabled, app + "_*.ini")):
        os.remove(p)
elif cmd == "restart":
    open(os.path.join(enabled, app + "_worker.1.ini"), "w").write("[uwsgi]\n")
`)
	apps, err := Scan(context.Background(), piku, Options{Data: true})
	if err != nil {
		t.Fatal(err)
	}
	hop := t.TempDir()
	var stderr bytes.Buffer
	im := &Importer{Daemon: &fakeDaemon{root: hop, failOn: "deploy"}, Root: hop, PikuRoot: piku, Stdout: io.Discard, Stderr: &stderr, Data: true}
	if o := im.Import(context.Background(), apps); o[0].Status != Failed {
		t.Fatalf("outcome %+v", o)
	}
	calls, _ := os.ReadFile(filepath.Join(piku, "calls"))
	if string(calls) != "stop shop\nrestart shop\n" {
		t.Errorf("piku.py ran %q\n%s", calls, stderr.String())
	}
	if _, err := os.Stat(ini); err != nil {
		t.Errorf("piku's app was not started again: %v", err)
	}
	if !strings.Contains(stderr.String(), "stopped piku's shop with `piku.py stop shop`") {
		t.Errorf("output does not say how piku's app was stopped:\n%s", stderr.String())
	}
}
