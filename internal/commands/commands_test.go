package commands

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
	"hop3/internal/store"
	"hop3/runtime/supervisor"
)

var update = flag.Bool("update", false, "rewrite testdata/help.golden")

func TestHelpGolden(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.ok("help")
	golden := filepath.Join("testdata", "help.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if r.stdout != string(want) {
		t.Errorf("help differs from %s (go test -update rewrites it):\n%s", golden, r.stdout)
	}
	if r.stderr != "" {
		t.Errorf("help wrote to stderr: %s", r.stderr)
	}
	// No command at all is help too, and every command has one help line.
	if none := e.ok(); none.stdout != r.stdout {
		t.Errorf("no command does not print help")
	}
	inv := &invocation{}
	for _, c := range inv.commands() {
		if !strings.Contains(r.stdout, "  "+c.synopsis()+" ") && !strings.Contains(r.stdout, "  "+c.synopsis()+"\n") {
			t.Errorf("help lacks %q", c.synopsis())
		}
		if c.summary == "" || strings.Contains(c.summary, "\n") {
			t.Errorf("%s: the summary must be one line", c.name)
		}
	}
}

func TestHelpOfOneCommand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, args := range [][]string{{"help", "config:set"}, {"config:set", "--help"}, {"config:set", "-h"}} {
		r := e.ok(args...)
		if !strings.Contains(r.stdout, "Usage: config:set [--no-restart] APP KEY=VALUE ...") || !strings.Contains(r.stdout, "--no-restart") {
			t.Errorf("%q:\n%s", args, r.stdout)
		}
	}
	if r := e.ok("help", "config:list"); !strings.Contains(r.stdout, "Usage: config [--json] APP") {
		t.Errorf("help of an alias:\n%s", r.stdout)
	}
	r := e.run(admin, "", "help", "cnofig")
	if r.code != exitUsage {
		t.Errorf("help of an unknown command: exit %d", r.code)
	}
	oneFailLine(t, r, "did you mean config?")
}

func TestUnknownCommandSuggests(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct{ typed, want string }{
		{"cofnig:set", "did you mean config:set?"},
		{"config:st", "did you mean config:set?"},
		{"domains:ad", "did you mean domains:add?"},
		{"relases", "did you mean releases?"},
		{"aps", "did you mean apps?"},
		{"destory", "did you mean destroy?"},
		{"scale", "did you mean ps:scale?"},
		{"unset", "did you mean config:unset?"},
		{"add", "did you mean domains:add or keys:add?"},
		{"frobnicate-everything", "run help for the list"},
	}
	for _, tt := range tests {
		r := e.run(admin, "", tt.typed, "x")
		if r.code != exitUsage {
			t.Errorf("%s: exit %d, want %d", tt.typed, r.code, exitUsage)
		}
		oneFailLine(t, r, tt.want)
		if r.stdout != "" {
			t.Errorf("%s: wrote to stdout: %q", tt.typed, r.stdout)
		}
	}
}

func TestSuggest(t *testing.T) {
	t.Parallel()
	names := []string{"apps", "config", "config:set", "config:get", "myapp", "my-other-app"}
	tests := []struct{ in, want string }{
		{"conifg", "config"},
		{"config:sett", "config:set"},
		{"myap", "myapp"},
		{"my-othr-app", "my-other-app"},
		{"zzzzzz", ""},
		{"a", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, names); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, tt := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"kitten", "sitting", 3}, {"ab", "ba", 1}, {"héllo", "hello", 1}} {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestParseArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string
		n    int
		f    bool
	}{
		{[]string{"app", "-n", "5"}, []string{"app"}, 5, false},
		{[]string{"-n", "5", "app", "-f"}, []string{"app"}, 5, true},
		{[]string{"app", "--", "-n", "7"}, []string{"app", "-n", "7"}, 100, false},
		{[]string{"a", "b", "--f"}, []string{"a", "b"}, 100, true},
	}
	for _, tt := range tests {
		fs := newFlags(&command{name: "t"})
		n := fs.Int("n", 100, "")
		f := fs.Bool("f", false, "")
		got, err := parseArgs(fs, tt.args)
		if err != nil || !slices.Equal(got, tt.want) || *n != tt.n || *f != tt.f {
			t.Errorf("parseArgs(%q) = %q n=%d f=%v %v", tt.args, got, *n, *f, err)
		}
	}
	fs := newFlags(&command{name: "t"})
	if _, err := parseArgs(fs, []string{"--nope"}); err == nil {
		t.Error("an unknown flag was accepted")
	}
	if got := positionalNames("[--no-restart] APP KEY=VALUE ..."); !slices.Equal(got, []string{"APP", "KEY=VALUE"}) {
		t.Errorf("positionalNames = %q", got)
	}
	if got := positionalNames("NAME [--role admin|deployer] [--apps APP,...] < KEY.pub"); !slices.Equal(got, []string{"NAME"}) {
		t.Errorf("positionalNames = %q", got)
	}
}

func TestApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.ok("apps"); r.stdout != "" || !strings.Contains(r.stderr, "no apps yet") {
		t.Errorf("apps with none: %+v", r)
	}
	e.app("mine", "web: python -m http.server\n")
	e.app("other", "")
	e.app("crashy", "worker: false\n")
	e.be.procs["crashy"] = []supervisor.Status{{Labels: map[string]string{"app": "crashy", "kind": "worker", "index": "1", "release": "1"}, State: supervisor.Crashed}}
	if err := e.st.SetAppState(context.Background(), "other", store.AppStopped); err != nil {
		t.Fatal(err)
	}
	r := e.ok("apps")
	for _, want := range []string{"NAME", "mine    running", "other   not deployed", "crashy  crashed", "http://mine.localhost:8080/"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("apps lacks %q:\n%s", want, r.stdout)
		}
	}
	var rows []appJSON
	if err := json.Unmarshal([]byte(e.ok("apps", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[1].Name != "mine" || rows[1].Release != 1 || rows[1].State != "running" || rows[1].URL == "" {
		t.Errorf("apps --json = %+v", rows)
	}
	// A deployer sees its own apps only.
	r = e.run(bob, "", "apps", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 || rows[0].Name != "mine" {
		t.Errorf("apps for a deployer = %+v %v", rows, err)
	}
	if r := e.run(admin, "", "apps", "extra"); r.code != exitUsage {
		t.Errorf("apps with an argument: exit %d", r.code)
	}
}

func TestUnknownApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("secret", "web: x\n")
	tests := []struct {
		id   gitserver.Identity
		args []string
		code int
		want string
	}{
		{admin, []string{"config", "myap"}, exitFail, "no app named myap; did you mean myapp?"},
		{admin, []string{"ps", "nothing-like-it"}, exitFail, "no app named nothing-like-it"},
		{admin, []string{"config", "MyApp"}, exitUsage, "did you mean myapp?"},
		{admin, []string{"config", "../etc"}, exitUsage, "invalid app name"},
		// To a deployer, an app it may not use does not exist, and is
		// never suggested.
		{bob, []string{"config", "secret"}, exitFail, "no app named secret"},
		{bob, []string{"config:set", "secret", "A=1"}, exitFail, "no app named secret"},
		{bob, []string{"logs", "secret"}, exitFail, "no app named secret"},
		{bob, []string{"run", "secret", "--", "id"}, exitFail, "no app named secret"},
		{bob, []string{"destroy", "secret", "--confirm", "secret"}, exitFail, "no app named secret"},
		{bob, []string{"config", "secre"}, exitFail, "no app named secre"},
		{bob, []string{"create", "secret"}, exitFail, "key bob may not use app secret"},
		{bob, []string{"keys"}, exitFail, "admin keys only"},
		{bob, []string{"keys:add", "eve"}, exitFail, "admin keys only"},
		{bob, []string{"keys:remove", "alice"}, exitFail, "admin keys only"},
	}
	for _, tt := range tests {
		r := e.run(tt.id, "", tt.args...)
		if r.code != tt.code {
			t.Errorf("%s %q: exit %d, want %d", tt.id.Name, tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
		if tt.id.Name == "bob" && strings.Contains(r.stderr, "myapp") {
			t.Errorf("a deployer was told of another app: %s", r.stderr)
		}
	}
	if calls := e.be.Calls(); len(calls) != 0 {
		t.Errorf("refused commands reached the backend: %q", calls)
	}
	if cfg := e.config("secret"); len(cfg) != 0 {
		t.Errorf("refused config:set changed config: %v", cfg)
	}
}

func TestCreateAndDestroy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ok("create", "fresh")
	if _, err := e.st.App(context.Background(), "fresh"); err != nil {
		t.Fatalf("create made no app: %v", err)
	}
	r := e.run(admin, "", "create", "fresh")
	if r.code != exitFail {
		t.Errorf("create twice: exit %d", r.code)
	}
	oneFailLine(t, r, "app fresh already exists")
	if r := e.run(admin, "", "create", "Bad_Name"); r.code != exitUsage {
		t.Errorf("create with a bad name: exit %d", r.code)
	}
	if r := e.run(gitserver.Identity{Name: "bob", Apps: []string{"bobs"}}, "", "create", "bobs"); r.code != 0 {
		t.Errorf("a deployer may create its own app: %+v", r)
	}

	// Destroy asks for the name: a wrong one, or none, destroys nothing.
	for _, stdin := range []string{"", "frsh\n", "fresh-not\n"} {
		r := e.run(admin, stdin, "destroy", "fresh")
		if r.code != exitFail || !strings.Contains(r.stderr, "nothing destroyed") {
			t.Errorf("destroy with %q typed: %+v", stdin, r)
		}
	}
	if r := e.run(admin, "", "destroy", "fresh", "--confirm", "fresh2"); r.code != exitFail {
		t.Errorf("destroy --confirm of another name: exit %d", r.code)
	}
	if _, err := e.st.App(context.Background(), "fresh"); err != nil {
		t.Fatalf("an unconfirmed destroy removed the app: %v", err)
	}
	r = e.run(admin, "fresh\n", "destroy", "fresh")
	if r.code != 0 {
		t.Fatalf("destroy with the name typed: %+v", r)
	}
	if _, err := e.st.App(context.Background(), "fresh"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("app still there after destroy: %v", err)
	}
	e.ok("destroy", "bobs", "--confirm", "bobs", "--purge")
	want := []string{"Create fresh", "Create bobs", "Destroy fresh purge=false", "Destroy bobs purge=true"}
	if got := e.be.Calls(); !slices.Equal(got, want) {
		t.Errorf("backend calls = %q, want %q", got, want)
	}
	var kinds []string
	for _, ev := range e.events("") {
		kinds = append(kinds, ev.Kind+" "+ev.App+" "+ev.Actor)
	}
	if !slices.Equal(kinds, []string{"create fresh alice", "create bobs bob", "destroy fresh alice", "destroy bobs alice"}) {
		t.Errorf("events = %q", kinds)
	}
}

func TestConfigValuesExact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	values := map[string]string{
		"SPACES":  "hello big world",
		"QUOTES":  `it's "quoted"`,
		"DOLLAR":  "$HOME and ${PATH} and $(id)",
		"EQUALS":  "a=b=c",
		"UNICODE": "héllo wörld ✓ 日本",
		"NEWLINE": "line1\nline2",
		"EMPTY":   "",
		"BACKSL":  `back\slash\n`,
	}
	var args []string
	for k, v := range values {
		args = append(args, k+"="+v)
	}
	r := e.ok(append([]string{"config:set", "myapp"}, args...)...)
	for k, v := range values {
		if v != "" && len(v) > 3 && strings.Contains(r.stderr, v) {
			t.Errorf("config:set printed the value of %s", k)
		}
	}
	if got := e.config("myapp"); len(got) != len(values) {
		t.Errorf("stored %d vars, want %d", len(got), len(values))
	}
	for k, v := range values {
		if got := e.config("myapp")[k]; got != v {
			t.Errorf("stored %s = %q, want %q", k, got, v)
		}
		if got := e.ok("config:get", "myapp", k).stdout; got != v+"\n" {
			t.Errorf("config:get %s = %q, want %q", k, got, v+"\n")
		}
	}
	var asJSON map[string]string
	if err := json.Unmarshal([]byte(e.ok("config", "myapp", "--json").stdout), &asJSON); err != nil || len(asJSON) != len(values) || asJSON["NEWLINE"] != "line1\nline2" {
		t.Errorf("config --json = %v %v", asJSON, err)
	}
	human := e.ok("config:list", "myapp").stdout
	for _, want := range []string{"DOLLAR:  $HOME and ${PATH} and $(id)\n", "NEWLINE: \"line1\\nline2\"\n", "UNICODE: héllo wörld ✓ 日本\n"} {
		if !strings.Contains(human, want) {
			t.Errorf("config lacks %q:\n%s", want, human)
		}
	}
	if got := e.be.Calls(); !slices.Equal(got, []string{"ApplyConfig myapp"}) {
		t.Errorf("backend calls = %q", got)
	}
	evs := e.events("myapp")
	if len(evs) != 1 || evs[0].Kind != "config" || evs[0].Actor != "alice" || !strings.Contains(evs[0].Message, "DOLLAR") {
		t.Fatalf("events = %+v", evs)
	}
	for _, v := range values {
		if len(v) > 3 && strings.Contains(evs[0].Message, v) {
			t.Errorf("the event holds a value: %q", evs[0].Message)
		}
	}
}

func TestConfigRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("live", "web: x\n")
	e.app("new", "")
	e.app("stopped", "web: x\n")
	if err := e.st.SetAppState(context.Background(), "stopped", store.AppStopped); err != nil {
		t.Fatal(err)
	}
	e.ok("config:set", "--no-restart", "live", "A=1")
	e.ok("config:set", "live", "B=2", "--no-restart")
	e.ok("config:set", "new", "A=1")
	e.ok("config:set", "stopped", "A=1")
	if got := e.be.Calls(); len(got) != 0 {
		t.Errorf("restarted with --no-restart or nothing live: %q", got)
	}
	e.ok("config:set", "live", "C=3")
	e.ok("config:unset", "live", "A", "B")
	e.ok("config:unset", "live", "NOT_THERE")
	e.ok("config:unset", "--no-restart", "live", "C")
	if got := e.be.Calls(); !slices.Equal(got, []string{"ApplyConfig live", "ApplyConfig live"}) {
		t.Errorf("backend calls = %q", got)
	}
	if got := e.config("live"); len(got) != 0 {
		t.Errorf("config after unset = %v", got)
	}
	r := e.run(admin, "", "config:get", "live", "A")
	if r.code != exitFail {
		t.Errorf("config:get of an unset key: exit %d", r.code)
	}
	oneFailLine(t, r, "live has no config var A")

	// A failed restart is reported, once, and the exit status says so.
	e.be.fail = errors.New("restart failed: web did not start")
	r = e.run(admin, "", "config:set", "live", "D=4")
	if r.code != exitFail || strings.Count(r.stderr, "web did not start") != 1 {
		t.Errorf("failed apply: %+v", r)
	}
}

func TestConfigBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.ok("config:set", "--no-restart", "myapp", "KEEP=1")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"config:set", "myapp"}, "missing KEY=VALUE"},
		{[]string{"config:set"}, "missing APP"},
		{[]string{"config:set", "myapp", "NOEQUALS"}, `"NOEQUALS" is not KEY=VALUE`},
		{[]string{"config:set", "myapp", "=v"}, `invalid config key ""`},
		{[]string{"config:set", "myapp", "1ABC=v"}, `invalid config key "1ABC"`},
		{[]string{"config:set", "myapp", "A-B=v"}, `invalid config key "A-B"`},
		{[]string{"config:set", "myapp", "A B=v"}, `invalid config key "A B"`},
		{[]string{"config:set", "myapp", "GOOD=1", "bad key=2"}, `invalid config key "bad key"`},
		{[]string{"config:set", "myapp", "APP=other"}, "set by hop3"},
		{[]string{"config:set", "myapp", "DATA_DIR=/"}, "set by hop3"},
		{[]string{"config:set", "--restart", "myapp", "A=1"}, "flag provided but not defined: -restart"},
		{[]string{"config:unset", "myapp"}, "missing KEY"},
		{[]string{"config:unset", "myapp", "KEEP", "NOT-A-KEY"}, `invalid config key "NOT-A-KEY"`},
		{[]string{"config:get", "myapp"}, "missing KEY"},
		{[]string{"config:get", "myapp", "A", "B"}, "too many arguments"},
		{[]string{"config:get", "myapp", "$X"}, `invalid config key "$X"`},
		{[]string{"config", "myapp", "extra"}, "too many arguments"},
	}
	for _, tt := range tests {
		r := e.run(admin, "", tt.args...)
		if r.code != exitUsage {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, exitUsage)
		}
		oneFailLine(t, r, tt.want)
		if !strings.Contains(r.stderr, "usage: "+tt.args[0]) {
			t.Errorf("%q: no usage in %q", tt.args, r.stderr)
		}
	}
	if got := e.config("myapp"); len(got) != 1 || got["KEEP"] != "1" {
		t.Errorf("bad input changed config: %v", got)
	}
	if got := e.be.Calls(); len(got) != 0 {
		t.Errorf("bad input reached the backend: %q", got)
	}
	if evs := e.events("myapp"); len(evs) != 1 {
		t.Errorf("bad input recorded events: %+v", evs)
	}
}

func TestConfigLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("new", "")
	e.be.liveEnv = map[string]string{"APP": "myapp", "GREETING": "hi there"}
	r := e.ok("config:live", "myapp")
	if !strings.Contains(r.stdout, "GREETING: hi there") {
		t.Errorf("config:live = %q", r.stdout)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(e.ok("config:live", "--json", "myapp").stdout), &env); err != nil || env["APP"] != "myapp" {
		t.Errorf("config:live --json = %v %v", env, err)
	}
	r = e.run(admin, "", "config:live", "new")
	if r.code != exitFail {
		t.Errorf("config:live of an app never deployed: %+v", r)
	}
	oneFailLine(t, r, "has not been deployed yet")
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("new", "")
	e.ok("restart", "myapp")
	e.ok("stop", "myapp")
	e.ok("ps:start", "myapp")
	e.ok("deploy", "--no-cache", "myapp")
	e.ok("deploy", "myapp")
	for _, cmd := range []string{"restart", "stop", "start"} {
		r := e.run(admin, "", cmd, "new")
		if r.code != exitFail {
			t.Errorf("%s of an app never deployed: exit %d", cmd, r.code)
		}
		oneFailLine(t, r, "has not been deployed yet")
	}
	want := []string{"Restart myapp", "StopApp myapp", "StartApp myapp", "Deploy myapp nocache=true actor=alice", "Deploy myapp nocache=false actor=alice"}
	if got := e.be.Calls(); !slices.Equal(got, want) {
		t.Errorf("backend calls = %q, want %q", got, want)
	}
	var kinds []string
	for _, ev := range e.events("myapp") {
		kinds = append(kinds, ev.Kind)
	}
	if !slices.Equal(kinds, []string{"restart", "stop", "start"}) {
		t.Errorf("events = %q", kinds)
	}
}

