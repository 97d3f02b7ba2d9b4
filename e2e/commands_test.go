package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type psRow struct {
	Process string `json:"process"`
	Kind    string `json:"kind"`
	State   string `json:"state"`
	PID     int    `json:"pid"`
}

type releaseRow struct {
	Number   int    `json:"number"`
	Revision string `json:"revision"`
	Status   string `json:"status"`
	Live     bool   `json:"live"`
	Pusher   string `json:"pusher"`
}

type appRow struct {
	Name    string `json:"name"`
	State   string `json:"state"`
	Release int    `json:"release"`
	URL     string `json:"url"`
}

// hasVar reports whether a "KEY: value" listing shows k with value v.
func hasVar(listing, k, v string) bool {
	for _, line := range strings.Split(listing, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if ok && key == k && strings.TrimLeft(val, " ") == v {
			return true
		}
	}
	return false
}

func decode[T any](t *testing.T, r cmdResult) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, r)
	}
	return v
}

// running lists the running processes ("web.1", ...) of app, sorted.
func running(t *testing.T, d *daemon, u user, app string) []string {
	t.Helper()
	var out []string
	for _, p := range decode[[]psRow](t, d.mustCmd(u, "ps", app, "--json")) {
		if p.State == "running" && p.PID > 0 && !slices.Contains(out, p.Process) {
			out = append(out, p.Process)
		}
	}
	slices.Sort(out)
	return out
}

