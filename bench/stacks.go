package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// uwsgiArgs is the baseline's uWSGI: the master plus 2 single-threaded
// workers on a unix socket, request logging off (as every server here).
func uwsgiArgs(env *benchEnv, appDir, sock string, extra ...string) []string {
	return uwsgiArgsOn(env, appDir, uwsgiProto, sock, extra...)
}

// The sockets uWSGI can serve on: its own protocol, for nginx's uwsgi_pass,
// or HTTP, for a proxy that speaks only HTTP. The HTTP socket answers in
// HTTP/1.1 and closes each connection; its keep-alive variant
// (--http11-socket) holds each single-threaded worker on one proxy
// connection waiting for that connection's next request, so with a proxy's
// pool of connections the others wait in the listen queue until it
// overflows (tried: at 1000 req/s about a quarter of the requests failed).
const (
	uwsgiProto = "--socket"
	uwsgiHTTP  = "--http-socket"
)

func uwsgiArgsOn(env *benchEnv, appDir, sockFlag, sock string, extra ...string) []string {
	args := []string{filepath.Join(env.venv, "bin", "uwsgi"),
		"--master", "--processes", "2", "--threads", "1",
		sockFlag, sock, "--chmod-socket=660",
		"--chdir", appDir, "--module", "app:app", "--virtualenv", env.venv,
		"--disable-logging", "--die-on-term", "--need-app", "--strict"}
	return append(args, extra...)
}

// startUWSGI starts uWSGI on sock and waits until it answers.
func startUWSGI(ctx context.Context, env *benchEnv, name, appDir, sock string, extra ...string) (*proc, error) {
	return startUWSGIOn(ctx, env, name, appDir, uwsgiProto, sock, extra...)
}