func TestScale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "wsgi: app:app\nworker: python worker.py\nrelease: true\ncron1: */5 * * * * true\n")
	e.app("new", "")
	e.ok("ps:scale", "myapp", "worker=3", "wsgi=4")
	// auto reaches the backend as store.ScaleAuto, which the backend takes
	// or refuses (a worker entry is never scaled automatically).
	e.ok("ps:scale", "myapp", "wsgi=auto")
	want := []string{"Scale myapp worker=3 wsgi=4", "Scale myapp wsgi=auto"}
	if got := e.be.Calls(); !slices.Equal(got, want) {
		t.Errorf("backend calls = %q", got)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"ps:scale", "myapp"}, exitUsage, "missing KIND=N"},
		{[]string{"ps:scale", "myapp", "worker"}, exitUsage, `"worker" is not KIND=N`},
		{[]string{"ps:scale", "myapp", "worker=two"}, exitUsage, "not a whole number or auto"},
		{[]string{"ps:scale", "myapp", "wsgi=Auto"}, exitUsage, "not a whole number or auto"},
		{[]string{"ps:scale", "myapp", "wsgi="}, exitUsage, "not a whole number or auto"},
		{[]string{"ps:scale", "myapp", "wrong=auto"}, exitFail, `has no process "wrong"`},
		// Refused by the backend before anything is said or changed.
		{[]string{"ps:scale", "myapp", "wsgi=2", "worker=auto"}, exitFail, "scale worker=auto: only wsgi/asgi entries are scaled automatically"},
		{[]string{"ps:scale", "myapp", "worker=-1"}, exitUsage, "between 0 and 32"},
		{[]string{"ps:scale", "myapp", "worker=33"}, exitUsage, "between 0 and 32"},
		{[]string{"ps:scale", "myapp", "=3"}, exitUsage, "is not KIND=N"},
		{[]string{"ps:scale", "myapp", "wroker=2"}, exitFail, "did you mean worker?"},
		{[]string{"ps:scale", "myapp", "release=1"}, exitFail, `has no process "release"`},
		{[]string{"ps:scale", "myapp", "web=1"}, exitFail, `has no process "web"`},
		{[]string{"ps:scale", "new", "web=1"}, exitFail, "has not been deployed yet"},
	}
	for _, tt := range tests {
		r := e.run(admin, "", tt.args...)
		if r.code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
	}
	if got := e.be.Calls(); len(got) != len(want) {
		t.Errorf("bad scales reached the backend: %q", got)
	}
	var msgs []string
	for _, ev := range e.events("myapp") {
		msgs = append(msgs, ev.Message)
	}
	slices.Sort(msgs)
	if !slices.Equal(msgs, []string{"scaled worker=3 wsgi=4", "scaled wsgi=auto"}) {
		t.Errorf("events = %q", msgs)
	}
}

func TestPs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\nworker: y\n")
	// A real process group, so memory and CPU come from /proc.
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	started := time.Now().Add(-90 * time.Second)
	e.be.procs["myapp"] = []supervisor.Status{
		{Labels: map[string]string{"app": "myapp", "kind": "worker", "index": "1", "release": "1"}, State: supervisor.Backoff, Restarts: 4, LastExit: "exit status 3"},
		{Labels: map[string]string{"app": "myapp", "kind": "web", "index": "1", "release": "1"}, State: supervisor.Running, PID: cmd.Process.Pid, StartedAt: started},
	}
	var rows []processJSON
	eventually(t, func() bool {
		rows = nil
		err := json.Unmarshal([]byte(e.ok("ps", "myapp", "--json").stdout), &rows)
		return err == nil && len(rows) == 2 && rows[0].RSSBytes > 0
	})
	web := rows[0]
	if web.Process != "web.1" || web.State != "running" || web.PID != cmd.Process.Pid || web.UptimeSecs < 89 || web.Release != 1 {
		t.Errorf("web row = %+v", web)
	}
	if w := rows[1]; w.Process != "worker.1" || w.State != "backoff" || w.Restarts != 4 || w.PID != 0 || w.RSSBytes != 0 {
		t.Errorf("worker row = %+v", w)
	}
	r := e.ok("ps", "myapp")
	for _, want := range []string{"PROCESS", "web.1", "running", "1m30s", "MiB", "worker.1", "backoff"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("ps lacks %q:\n%s", want, r.stdout)
		}
	}
	if err := e.st.SetAppState(context.Background(), "myapp", store.AppStopped); err != nil {
		t.Fatal(err)
	}
	e.be.procs["myapp"] = nil
	if r := e.ok("ps", "myapp"); !strings.Contains(r.stderr, "myapp is stopped") {
		t.Errorf("ps of a stopped app: %+v", r)
	}
	if r := e.ok("ps", "myapp", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("ps --json of a stopped app = %q", r.stdout)
	}
}

