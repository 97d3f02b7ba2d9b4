package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hop3/internal/hop3test"
	"hop3/internal/layout"
	"hop3/internal/router"
)

// hop3d is one running `hop3 serve`, started the way its end-to-end tests
// start it: loopback addresses, a key registered with `hop3 keys add`.
type hop3d struct {
	*hop3test.Daemon
	root     string
	httpAddr string // host:port of its Caddy
	user     hop3test.User
}

// startHop3 runs hop3 serve on a fresh root with the tools of `make setup`.
func startHop3(ctx context.Context, env *benchEnv, name string, extraEnv ...string) (*hop3d, error) {
	root, err := shortDir("hb-" + name + "-")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { os.RemoveAll(root) })
	hd, err := hop3test.Start(hop3test.Options{
		Bin: env.hop3Bin, Root: root, Env: extraEnv, Args: []string{"--log-level", "warn"},
		CaddyBin: env.caddyBin, UVBin: env.uvBin, CacheDir: env.buildCache,
		LogPath: filepath.Join(env.work, "hop3-"+name+".log"), ProcessGroup: true,
	})
	if err != nil {
		return nil, err
	}
	env.cleanup(hd.Stop)
	d := &hop3d{Daemon: hd, root: hd.Root, httpAddr: hd.HTTPAddr}
	if d.user, err = hop3test.NewUserIn(root, "bench"); err != nil {
		return nil, err
	}
	if err := d.AddKey(d.user); err != nil {
		return nil, err
	}
	return d, nil
}

// ssh runs `ssh hop3@127.0.0.1 args...` and returns its output and exit code.
func (d *hop3d) ssh(ctx context.Context, args ...string) (string, int) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := d.SSH(ctx, d.user, args...).CombinedOutput()
	return string(out), hop3test.ExitCode(err)
}

// push pushes HEAD of the repository in dir to app's main branch.
func (d *hop3d) push(ctx context.Context, dir, app string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	out, err := (&hop3test.WorkTree{Dir: dir}).Push(ctx, d.Daemon, d.user, app, []string{"-q"})
	if err != nil {
		return out, fmt.Errorf("push %s: %v: %s", app, err, out)
	}
	return out, nil
}

func (d *hop3d) host(app string) string { return app + ".localhost" }

func (d *hop3d) url(path string) string { return "http://" + d.httpAddr + path }

// caddyPID finds the Caddy hop3 runs.
func (d *hop3d) caddyPID() int {
	for _, p := range descendants(d.PID()) {
		if c := cmdline(p.pid); len(c) > 1 && strings.HasSuffix(c[0], "caddy") && c[1] == "run" {
			return p.pid
		}
	}
	return 0
}

// granianPID finds the Granian main process serving app (the leader of its
// process group; its workers are in the same group): the newest, since a
// replaced generation may still be draining.
func (d *hop3d) granianPID(app string) int {
	runDir := layout.New(d.root).Run(app) + "/"
	pid, start := 0, uint64(0)
	for _, p := range descendants(d.PID()) {
		c := cmdline(p.pid)
		// A one-worker wsgi entry runs through hop3's launcher, the venv's
		// python with hop3_granian.py: one process, leading its group.
		line := strings.Join(c, " ")
		if p.pgrp != p.pid || len(c) == 0 || !strings.HasSuffix(c[0], "granian") && !strings.Contains(line, "bin/granian") && !strings.Contains(line, "/hop3_granian.py") {
			continue
		}
		if strings.Contains(line, runDir) && (pid == 0 || p.start >= start) {
			pid, start = p.pid, p.start
		}
	}
	return pid
}

// adminClient talks to hop3's Caddy admin API over its unix socket.
func (d *hop3d) adminClient(timeout time.Duration) *http.Client {
	l := layout.New(d.root)
	socks := router.AdminSockets(l.HeldAdminSocket(), l.Caddy())
	sock := socks[len(socks)-1]
	for _, s := range socks {
		if _, err := os.Stat(s); err == nil {
			sock = s
			break
		}
	}
	return unixClient(sock, timeout)
}

// adminGet fetches a path of hop3's Caddy admin API.
func (d *hop3d) adminGet(ctx context.Context, path string, timeout time.Duration) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://localhost"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := d.adminClient(timeout).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// waitHTTP polls url until it answers 200 with a body containing want.
func waitHTTP(ctx context.Context, url, host, want string, timeout time.Duration) error {
	c := freshClient(5 * time.Second)
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		code, body, err := httpGet(ctx, c, url, host)
		if err == nil && code == 200 && strings.Contains(body, want) {
			return nil
		}
		last = fmt.Sprintf("%d %q %v", code, clip(body, 80), err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s (Host %s) not answering 200 after %s: %s", url, host, timeout, last)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// repo is a local git repository of an app.
type repo struct{ dir string }

// newRepo copies a fixture into a fresh repository and commits it.
func newRepo(env *benchEnv, src, name string) (*repo, error) {
	dir := filepath.Join(env.work, "repos", name)
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := copyTree(src, dir); err != nil {
		return nil, err
	}
	if _, err := hop3test.InitWorkTree(dir, nil); err != nil {
		return nil, err
	}
	return &repo{dir: dir}, nil
}

func (r *repo) git(args ...string) error {
	if out, err := (&hop3test.WorkTree{Dir: r.dir}).Git(nil, args...); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// commit writes files and commits everything (an empty commit when nothing changed).
func (r *repo) commit(msg string, files map[string]string) error {
	return (&hop3test.WorkTree{Dir: r.dir}).Commit(msg, files)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