// TestCommands drives every command over the real ssh client against one
// running hop3, checking what each one changed: config reaching the app's
// processes, processes, logs, one-off runs, releases and rollback, domains
// through Caddy, stop and start, create and destroy, and the same commands
// through the control socket. The subtests share the daemon and one app,
// deployed and configured here; each leaves the app as it found it (or
// reads what it serves), so that any one runs alone too:
// go test -run 'TestCommands/logs' ./e2e.
func TestCommands(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const host = "envapp.localhost"
	w := newWorkdir(t, envServer("hello v1"))
	w.mustPush(d, alice, "envapp")
	wantBody(t, d, host, "/", "hello v1")
	// The values the subtests after "config" read: the worker's ticks, run,
	// start, rollback and the control socket.
	d.mustCmd(alice, "config:set", "envapp", "GREETING=hello big world", "UNICODE=héllo wörld ✓ 日本語")

	t.Run("config", func(t *testing.T) {
		values := map[string]string{
			"GREETING": "hello big world",
			"QUOTED":   `it's "quoted" 'twice'`,
			"DOLLAR":   "$HOME ${PATH} $(id) `id`",
			"EQUALS":   "a=b==c",
			"UNICODE":  "héllo wörld ✓ 日本語",
			"SHELLISH": "a; echo pwned | cat && true > /tmp/x",
			"NEWLINES": "line 1\nline 2",
		}
		args := []string{"config:set", "envapp"}
		for k, v := range values {
			args = append(args, k+"="+v)
		}
		r := d.mustCmd(alice, args...)
		if strings.Contains(r.stderr, "hello big world") {
			t.Errorf("config:set printed a value:\n%s", r)
		}
		for k, v := range values {
			if got := d.mustCmd(alice, "config:get", "envapp", k).stdout; got != v+"\n" {
				t.Errorf("config:get %s = %q, want %q", k, got, v+"\n")
			}
			// The running app sees the new value: config:set restarted it.
			if got := envOf(t, d, host, k); got != v {
				t.Errorf("the app sees %s = %q, want %q", k, got, v)
			}
		}
		live := decode[map[string]string](t, d.mustCmd(alice, "config:live", "envapp", "--json"))
		for k, v := range values {
			if live[k] != v {
				t.Errorf("config:live %s = %q, want %q", k, live[k], v)
			}
		}
		if live["APP"] != "envapp" || live["DATA_DIR"] == "" {
			t.Errorf("config:live lacks hop3's own values: %v", live)
		}
		if r := d.mustCmd(alice, "config:live", "envapp"); !hasVar(r.stdout, "GREETING", "hello big world") {
			t.Errorf("config:live:\n%s", r)
		}
		shown := d.mustCmd(alice, "config", "envapp")
		for k, v := range map[string]string{"GREETING": "hello big world", "UNICODE": "héllo wörld ✓ 日本語", "NEWLINES": `"line 1\nline 2"`} {
			if !hasVar(shown.stdout, k, v) {
				t.Errorf("config lacks %s: %s:\n%s", k, v, shown)
			}
		}
		if alias := d.mustCmd(alice, "config:list", "envapp"); alias.stdout != shown.stdout {
			t.Errorf("config:list differs from config:\n%s", alias)
		}
		if got := decode[map[string]string](t, d.mustCmd(alice, "config", "--json", "envapp")); len(got) != len(values) || got["QUOTED"] != values["QUOTED"] {
			t.Errorf("config --json = %v", got)
		}

		d.mustCmd(alice, "config:unset", "envapp", "DOLLAR", "SHELLISH")
		if got := envOf(t, d, host, "DOLLAR"); got != "<unset>" {
			t.Errorf("after config:unset the app sees DOLLAR = %q", got)
		}
		wantFail(t, d.command(alice, "", "config:get", "envapp", "DOLLAR"), 1, "envapp has no config var DOLLAR")

		// --no-restart stores the change; restart applies it.
		d.mustCmd(alice, "config:set", "--no-restart", "envapp", "LATER=yes")
		if got := envOf(t, d, host, "LATER"); got != "<unset>" {
			t.Errorf("--no-restart restarted: LATER = %q", got)
		}
		d.mustCmd(alice, "restart", "envapp")
		if got := envOf(t, d, host, "LATER"); got != "yes" {
			t.Errorf("after restart LATER = %q, want yes", got)
		}

		wantFail(t, d.command(alice, "", "config:set", "envapp", "OK=1", "BAD-KEY=1"), 2, `invalid config key "BAD-KEY"`)
		wantFail(t, d.command(alice, "", "config:set", "envapp", "NOVALUE"), 2, `"NOVALUE" is not KEY=VALUE`)
		if got := d.command(alice, "", "config:get", "envapp", "OK"); got.code != 1 {
			t.Errorf("a refused config:set stored part of its input: %s", got)
		}

		ev := d.mustCmd(alice, "events", "envapp")
		if !strings.Contains(ev.stdout, "config") || !strings.Contains(ev.stdout, "alice") || !strings.Contains(ev.stdout, "GREETING") {
			t.Errorf("events lack the config change:\n%s", ev)
		}
		for _, v := range values {
			if len(v) > 4 && strings.Contains(ev.stdout, v) {
				t.Errorf("events show a value %q:\n%s", v, ev)
			}
		}
	})

	t.Run("ps and scale", func(t *testing.T) {
		if got := running(t, d, alice, "envapp"); !slices.Equal(got, []string{"web.1", "worker.1"}) {
			t.Errorf("running = %q", got)
		}
		r := d.mustCmd(alice, "ps", "envapp")
		for _, want := range []string{"PROCESS", "web.1", "worker.1", "running", "MiB"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("ps lacks %q:\n%s", want, r)
			}
		}
		d.mustCmd(alice, "ps:scale", "envapp", "worker=3")
		eventually(t, 20*time.Second, func() error {
			if got := running(t, d, alice, "envapp"); !slices.Equal(got, []string{"web.1", "worker.1", "worker.2", "worker.3"}) {
				return fmt.Errorf("running = %q", got)
			}
			return nil
		})
		wantFail(t, d.command(alice, "", "ps:scale", "envapp", "wroker=1"), 1, "did you mean worker?")
		wantFail(t, d.command(alice, "", "ps:scale", "envapp", "worker=40"), 2, "between 0 and 32")
		wantFail(t, d.command(alice, "", "ps:scale", "envapp", "worker"), 2, "is not KIND=N")
		d.mustCmd(alice, "ps:scale", "envapp", "worker=1")
		eventually(t, 20*time.Second, func() error {
			if got := running(t, d, alice, "envapp"); !slices.Equal(got, []string{"web.1", "worker.1"}) {
				return fmt.Errorf("running = %q", got)
			}
			return nil
		})
		wantBody(t, d, host, "/", "hello v1")
	})

	t.Run("logs", func(t *testing.T) {
		eventually(t, 20*time.Second, func() error {
			r := d.mustCmd(alice, "logs", "envapp", "-n", "3", "--process", "worker")
			n := 0
			for _, line := range strings.Split(r.stdout, "\n") {
				if m := logLineRe.FindStringSubmatch(line); m != nil && m[2] == "worker.1" && m[4] == "tick hello big world" {
					n++
				}
			}
			if n != 3 {
				return fmt.Errorf("%d worker.1 ticks in\n%s", n, r)
			}
			return nil
		})
		r := d.mustCmd(alice, "logs", "envapp", "-n", "2")
		for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			if m := logLineRe.FindStringSubmatch(line); m == nil || (m[2] != "web.1" && !strings.HasPrefix(m[2], "worker.")) {
				t.Errorf("logs line without its process: %q", line)
			}
		}
		if r := d.mustCmd(alice, "logs", "envapp", "web", "-n", "5"); strings.Contains(r.stdout, "worker.") {
			t.Errorf("logs envapp web shows workers:\n%s", r)
		}

		// -f streams new lines until the client goes away.
		full := append(strings.Fields(d.sshCommand(alice))[1:], "hop3@127.0.0.1", "logs envapp -f -n 0 --process worker")
		cmd := exec.Command("ssh", full...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
		got := make(chan string, 10)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				got <- sc.Text()
			}
			close(got)
		}()
		for i := 0; i < 3; i++ {
			select {
			case line := <-got:
				if m := logLineRe.FindStringSubmatch(line); m == nil || m[2] != "worker.1" || !strings.HasPrefix(m[4], "tick ") {
					t.Errorf("logs -f line %q", line)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("logs -f: no line after 15s")
			}
		}
	})

	t.Run("run", func(t *testing.T) {
		if r := d.command(alice, "", "run", "envapp", "--", "sh", "-c", "exit 3"); r.code != 3 {
			t.Errorf("run of a command exiting 3: %s", r)
		}
		if r := d.command(alice, "piped input\nline 2\n", "run", "envapp", "--", "cat"); r.code != 0 || r.stdout != "piped input\nline 2\n" {
			t.Errorf("run cat: %s", r)
		}
		r := d.command(alice, "", "run", "envapp", "--", "sh", "-c", `echo "$GREETING"; echo "$APP"; echo oops >&2`)
		if r.code != 0 || r.stdout != "hello big world\nenvapp\n" || !strings.Contains(r.stderr, "oops") {
			t.Errorf("run in the app's environment: %s", r)
		}
		if r := d.command(alice, "", "run", "envapp", "ls", "server.py"); r.code != 0 || r.stdout != "server.py\n" {
			t.Errorf("run without -- in the release directory: %s", r)
		}
		wantFail(t, d.command(alice, "", "run", "envapp"), 2, "missing COMMAND")
	})

	t.Run("stop and start", func(t *testing.T) {
		d.mustCmd(alice, "stop", "envapp")
		if code, _ := get(t, d, host, "/"); code != 503 {
			t.Errorf("a stopped app answers %d, want 503", code)
		}
		eventually(t, 20*time.Second, func() error {
			if got := running(t, d, alice, "envapp"); len(got) != 0 {
				return fmt.Errorf("still running: %q", got)
			}
			return nil
		})
		apps := decode[[]appRow](t, d.mustCmd(alice, "apps", "--json"))
		if len(apps) != 1 || apps[0].State != "stopped" {
			t.Errorf("apps = %+v", apps)
		}
		d.mustCmd(alice, "start", "envapp")
		wantBody(t, d, host, "/", "hello v1")
		if got := envOf(t, d, host, "GREETING"); got != "hello big world" {
			t.Errorf("after start GREETING = %q", got)
		}
	})

	t.Run("releases and rollback", func(t *testing.T) {
		w.commit("v2", envServer("hello v2"))
		w.mustPush(d, alice, "envapp")
		wantBody(t, d, host, "/", "hello v2")
		rels := decode[[]releaseRow](t, d.mustCmd(alice, "releases", "envapp", "--json"))
		if len(rels) != 2 || rels[0].Number != 2 || !rels[0].Live || rels[0].Pusher != "alice" || rels[0].Status != "succeeded" || rels[1].Number != 1 || rels[1].Live {
			t.Fatalf("releases = %+v", rels)
		}
		r := d.mustCmd(alice, "releases", "envapp")
		for _, want := range []string{"v2", "v1", "alice", "succeeded (live)", rels[0].Revision[:7]} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("releases lacks %q:\n%s", want, r)
			}
		}
		info := d.mustCmd(alice, "releases:info", "envapp", "v2")
		for _, want := range []string{"Revision:  " + rels[0].Revision, "=== build log", "Deploying envapp (", "envapp v2 is live"} {
			if !strings.Contains(info.stdout, want) {
				t.Errorf("releases:info lacks %q:\n%s", want, info)
			}
		}
		d.mustCmd(alice, "rollback", "envapp")
		wantBody(t, d, host, "/", "hello v1")
		if got := envOf(t, d, host, "GREETING"); got != "hello big world" {
			t.Errorf("after rollback GREETING = %q", got)
		}
		if rels := decode[[]releaseRow](t, d.mustCmd(alice, "releases", "envapp", "--json")); !rels[1].Live {
			t.Errorf("after rollback: %+v", rels)
		}
		wantFail(t, d.command(alice, "", "rollback", "envapp", "v1"), 1, "v1 is already live")
		wantFail(t, d.command(alice, "", "rollback", "envapp", "v7"), 1, "no release v7")
		d.mustCmd(alice, "rollback", "envapp", "v2")
		wantBody(t, d, host, "/", "hello v2")

		// deploy builds the current revision again, as a new release.
		if r := d.mustCmd(alice, "deploy", "--no-cache", "envapp"); !strings.Contains(r.stderr, "Deploying envapp (") || !strings.Contains(r.stderr, "envapp v3 is live") {
			t.Errorf("deploy:\n%s", r)
		}
		rels = decode[[]releaseRow](t, d.mustCmd(alice, "releases", "envapp", "--json"))
		if rels[0].Number != 3 || !rels[0].Live || rels[0].Revision != rels[1].Revision || rels[0].Pusher != "alice" {
			t.Errorf("after deploy: %+v", rels)
		}
		wantBody(t, d, host, "/", "hello v2")
	})

	t.Run("domains", func(t *testing.T) {
		// v1's body, or v2's when "releases and rollback" ran first.
		_, serving := get(t, d, host, "/")
		d.mustCmd(alice, "domains:add", "envapp", "www.example.test", "API.example.test")
		wantBody(t, d, "www.example.test", "/", serving)
		wantBody(t, d, "api.example.test", "/", serving)
		type domains struct {
			Default string   `json:"default"`
			Domains []string `json:"domains"`
		}
		if got := decode[domains](t, d.mustCmd(alice, "domains", "envapp", "--json")); got.Default != host || !slices.Equal(got.Domains, []string{"api.example.test", "www.example.test"}) {
			t.Errorf("domains = %+v", got)
		}
		d.mustCmd(alice, "create", "rival")
		wantFail(t, d.command(alice, "", "domains:add", "rival", "www.example.test"), 1, "host www.example.test belongs to app envapp")
		wantFail(t, d.command(alice, "", "domains:add", "rival", "envapp.localhost"), 1, "reserved for an app named envapp")
		wantFail(t, d.command(alice, "", "domains:add", "rival", "bad_host.test"), 2, "is not a host name")
		d.mustCmd(alice, "domains:remove", "envapp", "api.example.test")
		if code, _ := get(t, d, "api.example.test", "/"); code != 404 {
			t.Errorf("a removed domain answers %d, want 404", code)
		}
		wantBody(t, d, "www.example.test", "/", serving)
		d.mustCmd(alice, "destroy", "rival", "--confirm", "rival")
	})

	t.Run("create and destroy", func(t *testing.T) {
		d.mustCmd(alice, "create", "fresh")
		apps := decode[[]appRow](t, d.mustCmd(alice, "apps", "--json"))
		i := slices.IndexFunc(apps, func(a appRow) bool { return a.Name == "fresh" })
		if i < 0 || apps[i].State != "not deployed" || apps[i].Release != 0 || !strings.Contains(apps[i].URL, "fresh.localhost") {
			t.Fatalf("apps after create = %+v", apps)
		}
		wantFail(t, d.command(alice, "", "create", "fresh"), 1, "app fresh already exists")
		// A push to a created app deploys it.
		site := newWorkdir(t, staticSite("fresh site\n"))
		site.mustPush(d, alice, "fresh")
		wantBody(t, d, "fresh.localhost", "/", "fresh site\n")

		// destroy asks for the name; a wrong one destroys nothing.
		if r := d.command(alice, "frsh\n", "destroy", "fresh"); r.code != 1 || !strings.Contains(r.stderr, "nothing destroyed") {
			t.Errorf("destroy with a wrong name: %s", r)
		}
		wantBody(t, d, "fresh.localhost", "/", "fresh site\n")
		r := d.command(alice, "fresh\n", "destroy", "fresh")
		if r.code != 0 {
			t.Fatalf("destroy with the name typed: %s", r)
		}
		if code, _ := get(t, d, "fresh.localhost", "/"); code != 404 {
			t.Errorf("a destroyed app answers %d, want 404", code)
		}
		if _, err := os.Stat(filepath.Join(root, "repos", "fresh.git")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the repository is still there: %v", err)
		}
		if _, err := os.Stat(filepath.Join(root, "data", "fresh")); err != nil {
			t.Errorf("destroy without --purge removed DATA_DIR: %v", err)
		}
		d.mustCmd(alice, "create", "spare")
		if _, err := os.Stat(filepath.Join(root, "data", "spare")); err != nil {
			t.Fatalf("create made no DATA_DIR: %v", err)
		}
		d.mustCmd(alice, "destroy", "spare", "--confirm", "spare", "--purge")
		if _, err := os.Stat(filepath.Join(root, "data", "spare")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("destroy --purge kept DATA_DIR: %v", err)
		}
		apps = decode[[]appRow](t, d.mustCmd(alice, "apps", "--json"))
		if len(apps) != 1 || apps[0].Name != "envapp" {
			t.Errorf("apps after destroy = %+v", apps)
		}
		wantFail(t, d.command(alice, "", "config", "fresh"), 1, "no app named fresh")
	})

	t.Run("control socket", func(t *testing.T) {
		fi, err := os.Stat(filepath.Join(root, "control.sock"))
		if err != nil || fi.Mode().Perm() != 0o600 || fi.Mode().Type() != os.ModeSocket {
			t.Fatalf("control socket: %v %v", fi.Mode(), err)
		}
		for _, args := range [][]string{{"apps", "--json"}, {"config:get", "envapp", "UNICODE"}, {"releases", "envapp"}, {"domains", "envapp"}, {"help"}} {
			viaSSH := d.mustCmd(alice, args...)
			local := d.local("", args...)
			if args[0] == "help" {
				// `hop3 help` adds hop3's own usage to the daemon's list.
				if local.code != 0 || !strings.Contains(local.stdout, viaSSH.stdout) {
					t.Errorf("hop3 help lacks the daemon's list: %s", local)
				}
				continue
			}
			if local.code != 0 || local.stdout != viaSSH.stdout {
				t.Errorf("hop3 %q differs from ssh:\n%s\nssh:\n%s", args, local, viaSSH)
			}
		}
		if r := d.local("", "config:set", "envapp", "FROM_LOCAL=it's $local"); r.code != 0 {
			t.Fatalf("hop3 config:set: %s", r)
		}
		if got := d.mustCmd(alice, "config:get", "envapp", "FROM_LOCAL").stdout; got != "it's $local\n" {
			t.Errorf("set through the socket, read over ssh: %q", got)
		}
		if got := envOf(t, d, host, "FROM_LOCAL"); got != "it's $local" {
			t.Errorf("the app sees FROM_LOCAL = %q", got)
		}
		if r := d.local("in\n", "run", "envapp", "--", "sh", "-c", "cat; exit 4"); r.code != 4 || r.stdout != "in\n" {
			t.Errorf("hop3 run: %s", r)
		}
		wantFail(t, d.local("", "confg", "envapp"), 2, "did you mean config?")
		explicit := runCmd(exec.Command(hop3Bin, "--root", root, "config:get", "envapp", "GREETING"), "")
		if explicit.code != 0 || explicit.stdout != "hello big world\n" {
			t.Errorf("hop3 --root DIR config:get: %s", explicit)
		}
		stopped := runCmd(exec.Command(hop3Bin, "--root", t.TempDir(), "apps"), "")
		if stopped.code != 1 || !strings.Contains(stopped.stderr, "hop3 is not running") {
			t.Errorf("hop3 apps without a daemon: %s", stopped)
		}
		if r := d.local("", "events", "envapp"); !strings.Contains(r.stdout, "local") {
			t.Errorf("events lack the local actor:\n%s", r)
		}
	})

	t.Run("help, unknown, version", func(t *testing.T) {
		golden, err := os.ReadFile(filepath.Join(repoRoot, "internal", "commands", "testdata", "help.golden"))
		if err != nil {
			t.Fatal(err)
		}
		if r := d.mustCmd(alice, "help"); r.stdout != string(golden) {
			t.Errorf("help differs from the golden file:\n%s", r)
		}
		if r := d.mustCmd(alice, "help", "config:set"); !strings.Contains(r.stdout, "Usage: config:set [--no-restart] APP KEY=VALUE ...") {
			t.Errorf("help config:set:\n%s", r)
		}
		wantFail(t, d.command(alice, "", "confg:set", "envapp", "A=1"), 2, `unknown command "confg:set"; did you mean config:set?`)
		wantFail(t, d.command(alice, "", "scale", "envapp", "web=1"), 2, "did you mean ps:scale?")
		wantFail(t, d.command(alice, "", "config", "envap"), 1, "no app named envap; did you mean envapp?")
		v := d.mustCmd(alice, "version")
		for _, want := range []string{"hop3 ", "caddy    v2.", "granian  2."} {
			if !strings.Contains(v.stdout, want) {
				t.Errorf("version lacks %q:\n%s", want, v)
			}
		}
	})
}