func eventually(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\nworker: y\n")
	dir := filepath.Join(e.root, "logs", "myapp")
	os.MkdirAll(dir, 0o755)
	var web strings.Builder
	for i := 1; i <= 150; i++ {
		web.WriteString("web line " + itoa(i) + "\n")
	}
	os.WriteFile(filepath.Join(dir, "web.1.log"), []byte(web.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "worker.1.log.1"), []byte("old 1\nold 2\nold 3\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "worker.1.log"), []byte("new 1\nnew 2\npartial"), 0o644)
	os.WriteFile(filepath.Join(dir, "worker.2.log"), []byte("second\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored\n"), 0o644)

	r := e.ok("logs", "myapp", "-n", "3")
	want := "web.1 | web line 148\nweb.1 | web line 149\nweb.1 | web line 150\n" +
		"worker.1 | old 3\nworker.1 | new 1\nworker.1 | new 2\n" +
		"worker.2 | second\n"
	if r.stdout != want {
		t.Errorf("logs -n 3 =\n%s\nwant\n%s", r.stdout, want)
	}
	if r := e.ok("logs", "myapp"); strings.Count(r.stdout, "web.1 | ") != 100 {
		t.Errorf("logs shows %d web lines by default, want 100", strings.Count(r.stdout, "web.1 | "))
	}
	for _, args := range [][]string{{"logs", "myapp", "--process", "worker", "-n", "1"}, {"logs", "myapp", "worker", "-n", "1"}} {
		if r := e.ok(args...); r.stdout != "worker.1 | new 2\nworker.2 | second\n" {
			t.Errorf("%q = %q", args, r.stdout)
		}
	}
	if r := e.ok("logs", "myapp", "-n", "0"); r.stdout != "" {
		t.Errorf("logs -n 0 = %q", r.stdout)
	}
	for _, args := range [][]string{{"logs", "myapp", "-n", "-1"}, {"logs", "myapp", "-n", "x"}, {"logs", "myapp", "a", "b"}, {"logs", "myapp", "--process", "web", "worker"}} {
		if r := e.run(admin, "", args...); r.code != exitUsage {
			t.Errorf("%q: exit %d", args, r.code)
		}
	}
	e.app("quiet", "web: x\n")
	if r := e.ok("logs", "quiet"); !strings.Contains(r.stderr, "no logs yet") {
		t.Errorf("logs of an app without logs: %+v", r)
	}
}

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	dir := filepath.Join(e.root, "logs", "myapp")
	os.MkdirAll(dir, 0o755)
	path := filepath.Join(dir, "web.1.log")
	os.WriteFile(path, []byte("before\n"), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int)
	go func() {
		done <- e.d.Run(ctx, &gitserver.Session{Identity: admin, Args: []string{"logs", "myapp", "-f", "-n", "5"},
			Stdin: strings.NewReader(""), Stdout: out, Stderr: &syncBuffer{}})
	}()
	waitFor := func(want string) {
		t.Helper()
		eventually(t, func() bool { return strings.Contains(out.String(), want) })
	}
	waitFor("web.1 | before\n")
	appendTo(t, path, "after 1\npart")
	waitFor("web.1 | after 1\n")
	appendTo(t, path, "ial\n")
	waitFor("web.1 | partial\n")
	// Rotation as the supervisor does it: the old file renamed to .1 with
	// lines written just before, then a new file.
	appendTo(t, path, "last of old\n")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "first of new\n")
	waitFor("web.1 | first of new\n")
	// A process started later is followed too.
	appendTo(t, filepath.Join(dir, "worker.1.log"), "hello from worker\n")
	waitFor("worker.1 | hello from worker\n")
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("logs -f ended with %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("logs -f did not end with the session")
	}
	got := out.String()
	want := "web.1 | before\nweb.1 | after 1\nweb.1 | partial\nweb.1 | last of old\nweb.1 | first of new\nworker.1 | hello from worker\n"
	if got != want {
		t.Errorf("logs -f =\n%s\nwant\n%s", got, want)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func TestLastLines(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 70<<10) + "\n" + "a\nb\n"
	tests := []struct {
		data    string
		n       int
		want    []string
		wantEnd int
	}{
		{"", 5, nil, 0},
		{"one\ntwo\n", 5, []string{"one", "two"}, 8},
		{"one\ntwo\nthr", 1, []string{"two"}, 8},
		{"one\r\ntwo\r\n", 5, []string{"one", "two"}, 10},
		{"no newline", 3, nil, 0},
		{big, 2, []string{"a", "b"}, len(big)},
		{big, 3, []string{strings.Repeat("x", 70<<10), "a", "b"}, len(big)},
		{"\n\n", 5, []string{"", ""}, 2},
	}
	for _, tt := range tests {
		got, end, err := lastLines(strings.NewReader(tt.data), int64(len(tt.data)), tt.n)
		if err != nil || !slices.Equal(got, tt.want) || end != int64(tt.wantEnd) {
			t.Errorf("lastLines(%.20q, %d) = %q, %d, %v; want %q, %d", tt.data, tt.n, got, end, err, tt.want, tt.wantEnd)
		}
	}
}

func TestRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("new", "")
	e.be.runCode = 3
	r := e.run(admin, "from stdin", "run", "myapp", "--", "sh", "-c", "exit 3", "--json")
	if r.code != 3 || r.stdout != "sh -c exit 3 --json\n" || r.stderr != "from stdin" {
		t.Errorf("run = %+v", r)
	}
	e.be.runCode = 0
	if r := e.run(admin, "", "run", "myapp", "ls", "-la"); r.code != 0 || r.stdout != "ls -la\n" {
		t.Errorf("run without -- = %+v", r)
	}
	for _, args := range [][]string{{"run"}, {"run", "myapp"}, {"run", "myapp", "--"}, {"run", "--", "ls"}} {
		if r := e.run(admin, "", args...); r.code != exitUsage {
			t.Errorf("%q: exit %d", args, r.code)
		}
	}
	if r := e.run(admin, "", "run", "new", "--", "ls"); r.code != exitFail {
		t.Errorf("run in an app never deployed: exit %d", r.code)
	}
	e.be.fail = errors.New("no such file")
	r = e.run(admin, "", "run", "myapp", "--", "nope")
	if r.code != exitFail {
		t.Errorf("run that could not start: %+v", r)
	}
	oneFailLine(t, r, "run in myapp: no such file")
}

