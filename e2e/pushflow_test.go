package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hop3/internal/store"
)

// trackedPush pushes HEAD to app's main through a named remote, "hop3", so
// that git keeps a tracking ref (hop3/main) as a user's clone does.
func trackedPush(w *workdir, d *daemon, u user, app string) (string, error) {
	w.t.Helper()
	if _, err := w.gitErr(nil, "remote", "get-url", "hop3"); err != nil {
		w.git("remote", "add", "hop3", d.remote(app))
	}
	return w.gitErr([]string{"GIT_SSH_COMMAND=" + d.sshCommand(u)}, "push", "hop3", "HEAD:main")
}

// TestPushFlowRejectedBeforeRefMoves: a deploy runs inside git's
// pre-receive step, so a push whose release command fails is refused by
// git itself. Neither the server's branch nor the client's tracking ref
// moves, the old release serves on, and the failed attempt uses up no
// release number, though it is listed with its build log.
func TestPushFlowRejectedBeforeRefMoves(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "gate", "gate.localhost"
	w := newWorkdir(t, staticSite("<h1>gate v1</h1>\n"))
	if out, err := trackedPush(w, d, alice, app); err != nil {
		t.Fatalf("first push: %v\n%s", err, out)
	}
	wantBody(t, d, host, "/", "<h1>gate v1</h1>\n")
	tracking := strings.TrimSpace(w.git("rev-parse", "hop3/main"))
	serverRev := remoteRef(t, root, app, "refs/heads/main")
	if tracking != serverRev {
		t.Fatalf("hop3/main is %s, the server's main %s", tracking, serverRev)
	}

	files := staticSite("<h1>gate v2</h1>\n")
	files["Procfile"] = "static: public\nrelease: echo migrating; exit 3\n"
	w.commit("release command fails", files)
	out, err := trackedPush(w, d, alice, app)
	if err == nil {
		t.Fatalf("a push whose release command fails succeeded:\n%s", out)
	}
	t.Logf("refused push:\n%s", out)
	if !strings.Contains(out, "! [remote rejected] HEAD -> main (pre-receive hook declined)") {
		t.Errorf("git does not report the push rejected:\n%s", out)
	}
	if strings.Contains(out, tracking[:7]+"..") {
		t.Errorf("git reports the ref updated:\n%s", out)
	}
	oneLineFailure(t, out, "release command failed: exit status 3")
	wantPushOutput(t, out, "migrating", "took no release number", "releases:info gate d2")
	if got := strings.TrimSpace(w.git("rev-parse", "hop3/main")); got != tracking {
		t.Errorf("the client's hop3/main moved from %s to %s", tracking, got)
	}
	if got := remoteRef(t, root, app, "refs/heads/main"); got != serverRev {
		t.Errorf("the server's main moved from %s to %s", serverRev, got)
	}
	wantBody(t, d, host, "/", "<h1>gate v1</h1>\n")

	// The attempt is listed, numbered d2, with no release number, and its
	// log holds the release command's output.
	rels := decode[[]releaseRow](t, d.mustCmd(alice, "releases", app, "--json"))
	if len(rels) != 2 || rels[0].Number != 0 || rels[0].Status != "failed" || rels[1].Number != 1 || !rels[1].Live {
		t.Fatalf("releases after the refused push: %+v", rels)
	}
	list := d.mustCmd(alice, "releases", app)
	for _, want := range []string{"d2", "failed", "release command failed", "succeeded (live)"} {
		if !strings.Contains(list.stdout, want) {
			t.Errorf("releases lacks %q:\n%s", want, list.stdout)
		}
	}
	info := d.mustCmd(alice, "releases:info", app, "d2")
	for _, want := range []string{"Status:    failed", "=== build log", "migrating", "release command failed: exit status 3"} {
		if !strings.Contains(info.stdout, want) {
			t.Errorf("releases:info %s d2 lacks %q:\n%s", app, want, info.stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "apps", app, "releases", "2")); !os.IsNotExist(err) {
		t.Errorf("the refused attempt left its directory: %v", err)
	}

	// So is a push whose worker exits as it starts.
	w.dropLast()
	files = staticSite("<h1>gate v2</h1>\n")
	files["Procfile"] = "static: public\nworker: echo giving up; exit 1\n"
	w.commit("worker exits at start", files)
	out, err = trackedPush(w, d, alice, app)
	if err == nil || !strings.Contains(out, "[remote rejected]") {
		t.Fatalf("a push whose worker exits at start was not refused (%v):\n%s", err, out)
	}
	if got := strings.TrimSpace(w.git("rev-parse", "hop3/main")); got != tracking {
		t.Errorf("the client's hop3/main moved from %s to %s", tracking, got)
	}
	wantBody(t, d, host, "/", "<h1>gate v1</h1>\n")

	// The next good push becomes v2: the refused ones used up no number.
	w.dropLast()
	w.commit("v2", staticSite("<h1>gate v2</h1>\n"))
	out, err = trackedPush(w, d, alice, app)
	if err != nil {
		t.Fatalf("good push: %v\n%s", err, out)
	}
	wantPushOutput(t, out, "gate v2 is live at")
	wantBody(t, d, host, "/", "<h1>gate v2</h1>\n")
	if got, server := strings.TrimSpace(w.git("rev-parse", "hop3/main")), remoteRef(t, root, app, "refs/heads/main"); got != server || got == tracking {
		t.Errorf("after a good push hop3/main is %s, the server's main %s (was %s)", got, server, tracking)
	}
	rels = decode[[]releaseRow](t, d.mustCmd(alice, "releases", app, "--json"))
	if len(rels) != 4 || rels[0].Number != 2 || !rels[0].Live {
		t.Fatalf("releases after the good push: %+v", rels)
	}
}

// TestPushFlowReleaseSizeCap pushes releases bigger than the server's cap
// (--max-release-size) and than an app's lower MAX_RELEASE_SIZE: each push
// fails before anything is written, with one line naming the size and the
// cap, and the running release serves on. An app's value never raises the
// server's cap.
func TestPushFlowReleaseSizeCap(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--max-release-size", "2MiB")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "capped", "capped.localhost"
	w := newWorkdir(t, staticSite("<h1>capped v1</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "<h1>capped v1</h1>\n")

	zeros := func(name string, n int) {
		t.Helper()
		// Zeros compress to almost nothing: the pack is small, the checkout not.
		if err := os.WriteFile(filepath.Join(w.dir, "public", name), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(want string) {
		t.Helper()
		out, err := w.push(d, alice, app)
		if err == nil {
			t.Fatalf("a push over the cap deployed:\n%s", out)
		}
		t.Logf("push over the cap:\n%s", out)
		oneLineFailure(t, out, want)
		if !strings.Contains(out, "[remote rejected]") {
			t.Errorf("git does not report the push rejected:\n%s", out)
		}
		wantBody(t, d, host, "/", "<h1>capped v1</h1>\n")
		if n := releaseDirNumbers(t, d, app); len(n) != 1 || n[0] != 1 {
			t.Errorf("release directories %v, want only v1's", n)
		}
		w.dropLast()
	}

	zeros("big.bin", 3<<20)
	w.commit("3 MiB of zeros", nil)
	refused("over the cap of 2 MiB")

	// An app may not raise the server's cap...
	d.mustCmd(alice, "config:set", "--no-restart", app, "MAX_RELEASE_SIZE=1GiB")
	zeros("big.bin", 3<<20)
	w.commit("3 MiB of zeros again", nil)
	refused("over the cap of 2 MiB")

	// ...nor set what is not a size...
	if r := d.command(alice, "", "config:set", "--no-restart", app, "MAX_RELEASE_SIZE=lots"); r.code == 0 || !strings.Contains(r.stderr, "MAX_RELEASE_SIZE") {
		t.Errorf("config:set of MAX_RELEASE_SIZE=lots: %s", r)
	}
	// ...but may lower it.
	d.mustCmd(alice, "config:set", "--no-restart", app, "MAX_RELEASE_SIZE=512KiB")
	zeros("big.bin", 1<<20)
	w.commit("1 MiB of zeros", nil)
	refused("over the cap of 512 KiB")

	w.commit("small", staticSite("<h1>capped v2</h1>\n"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "<h1>capped v2</h1>\n")
}

// TestPushFlowStateInRelease: an app that writes files into its release
// directory (here a worker creating state.db) hears about them on its next
// push, which names them and points to DATA_DIR. The app has no web
// process, and its push says so instead of printing a URL.
func TestPushFlowStateInRelease(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app = "stateful"
	files := map[string]string{
		"Procfile": "worker: echo rows > state.db; mkdir -p uploads; for i in 1 2 3 4 5 6; do echo x > uploads/$i.png; done; exec sleep 1000\n",
	}
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, app)
	wantPushOutput(t, out, "stateful v1 is live; it has no web process, so no URL routes to it")
	if strings.Contains(out, "http://") {
		t.Errorf("a worker-only app's push prints a URL:\n%s", out)
	}
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(root, "apps", app, "releases", "1", "uploads", "6.png"))
		return err
	})

	w.commit("v2", map[string]string{"README": "v2\n"})
	out = w.mustPush(d, alice, app)
	t.Logf("second push:\n%s", out)
	wantPushOutput(t, out, "v1 wrote 7 file(s) into its release directory since it was built", "state.db", "and 2 more", "DATA_DIR", filepath.Join(root, "data", app))
	if !bytes.Contains([]byte(out), []byte("uploads/1.png")) {
		t.Errorf("the warning does not name the uploads:\n%s", out)
	}

	// The next push, from a release that wrote the same again, warns again;
	// an app that writes nothing is not warned about (checked at v1's push).
	st := openStore(t, root)
	a, err := st.App(context.Background(), app)
	if err != nil || a.Release != 2 {
		t.Fatalf("live release %d, %v; want v2", a.Release, err)
	}
	if rels := releasesOf(t, root, app); rels[0].Status != store.Succeeded {
		t.Fatalf("releases: %+v", rels)
	}
}