// startUWSGIOn starts uWSGI on a socket of the kind sockFlag names and
// waits until it answers, in that socket's protocol.
func startUWSGIOn(ctx context.Context, env *benchEnv, name, appDir, sockFlag, sock string, extra ...string) (*proc, error) {
	os.Remove(sock)
	p, err := startProc("uwsgi "+name, appDir, nil, filepath.Join(env.work, "uwsgi-"+name+".log"), uwsgiArgsOn(env, appDir, sockFlag, sock, extra...)...)
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	get := func() (int, error) {
		code, _, err := uwsgiGet(sock, "/", time.Second)
		return code, err
	}
	if sockFlag == uwsgiHTTP {
		c := unixClient(sock, time.Second)
		get = func() (int, error) {
			code, _, err := httpGet(ctx, c, "http://localhost/", "")
			return code, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, err := get(); err == nil && code == 200 {
			return p, nil
		}
		if p.exited() {
			return nil, fmt.Errorf("uwsgi %s exited: %s", name, logTail(p.log, 10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("uwsgi %s not answering: %s", name, logTail(p.log, 10))
}

// nginxServer is one nginx server block: a loopback port passed to a uWSGI
// socket, or serving the files of root.
type nginxServer struct {
	port int
	sock string
	root string
}

// startNginx runs nginx as Debian ships it (worker_processes auto, access
// log off) with one uwsgi_pass server per entry.
func startNginx(ctx context.Context, env *benchEnv, name string, servers []nginxServer) (*proc, error) {
	dir := filepath.Join(env.work, "nginx-"+name)
	for _, d := range []string{"", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var b strings.Builder
	if os.Geteuid() == 0 {
		// Workers would run as nobody and could not reach the sockets.
		b.WriteString("user root;\n")
	}
	fmt.Fprintf(&b, `worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_max_body_size 64m;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
`, dir)
	for _, s := range servers {
		if s.root != "" {
			fmt.Fprintf(&b, "    server {\n        listen 127.0.0.1:%d;\n        root %s;\n    }\n", s.port, s.root)
			continue
		}
		fmt.Fprintf(&b, `    server {
        listen 127.0.0.1:%d;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:%s;
        }
    }
`, s.port, s.sock)
	}
	b.WriteString("}\n")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("nginx "+name, dir, nil, filepath.Join(dir, "stderr.log"), env.nginxBin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	for _, s := range servers {
		if s.root != "" {
			continue // no index page to probe
		}
		if err := waitHTTP(ctx, "http://127.0.0.1:"+strconv.Itoa(s.port)+"/", "", "", 15*time.Second); err != nil {
			return nil, fmt.Errorf("nginx %s: %v; %s", name, err, logTail(filepath.Join(dir, "error.log"), 5))
		}
	}
	return p, nil
}

// granianTemplate is how hop3 runs an app's Granian, read from the running
// process: argv, environment and working directory.
type granianTemplate struct {
	argv []string
	env  []string
	dir  string
}

func readGranian(pid int) (granianTemplate, error) {
	t := granianTemplate{argv: cmdline(pid), env: environ(pid), dir: procCwd(pid)}
	if len(t.argv) == 0 || t.dir == "" {
		return t, fmt.Errorf("cannot read Granian process %d", pid)
	}
	return t, nil
}

// withFlag returns argv with a flag's value replaced, or the flag added
// before the app target (the last argument); an empty value removes it.
func withFlag(argv []string, flag, value string) []string {
	out := make([]string, 0, len(argv)+2)
	found := false
	for i := 0; i < len(argv); i++ {
		if argv[i] == flag && i+1 < len(argv)-1 {
			found = true
			if value != "" {
				out = append(out, flag, value)
			}
			i++
			continue
		}
		out = append(out, argv[i])
	}
	if !found && value != "" {
		last := out[len(out)-1]
		out = append(append(out[:len(out)-1:len(out)-1], flag, value), last)
	}
	return out
}

// onTCP turns a unix-socket argv into one listening on a loopback port.
func onTCP(argv []string, port int) []string {
	argv = withFlag(argv, "--uds", "")
	argv = withFlag(argv, "--uds-permissions", "")
	argv = withFlag(argv, "--host", "127.0.0.1")
	return withFlag(argv, "--port", strconv.Itoa(port))
}

// startGranian runs a Granian from a template with argv and waits until it
// answers GET / (over the socket, or on the port).
func startGranian(ctx context.Context, env *benchEnv, name string, t granianTemplate, argv []string, extraEnv ...string) (*proc, error) {
	sock := flagValue(argv, "--uds")
	if sock != "" {
		os.Remove(sock)
	}
	p, err := startProc("granian "+name, t.dir, append(append([]string{}, t.env...), extraEnv...), filepath.Join(env.work, "granian-"+name+".log"), argv...)
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	if err := waitGranian(ctx, p, argv, 60*time.Second); err != nil {
		return nil, fmt.Errorf("granian %s: %v: %s", name, err, logTail(p.log, 10))
	}
	return p, nil
}

func waitGranian(ctx context.Context, p *proc, argv []string, timeout time.Duration) error {
	sock := flagValue(argv, "--uds")
	url := "http://127.0.0.1:" + flagValue(argv, "--port") + "/"
	c := freshClient(2 * time.Second)
	if sock != "" {
		url, c = "http://localhost/", unixClient(sock, 2*time.Second)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if code, _, err := httpGet(ctx, c, url, ""); err == nil && code == 200 {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("exited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("not answering after %s", timeout)
}

func flagValue(argv []string, flag string) string {
	for i := 0; i+1 < len(argv); i++ {
		if argv[i] == flag {
			return argv[i+1]
		}
	}
	return ""
}

// caddyReplica is a Caddy started by the benchmark with the config hop3
// loaded into its own Caddy (read back from the admin API), changed only
// where a tuning experiment says so.
type caddyReplica struct {
	proc *proc
	port int
}

// walkProxies calls f on every reverse_proxy handler of a config.
func walkProxies(v any, f func(map[string]any)) {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == "reverse_proxy" {
			f(x)
		}
		for _, c := range x {
			walkProxies(c, f)
		}
	case []any:
		for _, c := range x {
			walkProxies(c, f)
		}
	}
}

// startCaddyReplica runs Caddy with cfg (hop3's config as JSON), listening
// on a fresh port with its admin API on its own socket; mod changes the
// decoded config first.
func startCaddyReplica(ctx context.Context, env *benchEnv, name string, cfg []byte, caddyEnv []string, mod func(cfg map[string]any)) (*caddyReplica, error) {
	return startCaddyBin(ctx, env, env.caddyBin, name, cfg, caddyEnv, mod)
}

// startCaddyBin is startCaddyReplica with another Caddy binary.
func startCaddyBin(ctx context.Context, env *benchEnv, bin, name string, cfg []byte, caddyEnv []string, mod func(cfg map[string]any)) (*caddyReplica, error) {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return nil, err
	}
	dir, err := shortDir("hb-caddy-")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m["admin"] = map[string]any{"listen": "unix/" + filepath.Join(dir, "admin.sock"), "config": map[string]any{"persist": false}}
	srv := m["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)["hop3"].(map[string]any)
	srv["listen"] = []any{"127.0.0.1:" + strconv.Itoa(port)}
	if mod != nil {
		mod(m)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "caddy.json")
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		return nil, err
	}
	cenv := append([]string{"XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir}, caddyEnv...)
	p, err := startProc("caddy "+name, dir, cenv, filepath.Join(env.work, "caddy-"+name+".log"), bin, "run", "--config", conf)
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	// Any answer (the catch-all's 404) means the server runs.
	deadline := time.Now().Add(15 * time.Second)
	c := freshClient(time.Second)
	for {
		if code, _, err := httpGet(ctx, c, "http://127.0.0.1:"+strconv.Itoa(port)+"/", "nobody.invalid"); err == nil && code == 404 {
			break
		}
		if p.exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("caddy replica %s not serving: %s", name, logTail(p.log, 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &caddyReplica{proc: p, port: port}, nil
}