func TestReleases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")                      // d1, v1
	e.release("myapp", "web: x\n", store.Failed)    // d2, no number
	e.release("myapp", "web: x\n", store.Succeeded) // d3, v2
	logPath := e.be.BuildLog("myapp", store.Release{Attempt: 2})
	os.MkdirAll(filepath.Dir(logPath), 0o755)
	os.WriteFile(logPath, []byte("-----> Building\n !     it broke\n"), 0o644)

	var rows []releaseJSON
	if err := json.Unmarshal([]byte(e.ok("releases", "myapp", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].Number != 2 || rows[0].Attempt != 3 || !rows[0].Live ||
		rows[1].Status != "failed" || rows[1].Number != 0 || rows[1].Attempt != 2 ||
		rows[2].Live || rows[2].Pusher != "alice" {
		t.Errorf("releases --json = %+v", rows)
	}
	r := e.ok("releases", "myapp")
	for _, want := range []string{"RELEASE", "DEPLOY", "v2", "d3", "succeeded (live)", "d2", "failed", "v1", "ababab", "alice"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("releases lacks %q:\n%s", want, r.stdout)
		}
	}
	r = e.ok("releases:info", "myapp", "d2")
	if !strings.Contains(r.stdout, "Status:    failed") || !strings.Contains(r.stdout, "Release:   -") || !strings.Contains(r.stdout, " !     it broke") {
		t.Errorf("releases:info of a failed deploy:\n%s", r.stdout)
	}
	if r := e.ok("releases:info", "myapp", "1"); !strings.Contains(r.stderr, "no build log") {
		t.Errorf("releases:info without a log: %+v", r)
	}
	// A pruned release says so.
	if err := e.st.MarkPruned(context.Background(), "myapp", 1); err != nil {
		t.Fatal(err)
	}
	if r := e.ok("releases", "myapp"); !strings.Contains(r.stdout, "succeeded (pruned)") {
		t.Errorf("releases does not mark the pruned v1:\n%s", r.stdout)
	}

	e.ok("rollback", "myapp")
	e.ok("rollback", "myapp", "v1")
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"rollback", "myapp", "v2"}, exitFail, "v2 is already live"},
		{[]string{"rollback", "myapp", "v9"}, exitFail, "myapp has no release v9 (its releases are v1 to v2)"},
		{[]string{"rollback", "myapp", "vx"}, exitUsage, `"vx" is not a release number`},
		{[]string{"rollback", "myapp", "0"}, exitUsage, "not a release number"},
		{[]string{"releases:info", "myapp"}, exitUsage, "missing vN"},
		{[]string{"releases:info", "myapp", "v7"}, exitFail, "no release v7"},
		{[]string{"releases:info", "myapp", "d7"}, exitFail, "no deploy d7"},
		{[]string{"releases:info", "myapp", "dx"}, exitUsage, "not a release such as v3 or a deploy such as d7"},
	}
	for _, tt := range tests {
		r := e.run(admin, "", tt.args...)
		if r.code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
	}
	if got := e.be.Calls(); !slices.Equal(got, []string{"Rollback myapp 0 actor=alice", "Rollback myapp 1 actor=alice"}) {
		t.Errorf("backend calls = %q", got)
	}
}

