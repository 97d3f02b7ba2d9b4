package hop3test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseReady(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want map[string]string
	}{
		{"hop3 ready: ssh=127.0.0.1:2222 http=127.0.0.1:8080 root=/r", true,
			map[string]string{"ssh": "127.0.0.1:2222", "http": "127.0.0.1:8080", "root": "/r"}},
		{"hop3 ready: ssh=127.0.0.1:1 http=127.0.0.1:2 root=/r metrics=127.0.0.1:3 https=127.0.0.1:4", true,
			map[string]string{"ssh": "127.0.0.1:1", "http": "127.0.0.1:2", "root": "/r", "metrics": "127.0.0.1:3", "https": "127.0.0.1:4"}},
		{"hop3 ready: root=/r", false, nil},
		{"starting: ssh=127.0.0.1:1 http=127.0.0.1:2", false, nil},
		{"", false, nil},
	} {
		got, ok := ParseReady(tc.line)
		if ok != tc.ok || len(got) != len(tc.want) {
			t.Errorf("ParseReady(%q) = %v, %v; want %v, %v", tc.line, got, ok, tc.want, tc.ok)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("ParseReady(%q)[%s] = %q, want %q", tc.line, k, got[k], v)
			}
		}
	}
}

func TestLoadResultCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       LoadResult
		percent int
		wantErr string
	}{
		{"all answered", LoadResult{OK: 200}, 2, ""},
		{"too little", LoadResult{OK: 99}, 2, "too little load"},
		{"a reset", LoadResult{OK: 200, Reset: 1, FirstBad: "reset"}, 2, "first: reset"},
		{"a wrong answer", LoadResult{OK: 200, Bad: 1}, 2, "requests failed"},
		{"few unanswered", LoadResult{OK: 196, Unanswered: 4}, 2, ""},
		{"too many unanswered", LoadResult{OK: 195, Unanswered: 5}, 2, "more than 2%"},
	} {
		err := tc.r.Check(100, tc.percent)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
	if got, want := (LoadResult{OK: 3, Unanswered: 2, Reset: 1, Bad: 1}).String(),
		"7 requests: 3 answered, 2 closed unanswered, 1 reset, 1 wrong answers or other errors"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

// TestLoadSortsOutcomes runs a load against a server that answers right,
// answers wrong and closes connections unanswered, in turn.
func TestLoadSortsOutcomes(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.Host != "app.test" {
			http.Error(w, "wrong host "+r.Host, 404)
			return
		}
		switch i % 3 {
		case 0:
			w.Write([]byte("right"))
		case 1:
			w.Write([]byte("wrong"))
		default:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		}
	}))
	defer srv.Close()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	l := StartLoad(c, srv.URL+"/", "app.test", func(status int, body string) bool { return status == 200 && body == "right" }, 2)
	time.Sleep(200 * time.Millisecond)
	r := l.Stop()
	if r.OK == 0 || r.Bad == 0 || r.Unanswered == 0 || r.Reset != 0 {
		t.Fatalf("outcomes not sorted: %s", r)
	}
	if r.Bodies["right"] != r.OK || len(r.Bodies) != 1 {
		t.Errorf("bodies %v, want %d of \"right\" only", r.Bodies, r.OK)
	}
	if r.FirstErr == "" {
		t.Error("no first failure recorded")
	}
	if !strings.Contains(r.FirstBad, `"wrong"`) {
		t.Errorf("first bad = %q, want the wrong answer", r.FirstBad)
	}
	// Get sends the Host header it is given, whatever the address.
	n.Store(2)
	if code, body, err := Get(strings.TrimPrefix(srv.URL, "http://"), "app.test", "/"); err != nil || code != 200 || body != "right" {
		t.Errorf("Get = %d %q %v, want 200 \"right\"", code, body, err)
	}
}

