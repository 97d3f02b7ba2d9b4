package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"hop3/internal/hop3test"
)

// cmdResult is what a command left: its streams and exit status.
type cmdResult struct {
	stdout, stderr string
	code           int
}

func (r cmdResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// shellQuote quotes s for the server's shell-style split of the command
// line: ssh joins its arguments with spaces, so each one is quoted to
// arrive exactly as given.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// command runs `ssh hop3@HOST ARGS...` with the real ssh client, each argument
// arriving on the server exactly as given, with stdin.
func (d *daemon) command(u user, stdin string, args ...string) cmdResult {
	d.t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return runCmd(d.SSH(context.Background(), u.h(), strings.Join(quoted, " ")), stdin)
}

// mustCmd is command, failing the test unless the command succeeds.
func (d *daemon) mustCmd(u user, args ...string) cmdResult {
	d.t.Helper()
	r := d.command(u, "", args...)
	if r.code != 0 {
		d.t.Fatalf("ssh %q: %s", args, r)
	}
	return r
}

// local runs `hop3 ARGS...` on the server, which reaches the daemon through
// its control socket.
func (d *daemon) local(stdin string, args ...string) cmdResult {
	d.t.Helper()
	return runCmd(d.Command(context.Background(), args...), stdin)
}

func runCmd(cmd *exec.Cmd, stdin string) cmdResult {
	var o, e bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &o, &e
	code := hop3test.ExitCode(cmd.Run())
	return cmdResult{o.String(), e.String(), code}
}

// envServer is a web app on $PORT that answers GET /env/NAME with the value
// of its environment variable NAME ("<unset>" when unset) and anything else
// with body; its worker logs a tick with $GREETING every 200 ms.
func envServer(body string) map[string]string {
	return map[string]string{
		"server.py": fmt.Sprintf(`import http.server, os
BODY = %q
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/env/"):
            v = os.environ.get(self.path[5:])
            out = "<unset>" if v is None else v
        else:
            out = BODY
        b = out.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
`, body),
		"Procfile": "web: exec python3 server.py\n" +
			"worker: while true; do echo \"tick $GREETING\"; sleep 0.2; done\n",
	}
}

// staticSite is an app with no process to build or start.
func staticSite(body string) map[string]string {
	return map[string]string{
		"public/index.html": body,
		"Procfile":          "static: public\n",
	}
}

// envOf asks an envServer app for one of its environment variables.
func envOf(t *testing.T, d *daemon, host, name string) string {
	t.Helper()
	code, body := get(t, d, host, "/env/"+name)
	if code != 200 {
		t.Fatalf("GET %s/env/%s = %d %q", host, name, code, body)
	}
	return body
}

// wantFail checks a command failed with the given status and said why in
// one line on stderr, and wrote nothing on stdout.
func wantFail(t *testing.T, r cmdResult, code int, msg string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d: %s", r.code, code, r)
	}
	if !strings.Contains(r.stderr, msg) {
		t.Errorf("stderr lacks %q: %s", msg, r)
	}
	if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); n != 0 {
		t.Errorf("stderr has %d lines, want 1: %s", n+1, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty: %s", r)
	}
}