func TestDomains(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("other", "web: x\n")
	e.app("mine", "")
	e.app("hostcfg", "")
	ctx := context.Background()
	if err := e.st.AddDomains(ctx, "other", []string{"taken.example.com", "*.wild.example.com"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetConfig(ctx, "hostcfg", map[string]string{"HOST_NAME": "cfg.example.com, more.example.com"}); err != nil {
		t.Fatal(err)
	}
	e.ok("domains:add", "myapp", "www.example.com", "API.Example.com", "*.apps.example.org", "www.example.com")
	var d domainsJSON
	if err := json.Unmarshal([]byte(e.ok("domains", "myapp", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.Default != "myapp.localhost" || !slices.Equal(d.Domains, []string{"*.apps.example.org", "api.example.com", "www.example.com"}) {
		t.Errorf("domains --json = %+v", d)
	}
	if r := e.ok("domains", "myapp"); r.stdout != "myapp.localhost (default)\n*.apps.example.org\napi.example.com\nwww.example.com\n" {
		t.Errorf("domains = %q", r.stdout)
	}
	e.ok("domains:remove", "myapp", "api.example.com", "never.example.com")
	if got, _ := e.st.Domains(ctx, "myapp"); !slices.Equal(got, []string{"*.apps.example.org", "www.example.com"}) {
		t.Errorf("after remove: %q", got)
	}
	// Adding to an app with no release yet changes no route.
	e.ok("domains:add", "mine", "mine.example.net")
	if got := withoutReads(e.be.Calls()); !slices.Equal(got, []string{"UpdateRoute myapp", "UpdateRoute myapp"}) {
		t.Errorf("backend calls = %q", got)
	}

	tests := []struct {
		id   gitserver.Identity
		args []string
		code int
		want string
	}{
		{admin, []string{"domains:add", "myapp", "taken.example.com"}, exitFail, "host taken.example.com belongs to app other"},
		{admin, []string{"domains:add", "myapp", "*.wild.example.com"}, exitFail, "belongs to app other"},
		{gitserver.Identity{Name: "bob", Apps: []string{"myapp"}}, []string{"domains:add", "myapp", "a.wild.example.com"}, exitFail, "host a.wild.example.com is already used by another app"},
		{gitserver.Identity{Name: "bob", Apps: []string{"myapp"}}, []string{"domains:add", "myapp", "*.example.com"}, exitFail, "host *.example.com is already used by another app"},
		{admin, []string{"domains:add", "myapp", "cfg.example.com"}, exitFail, "belongs to app hostcfg"},
		{admin, []string{"domains:add", "myapp", "other.localhost"}, exitFail, "reserved for an app named other"},
		{admin, []string{"domains:add", "myapp", "future.localhost"}, exitFail, "reserved for an app named future"},
		{admin, []string{"domains:add", "myapp", "x.future.localhost"}, exitFail, "reserved for an app named future"},
		{gitserver.Identity{Name: "bob", Apps: []string{"myapp"}}, []string{"domains:add", "myapp", "*.localhost"}, exitFail, "only an admin key"},
		{gitserver.Identity{Name: "bob", Apps: []string{"myapp"}}, []string{"domains:add", "myapp", "127.0.0.1"}, exitFail, "only an admin key"},
		{admin, []string{"domains:add", "myapp", "ok.example.com", "bad_host"}, exitUsage, `"bad_host" is not a host name`},
		{admin, []string{"domains:add", "myapp", "http://x.com"}, exitUsage, "without scheme"},
		{admin, []string{"domains:add", "myapp", "x.com:8080"}, exitUsage, "without scheme"},
		{admin, []string{"domains:add", "myapp", "x.com."}, exitUsage, "trailing dot"},
		{admin, []string{"domains:add", "myapp", "a.*.com"}, exitUsage, "wildcard may only be the first label"},
		{admin, []string{"domains:add", "myapp", "-x.com"}, exitUsage, "flag provided but not defined"},
		{admin, []string{"domains:add", "myapp", "x-.com"}, exitUsage, "not a host name"},
		{admin, []string{"domains:add", "myapp", "a..b"}, exitUsage, "not a host name"},
		{admin, []string{"domains:add", "myapp", strings.Repeat("a", 64) + ".com"}, exitUsage, "not a host name"},
		{admin, []string{"domains:add", "myapp", strings.Repeat("a.", 130) + "com"}, exitUsage, "too long"},
		{admin, []string{"domains:add", "myapp", "héllo.com"}, exitUsage, "not a host name"},
		{admin, []string{"domains:add", "myapp"}, exitUsage, "missing HOST"},
		{admin, []string{"domains:remove", "myapp", "myapp.localhost"}, exitFail, "can not be removed"},
		{gitserver.Identity{Name: "bob", Apps: []string{"myapp"}}, []string{"domains:add", "myapp", "taken.example.com"}, exitFail, "host taken.example.com is already used by another app"},
	}
	for _, tt := range tests {
		r := e.run(tt.id, "", tt.args...)
		if r.code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
		if tt.id.Name == "bob" && strings.Contains(r.stderr, "other") && !strings.Contains(r.stderr, "another") {
			t.Errorf("a deployer was told the other app's name: %s", r.stderr)
		}
	}
	if got, _ := e.st.Domains(ctx, "myapp"); !slices.Equal(got, []string{"*.apps.example.org", "www.example.com"}) {
		t.Errorf("refused adds changed domains: %q", got)
	}
	if got := withoutReads(e.be.Calls()); len(got) != 2 {
		t.Errorf("refused adds reached the backend: %q", got)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pub := testPublicKey(t)
	r := e.run(admin, pub+"\n", "keys:add", "carol", "--role", "deployer", "--apps", "a,b")
	if r.code != 0 {
		t.Fatalf("keys:add: %+v", r)
	}
	var keys []keyJSON
	if err := json.Unmarshal([]byte(e.ok("keys", "--json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Name != "carol" || keys[0].Role != "deployer" || !slices.Equal(keys[0].Apps, []string{"a", "b"}) || !strings.HasPrefix(keys[0].Fingerprint, "SHA256:") {
		t.Errorf("keys --json = %+v", keys)
	}
	if r := e.ok("keys:list"); !strings.Contains(r.stdout, "carol") || !strings.Contains(r.stdout, "a,b") {
		t.Errorf("keys = %q", r.stdout)
	}
	tests := []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"keys:add", "carol"}, pub, exitFail, "key name already exists"},
		{[]string{"keys:add", "dave"}, pub, exitFail, "already exists as carol"},
		{[]string{"keys:add", "dave"}, "", exitFail, "no public key on stdin"},
		{[]string{"keys:add", "dave"}, "not a key\n", exitFail, "not a public key"},
		{[]string{"keys:add", "bad name"}, pub, exitUsage, "invalid key name"},
		{[]string{"keys:add", "dave", "--role", "root"}, pub, exitUsage, "--role is admin or deployer"},
		{[]string{"keys:add", "dave", "--apps", "x"}, pub, exitUsage, "--apps is for deployer keys"},
		{[]string{"keys:add", "dave", "--role", "deployer", "--apps", "ok,Bad"}, pub, exitUsage, "invalid app name"},
		{[]string{"keys:add"}, pub, exitUsage, "missing NAME"},
		{[]string{"keys:remove", "carl"}, "", exitFail, "no key named carl; did you mean carol?"},
	}
	for _, tt := range tests {
		r := e.run(admin, tt.stdin, tt.args...)
		if r.code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
	}
	e.ok("keys:remove", "carol")
	if r := e.ok("keys", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("keys after remove = %q", r.stdout)
	}
	var msgs []string
	for _, ev := range e.events("") {
		msgs = append(msgs, ev.Kind+": "+ev.Message+" by "+ev.Actor)
	}
	if !slices.Equal(msgs, []string{"key: added key carol (deployer of a,b) by alice", "key: removed key carol by alice"}) {
		t.Errorf("events = %q", msgs)
	}
}

// testPublicKey is an ed25519 public key in authorized_keys form.
func testPublicKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(key))) + " test@example"
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestEventsAndVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("mine", "web: x\n")
	e.app("other", "web: x\n")
	e.ok("config:set", "mine", "A=1")
	e.ok("config:set", "other", "B=2")
	r := e.ok("events")
	if !strings.Contains(r.stdout, "set A") || !strings.Contains(r.stdout, "set B") {
		t.Errorf("events:\n%s", r.stdout)
	}
	r = e.run(bob, "", "events")
	if r.code != 0 || !strings.Contains(r.stdout, "set A") || strings.Contains(r.stdout, "other") {
		t.Errorf("events for a deployer:\n%s", r.stdout)
	}
	if r := e.ok("events", "-n", "1", "other"); strings.Count(r.stdout, "\n") != 2 {
		t.Errorf("events -n 1 other:\n%s", r.stdout)
	}

	r = e.ok("version")
	if !strings.Contains(r.stdout, "hop3     1.2.3") || !strings.Contains(r.stdout, "granian  2.8.7") {
		t.Errorf("version:\n%s", r.stdout)
	}
	caddy := filepath.Join(t.TempDir(), "caddy")
	os.WriteFile(caddy, []byte("#!/bin/sh\necho 'v2.10.2 h1:abcdef='\n"), 0o755)
	e.d.cfg.CaddyBin = caddy
	if r := e.ok("version"); !strings.Contains(r.stdout, "caddy    v2.10.2\n") {
		t.Errorf("version with caddy:\n%s", r.stdout)
	}
}

func TestSessionsShareNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	done := make(chan result, 20)
	for i := range 20 {
		go func() {
			var out, errb syncBuffer
			args := []string{"config:set", "--no-restart", "myapp", "K" + itoa(i) + "=v"}
			if i%2 == 0 {
				args = []string{"config", "--json", "myapp"}
			}
			code := e.d.Run(context.Background(), &gitserver.Session{Identity: admin, Args: args, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
			done <- result{out.String(), errb.String(), code}
		}()
	}
	for range 20 {
		if r := <-done; r.code != 0 {
			t.Errorf("concurrent command failed: %+v", r)
		}
	}
	if got := e.config("myapp"); len(got) != 10 {
		t.Errorf("config after concurrent sets = %v", got)
	}
}

func TestTTYOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var out, errb bytes.Buffer
	code := e.d.Run(context.Background(), &gitserver.Session{Identity: admin, Args: []string{"nope"}, TTY: true,
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	if code != exitUsage || !strings.Contains(errb.String(), "\x1b[") || !strings.HasSuffix(errb.String(), "\r\n") {
		t.Errorf("on a terminal: %q", errb.String())
	}
	errb.Reset()
	e.d.Run(context.Background(), &gitserver.Session{Identity: admin, Args: []string{"nope"}, TTY: true, Env: []string{"NO_COLOR=1"},
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb})
	if strings.Contains(errb.String(), "\x1b[") {
		t.Errorf("coloured with NO_COLOR: %q", errb.String())
	}
	var w bytes.Buffer
	c := &crlfWriter{w: &w}
	c.Write([]byte("a\nb\r\n"))
	c.Write([]byte("\r"))
	c.Write([]byte("\nc\n"))
	if w.String() != "a\r\nb\r\n\r\nc\r\n" {
		t.Errorf("crlf = %q", w.String())
	}
}

func TestBackendFailureReportedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.be.fail = errors.New("remove route: caddy is down")
	r := e.run(admin, "myapp\n", "destroy", "myapp")
	if r.code != exitFail || strings.Count(r.stderr, "caddy is down") != 1 {
		t.Errorf("a failed destroy after the prompt: %+v", r)
	}
	r = e.run(admin, "", "restart", "myapp")
	if r.code != exitFail || strings.Count(r.stderr, "caddy is down") != 1 {
		t.Errorf("a failed restart: %+v", r)
	}
	// Told by the orchestrator already, and marked so: not repeated.
	e.be.say, e.be.told = "remove route: caddy is down", true
	r = e.run(admin, "", "restart", "myapp")
	if r.code != exitFail || strings.Count(r.stderr, "caddy is down") != 1 {
		t.Errorf("a failed restart the orchestrator reported: %+v", r)
	}
	// The mark decides, not the words on the session: a failure line that
	// says the same, from an error not marked, does not hide it.
	e.be.told = false
	r = e.run(admin, "", "restart", "myapp")
	if r.code != exitFail || strings.Count(r.stderr, "caddy is down") != 2 {
		t.Errorf("a failed restart printed but not marked: %+v", r)
	}
	// Nor does an unrelated failure line.
	e.be.say = "routing: something else"
	r = e.run(admin, "", "restart", "myapp")
	if r.code != exitFail || !strings.Contains(r.stderr, "something else") || !strings.Contains(r.stderr, "caddy is down") {
		t.Errorf("a failed restart after another failure line: %+v", r)
	}
}

func TestEventsFollow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("mine", "web: x\n")
	e.app("other", "web: x\n")
	e.ok("config:set", "mine", "A=1")
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int)
	go func() {
		done <- e.d.Run(ctx, &gitserver.Session{Identity: bob, Args: []string{"events", "-f"},
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard})
	}()
	// Events written after the command started appear; another app's do not.
	e.ok("config:set", "other", "HIDDEN=1")
	e.ok("config:set", "mine", "LATER=1")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "set LATER") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("events -f exit %d", code)
	}
	got := out.String()
	if !strings.Contains(got, "set A") || !strings.Contains(got, "set LATER") || strings.Contains(got, "HIDDEN") {
		t.Fatalf("events -f printed:\n%s", got)
	}
}