func TestWorkTreeCommit(t *testing.T) {
	w, err := InitWorkTree(t.TempDir(), map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("drop a", map[string]string{"a.txt": ""}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit("nothing", nil); err != nil {
		t.Fatalf("an empty commit: %v", err)
	}
	out, err := w.Git(nil, "log", "--format=%s", "--name-status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"nothing", "drop a\n\nD\ta.txt", "initial\n\nA\ta.txt\nA\tsub/b.txt"} {
		if !strings.Contains(out, want) {
			t.Errorf("git log lacks %q:\n%s", want, out)
		}
	}
	if out, _ := w.Git(nil, "branch", "--show-current"); strings.TrimSpace(out) != "main" {
		t.Errorf("branch = %q, want main", out)
	}
}

func TestNewUser(t *testing.T) {
	u := NewUser(t, "alice")
	pub, err := u.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, "ssh-ed25519 ") || !strings.Contains(pub, " alice") {
		t.Errorf("public key = %q", pub)
	}
	d := &Daemon{SSHPort: "2222"}
	if got := d.SSHCommand(u); !strings.Contains(got, "-i "+u.Key+" -p 2222 ") {
		t.Errorf("SSHCommand = %q", got)
	}
	if got, want := d.Remote("app"), "ssh://hop3@127.0.0.1:2222/app"; got != want {
		t.Errorf("Remote = %q, want %q", got, want)
	}
}

func TestStartCaddy(t *testing.T) {
	bin, err := FindTool("caddy")
	if err != nil {
		t.Skip(err)
	}
	c := StartCaddy(t, bin, ShortTemp(t), func(port int) string {
		return `{"http": {"servers": {"owner": {"listen": ["127.0.0.1:` + strconv.Itoa(port) + `"], "automatic_https": {"disable": true},
			"routes": [{"handle": [{"handler": "static_response", "body": "owner here"}]}]}}}}`
	})
	code, body, err := Get(net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), "any.test", "/")
	if err != nil || code != 200 || body != "owner here" {
		t.Fatalf("owner's server: %d %q %v", code, body, err)
	}
	resp, err := c.Admin.Get("http://127.0.0.1/config/apps/http/servers/owner/listen")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("admin API: %s", resp.Status)
	}
}

func TestLogTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := LogTail(p, 2); got != "two\nthree" {
		t.Errorf("LogTail = %q", got)
	}
	if got := LogTail(filepath.Join(t.TempDir(), "none"), 2); got != "" {
		t.Errorf("LogTail of a missing file = %q", got)
	}
}

// fakeHop3 writes a script that stands for hop3 serve.
func fakeHop3(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hop3")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStartReadsReadyLine(t *testing.T) {
	bin := fakeHop3(t, `echo "starting" >&2
echo "hop3 ready: ssh=127.0.0.1:4022 http=127.0.0.1:4080 root=$3 metrics=127.0.0.1:4090"
exec sleep 60
`)
	d, err := Start(Options{Bin: bin, Root: t.TempDir(), CaddyBin: "caddy", UVBin: "uv"})
	if err != nil {
		t.Fatal(err)
	}
	if d.SSHPort != "4022" || d.HTTPAddr != "127.0.0.1:4080" || d.Ready["metrics"] != "127.0.0.1:4090" || d.Ready["root"] != d.Root {
		t.Errorf("ready: ssh port %q, http %q, fields %v", d.SSHPort, d.HTTPAddr, d.Ready)
	}
	d.Stop()
	if !d.Exited() {
		t.Error("still running after Stop")
	}
	if !strings.Contains(d.Log(), "starting") {
		t.Errorf("log = %q", d.Log())
	}
}

func TestStartReportsEarlyExit(t *testing.T) {
	bin := fakeHop3(t, "echo 'cannot bind: address in use' >&2\nexit 1\n")
	_, err := Start(Options{Bin: bin, Root: t.TempDir(), CaddyBin: "caddy", UVBin: "uv"})
	if err == nil || !strings.Contains(err.Error(), "exited before it was ready") || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("Start = %v, want the exit and the log's last lines", err)
	}
}