// TestCommandRoles checks that a deployer key can use its apps and nothing
// else: pushes and commands on another app are refused without revealing
// it, and keys are for admins only. The attack: a key given to a CI job
// for one app must not reach the others.
func TestCommandRoles(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	bob := newUser(t, "bob")

	// An admin adds the deployer over ssh, with its public key on stdin.
	if r := d.command(alice, bob.pub(t), "keys:add", "bob", "--role", "deployer", "--apps", "bobapp"); r.code != 0 {
		t.Fatalf("keys:add: %s", r)
	}
	type keyRow struct {
		Name string   `json:"name"`
		Role string   `json:"role"`
		Apps []string `json:"apps"`
	}
	keys := decode[[]keyRow](t, d.mustCmd(alice, "keys", "--json"))
	if len(keys) != 2 || keys[1].Name != "bob" || keys[1].Role != "deployer" || !slices.Equal(keys[1].Apps, []string{"bobapp"}) {
		t.Fatalf("keys = %+v", keys)
	}

	wa := newWorkdir(t, staticSite("alice's\n"))
	wa.mustPush(d, alice, "aliceapp")
	wb := newWorkdir(t, staticSite("bob's\n"))
	wb.mustPush(d, bob, "bobapp")
	wantBody(t, d, "bobapp.localhost", "/", "bob's\n")

	// Pushing to another app is refused and changes nothing.
	wb.commit("takeover", staticSite("pwned\n"))
	if out, err := wb.push(d, bob, "aliceapp"); err == nil || !strings.Contains(out, "may not use app aliceapp") {
		t.Errorf("a deployer pushed to another app: %v\n%s", err, out)
	}
	wantBody(t, d, "aliceapp.localhost", "/", "alice's\n")

	apps := decode[[]appRow](t, d.mustCmd(bob, "apps", "--json"))
	if len(apps) != 1 || apps[0].Name != "bobapp" {
		t.Errorf("a deployer sees apps %+v", apps)
	}
	for _, args := range [][]string{
		{"config", "aliceapp"},
		{"config:set", "aliceapp", "EVIL=1"},
		{"config:get", "aliceapp", "X"},
		{"ps", "aliceapp"},
		{"logs", "aliceapp"},
		{"run", "aliceapp", "--", "id"},
		{"restart", "aliceapp"},
		{"stop", "aliceapp"},
		{"releases", "aliceapp"},
		{"rollback", "aliceapp"},
		{"domains:add", "aliceapp", "evil.example.test"},
		{"destroy", "aliceapp", "--confirm", "aliceapp"},
		{"deploy", "aliceapp"},
		{"config", "aliceap"},
	} {
		r := d.command(bob, "", args...)
		wantFail(t, r, 1, "no app named "+args[1])
		if strings.Contains(r.stderr, "did you mean") {
			t.Errorf("%q: a deployer was offered another app: %s", args, r)
		}
	}
	wantFail(t, d.command(bob, "", "create", "aliceapp2"), 1, "key bob may not use app aliceapp2")
	if r := d.mustCmd(alice, "config", "--json", "aliceapp"); strings.TrimSpace(r.stdout) != "{}" {
		t.Errorf("refused commands changed aliceapp's config: %s", r)
	}
	wantBody(t, d, "aliceapp.localhost", "/", "alice's\n")

	// Its own app it may change.
	d.mustCmd(bob, "config:set", "bobapp", "MINE=1")
	d.mustCmd(bob, "domains:add", "bobapp", "bob.example.test")
	wantBody(t, d, "bob.example.test", "/", "bob's\n")
	wantFail(t, d.command(bob, "", "domains:add", "bobapp", "aliceapp.localhost"), 1, "reserved")

	// Keys are for admins.
	wantFail(t, d.command(bob, "", "keys"), 1, "admin keys only")
	wantFail(t, d.command(bob, alice.pub(t), "keys:add", "eve"), 1, "admin keys only")
	wantFail(t, d.command(bob, "", "keys:remove", "alice"), 1, "admin keys only")
	if keys := decode[[]keyRow](t, d.mustCmd(alice, "keys", "--json")); len(keys) != 2 {
		t.Errorf("keys changed: %+v", keys)
	}

	// Removing the key shuts it out.
	d.mustCmd(alice, "keys:remove", "bob")
	if r := d.command(bob, "", "apps"); r.code == 0 {
		t.Errorf("a removed key still works: %s", r)
	}
	ev := d.mustCmd(alice, "events")
	for _, want := range []string{"added key bob (deployer of bobapp)", "removed key bob"} {
		if !strings.Contains(ev.stdout, want) {
			t.Errorf("events lack %q:\n%s", want, ev)
		}
	}
}
