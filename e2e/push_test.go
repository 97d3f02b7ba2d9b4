package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func wsgiApp(body string) map[string]string {
	return map[string]string{
		"app.py": fmt.Sprintf(`def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [%q.encode()]
`, body),
		"requirements.txt": "# no dependencies\n",
		"Procfile":         "wsgi: app:app\n",
	}
}

// TestPushToDeploy is the spine: push with git over ssh, served by Granian
// behind Caddy; a second push (thin pack) updates it; broken pushes fail
// loudly and leave the running release serving; strangers and bad names are
// refused; a killed hop3 brings its apps back on the same URL.
func TestPushToDeploy(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	host := "myapp.localhost"

	w := newWorkdir(t, wsgiApp("hello v1"))
	out := w.mustPush(d, alice, "myapp")
	for _, want := range []string{"-----> ", "Python app detected", "is live at http://myapp.localhost:"} {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("first push:\n%s", out)
	wantBody(t, d, host, "/", "hello v1")

	// The second push sends a thin pack against what the server has.
	w.commit("v2", wsgiApp("hello v2"))
	w.mustPush(d, alice, "myapp")
	wantBody(t, d, host, "/", "hello v2")

	t.Run("bad procfile", func(t *testing.T) {
		w.commit("broken procfile", map[string]string{"Procfile": "wsgi app:app\n"})
		out, err := w.push(d, alice, "myapp")
		if err == nil {
			t.Fatalf("push of a bad Procfile succeeded:\n%s", out)
		}
		if !strings.Contains(out, "Procfile line 1") {
			t.Errorf("push output does not name the bad line:\n%s", out)
		}
		wantBody(t, d, host, "/", "hello v2")
		w.git("reset", "-q", "--hard", "HEAD~1")
	})

	t.Run("missing package", func(t *testing.T) {
		w.commit("bad requirement", map[string]string{"requirements.txt": "hop3-no-such-package-zzz==9.9.9\n"})
		out, err := w.push(d, alice, "myapp")
		if err == nil {
			t.Fatalf("push naming a missing package succeeded:\n%s", out)
		}
		if !strings.Contains(out, "hop3-no-such-package-zzz") || !strings.Contains(out, " !     ") {
			t.Errorf("push output does not explain the failure:\n%s", out)
		}
		wantBody(t, d, host, "/", "hello v2")
		w.git("reset", "-q", "--hard", "HEAD~1")
	})

	t.Run("unknown key", func(t *testing.T) {
		mallory := newUser(t, "mallory")
		out, err := w.push(d, mallory, "myapp")
		if err == nil {
			t.Fatalf("push with an unregistered key succeeded:\n%s", out)
		}
		if !strings.Contains(out, "Permission denied") {
			t.Errorf("unexpected output for an unknown key:\n%s", out)
		}
	})

	t.Run("bad names", func(t *testing.T) {
		for _, name := range []string{"../x", "A_B"} {
			out, err := w.push(d, alice, name)
			if err == nil {
				t.Fatalf("push to %q succeeded:\n%s", name, out)
			}
			if !strings.Contains(out, "invalid app name") {
				t.Errorf("push to %q: output lacks the reason:\n%s", name, out)
			}
		}
	})

	t.Run("clone", func(t *testing.T) {
		dst := filepath.Join(t.TempDir(), "clone")
		cmd := exec.Command("git", "clone", "-q", d.remote("myapp"), dst)
		cmd.Env = append(cmd.Environ(), "GIT_SSH_COMMAND="+d.sshCommand(alice))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("clone: %v\n%s", err, out)
		}
		b, err := exec.Command("cat", filepath.Join(dst, "app.py")).Output()
		if err != nil || !strings.Contains(string(b), "hello v2") {
			t.Fatalf("clone has the wrong app.py: %v %s", err, b)
		}
	})

	t.Run("restart brings apps back", func(t *testing.T) {
		addr := d.httpAddr
		d.kill()
		d2 := startDaemon(t, root, addr)
		eventually(t, 30*time.Second, func() error {
			code, body := get(t, d2, host, "/")
			if code != 200 || body != "hello v2" {
				return fmt.Errorf("GET = %d %q", code, body)
			}
			return nil
		})
	})
}
