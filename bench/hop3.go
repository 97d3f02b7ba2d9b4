package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"hop3/internal/layout"
	"hop3/internal/router"
)

// hop3d is one running `hop3 serve`, started the way its end-to-end tests
// start it: loopback addresses, a key registered with `hop3 keys add`.
type hop3d struct {
	bin      string
	root     string
	sshPort  string
	httpAddr string // host:port of its Caddy
	key      string // private key registered as an admin
	proc     *proc
}

var readyLine = regexp.MustCompile(`hop3 ready: ssh=(\S+) http=(\S+)`)

// startHop3 runs hop3 serve on a fresh root with the tools of `make setup`.
func startHop3(ctx context.Context, env *benchEnv, name string, extraEnv ...string) (*hop3d, error) {
	root, err := shortDir("hb-" + name + "-")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { os.RemoveAll(root) })
	args := []string{env.hop3Bin, "serve", "--root", root, "--ssh-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--caddy-bin", env.caddyBin, "--uv", env.uvBin, "--cache-dir", env.buildCache, "--log-level", "warn"}
	logPath := filepath.Join(env.work, "hop3-"+name+".log")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), extraEnv...)
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: "hop3 " + name, cmd: cmd, log: logPath, done: make(chan struct{})}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := readyLine.FindStringSubmatch(sc.Text()); m != nil {
				ready <- m
			}
		}
	}()
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	d := &hop3d{bin: env.hop3Bin, root: root, proc: p}
	select {
	case m := <-ready:
		d.sshPort = m[1][strings.LastIndex(m[1], ":")+1:]
		d.httpAddr = m[2]
	case <-p.done:
		return nil, fmt.Errorf("hop3 serve exited before it was ready: %s", logTail(logPath, 10))
	case <-time.After(90 * time.Second):
		p.stop(5 * time.Second)
		return nil, fmt.Errorf("hop3 serve not ready after 90s: %s", logTail(logPath, 10))
	}
	env.cleanup(func() { d.stop() })
	if err := d.addKey(env); err != nil {
		return nil, err
	}
	return d, nil
}

// stop ends hop3 gracefully: it stops its apps and its Caddy.
func (d *hop3d) stop() {
	if d.proc.exited() {
		return
	}
	_ = d.proc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.proc.done:
	case <-time.After(60 * time.Second):
		_ = syscall.Kill(-d.proc.pid(), syscall.SIGKILL)
		<-d.proc.done
	}
}

func (d *hop3d) addKey(env *benchEnv) error {
	key := filepath.Join(d.root, "bench_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", key).CombinedOutput(); err != nil {
		return fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		return err
	}
	cmd := exec.Command(d.bin, "keys", "add", "bench")
	cmd.Env = append(os.Environ(), "HOP3_ROOT="+d.root)
	cmd.Stdin = bytes.NewReader(pub)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("hop3 keys add: %v: %s", err, out)
	}
	d.key = key
	return nil
}

func (d *hop3d) sshCommand() string {
	return fmt.Sprintf("ssh -i %s -p %s -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o BatchMode=yes -o LogLevel=ERROR", d.key, d.sshPort)
}

// ssh runs `ssh hop3@127.0.0.1 args...` and returns its output and exit code.
func (d *hop3d) ssh(ctx context.Context, args ...string) (string, int) {
	full := append(strings.Fields(d.sshCommand())[1:], "hop3@127.0.0.1")
	full = append(full, args...)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", full...).CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return string(out), code
}

// push pushes HEAD of the repository in dir to app's main branch.
func (d *hop3d) push(ctx context.Context, dir, app string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "push", "-q", "ssh://hop3@127.0.0.1:"+d.sshPort+"/"+app, "HEAD:main")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_SSH_COMMAND="+d.sshCommand())
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("push %s: %v: %s", app, err, out)
	}
	return string(out), nil
}

func (d *hop3d) host(app string) string { return app + ".localhost" }

func (d *hop3d) url(path string) string { return "http://" + d.httpAddr + path }

// caddyPID finds the Caddy hop3 runs.
func (d *hop3d) caddyPID() int {
	for _, p := range descendants(d.proc.pid()) {
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
	for _, p := range descendants(d.proc.pid()) {
		c := cmdline(p.pid)
		if p.pgrp != p.pid || len(c) == 0 || !strings.HasSuffix(c[0], "granian") && !strings.Contains(strings.Join(c, " "), "bin/granian") {
			continue
		}
		if strings.Contains(strings.Join(c, " "), runDir) && (pid == 0 || p.start >= start) {
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
	r := &repo{dir: dir}
	if err := r.git("init", "-q", "-b", "main"); err != nil {
		return nil, err
	}
	return r, r.commit("initial", nil)
}

func (r *repo) git(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost",
		"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// commit writes files and commits everything (an empty commit when nothing changed).
func (r *repo) commit(msg string, files map[string]string) error {
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := r.git("add", "-A"); err != nil {
		return err
	}
	return r.git("commit", "-q", "--allow-empty", "-m", msg)
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
