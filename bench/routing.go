package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/internal/router"
)

func benchRoute(dir, app, sock string) router.Route {
	return router.Route{
		App:       app,
		Hosts:     []string{app + ".localhost"},
		Upstreams: []string{"unix/" + filepath.Join(dir, "run", app, sock)},
	}
}

func benchRoutes(dir string, n int, sock string) []router.Route {
	out := make([]router.Route, n)
	for i := range out {
		out[i] = benchRoute(dir, fmt.Sprintf("app%04d", i), sock)
	}
	return out
}

func scenarioRouting(ctx context.Context, env *benchEnv) (string, error) {
	dir, err := shortDir("hb-route-")
	if err != nil {
		return "", err
	}
	env.cleanup(func() { os.RemoveAll(dir) })
	port, err := freePort()
	if err != nil {
		return "", err
	}
	admin := "unix/" + filepath.Join(dir, "admin.sock")
	opts := router.Options{HTTPAddr: "127.0.0.1:" + strconv.Itoa(port), TLS: router.TLSOff, AdminListen: admin + "|0600", Domain: "localhost"}
	client, err := router.NewClient(admin)
	if err != nil {
		return "", err
	}
	rt := router.New(opts, client, nil)
	procs := max(1, runtime.NumCPU()/2) // what cmd/hop3 gives its Caddy
	caddy, err := router.StartCaddy(ctx, router.ProcessOptions{Bin: env.caddyBin, Dir: filepath.Join(dir, "caddy"),
		Env: []string{"GOMAXPROCS=" + strconv.Itoa(procs)}}, rt, nil)
	if err != nil {
		return "", err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = caddy.Stop(sctx)
	}()

	var b strings.Builder
	b.WriteString("`internal/router`'s Router against a real Caddy it started (`router.StartCaddy`, `GOMAXPROCS=" + strconv.Itoa(procs) + "` as hop3 gives it). ")
	b.WriteString("With N apps registered (one `Sync`), one more app's route is added (`Set`: `PUT /id/hop3_server/routes/0`), replaced with another upstream (`Set`: `PATCH /id/hop3_app_<app>`) and removed (`Remove`: `DELETE /id/hop3_app_<app>`). ")
	b.WriteString("Each call returns once Caddy has loaded the new config (Caddy reloads its whole config on every change). ")
	b.WriteString("After each kind of call the benchmark checks through the admin API that the route is there, or gone.\n\n")
	b.WriteString("| apps registered | add: median | p90 | replace: median | p90 | remove: median | p90 |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	extra := func(sock string) router.Route { return benchRoute(dir, "benchx", sock) }
	hop3Times := map[int][2][]time.Duration{}
	for _, n := range []int{1, 10, 100, 1000} {
		if err := rt.Sync(ctx, benchRoutes(dir, n, "web.sock")); err != nil {
			return b.String(), err
		}
		iters := 20
		if n >= 1000 {
			iters = 10
		}
		var add, repl, rem []time.Duration
		for i := 0; i < iters; i++ {
			t0 := time.Now()
			if err := rt.Set(ctx, extra("a.sock")); err != nil {
				return b.String(), err
			}
			add = append(add, time.Since(t0))
			if i == 0 {
				if err := client.Get(ctx, "/id/"+router.AppID("benchx"), nil); err != nil {
					return b.String(), fmt.Errorf("route not in Caddy after Set: %w", err)
				}
			}
			t0 = time.Now()
			if err := rt.Set(ctx, extra("b.sock")); err != nil {
				return b.String(), err
			}
			repl = append(repl, time.Since(t0))
			t0 = time.Now()
			if err := rt.Remove(ctx, "benchx"); err != nil {
				return b.String(), err
			}
			rem = append(rem, time.Since(t0))
			if i == 0 {
				if err := client.Get(ctx, "/id/"+router.AppID("benchx"), nil); !router.IsNotFound(err) {
					return b.String(), fmt.Errorf("route still in Caddy after Remove: %v", err)
				}
			}
		}
		hop3Times[n] = [2][]time.Duration{add, rem}
		logf("routing %d apps: add %s, replace %s, remove %s", n, fmtDur(medianDur(add)), fmtDur(medianDur(repl)), fmtDur(medianDur(rem)))
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", n, fmtDur(medianDur(add)), fmtDur(percentile(add, 90)),
			fmtDur(medianDur(repl)), fmtDur(percentile(repl, 90)), fmtDur(medianDur(rem)), fmtDur(percentile(rem, 90)))
	}
	// A full reconcile of 1000 apps: POST /load of the whole config, with one
	// upstream changed each time so that Caddy really reloads.
	var syncs []time.Duration
	for i := 0; i < 10; i++ {
		routes := benchRoutes(dir, 1000, "web.sock")
		routes[0] = benchRoute(dir, "app0000", "v"+strconv.Itoa(i)+".sock")
		t0 := time.Now()
		if err := rt.Sync(ctx, routes); err != nil {
			return b.String(), err
		}
		syncs = append(syncs, time.Since(t0))
	}
	cfg, err := router.Config(opts, benchRoutes(dir, 1000, "web.sock"))
	if err != nil {
		return b.String(), err
	}
	logf("routing: sync of 1000 apps %s", fmtDur(medianDur(syncs)))
	fmt.Fprintf(&b, "\nFull reconcile (`Sync`, one `POST /load` of the whole config, %d KiB of JSON) of 1000 apps: median %s, p90 %s over %d runs.\n\n",
		len(cfg)/1024, fmtDur(medianDur(syncs)), fmtDur(percentile(syncs, 90)), len(syncs))
	// Diagnostic: the same full load with lighter route shapes, to tell the
	// cost of hop3's route shape from the cost of Caddy's reload itself.
	b.WriteString("Diagnostic: `POST /load` of the same 1000 apps with each app's route in two shapes, alternated, 5 loads each (the config sent compact; every load changes one upstream, since Caddy skips a config identical to the one it runs):\n\n")
	b.WriteString("| route shape | config size | load: median | p90 | × hop3's shape |\n| --- | ---: | ---: | ---: | ---: |\n")
	shapes, err := shapeLoads(ctx, client, opts, dir)
	if err != nil {
		return b.String(), err
	}
	for _, sh := range shapes {
		fmt.Fprintf(&b, "| %s | %d KiB | %s | %s | %s |\n", sh.label, sh.size/1024, fmtDur(medianDur(sh.times)), fmtDur(percentile(sh.times, 90)),
			ratio(float64(medianDur(sh.times)), float64(medianDur(shapes[0].times))))
	}
	b.WriteString("\n")
	// The baseline: nginx learns about an app by a rewritten config and a reload.
	b.WriteString("Baseline: nginx, which learns of an app from its config files. With N `server` blocks (one per app, `server_name <app>.localhost`, `uwsgi_pass` to the app's socket), ")
	b.WriteString("adding an app is writing its block and `nginx -s reload` (SIGHUP to the master: it reads every file, starts new workers, and the old ones finish their requests); ")
	b.WriteString("the time runs until a request for the new host is answered by it (polled every millisecond with new connections), and the same for its removal.\n\n")
	b.WriteString("| apps registered | hop3 add: median | nginx add: median | × | hop3 remove: median | nginx remove: median | × |\n| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	nginxAdd := map[int][]time.Duration{}
	for _, n := range []int{1, 10, 100, 1000} {
		add, rem, err := nginxReload(ctx, env, n)
		if err != nil {
			return b.String(), err
		}
		h := hop3Times[n]
		nginxAdd[n] = add
		logf("nginx reload %d apps: add %s, remove %s", n, fmtDur(medianDur(add)), fmtDur(medianDur(rem)))
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", n, fmtDur(medianDur(h[0])), fmtDur(medianDur(add)), ratio(float64(medianDur(h[0])), float64(medianDur(add))),
			fmtDur(medianDur(h[1])), fmtDur(medianDur(rem)), ratio(float64(medianDur(h[1])), float64(medianDur(rem))))
	}
	var losses []string
	for _, n := range []int{1, 10, 100, 1000} {
		h := hop3Times[n]
		if nx := nginxAdd[n]; medianDur(h[0]) > medianDur(nx)*103/100 {
			losses = append(losses, fmt.Sprintf("%d apps registered (%s nginx's time)", n, ratio(float64(medianDur(h[0])), float64(medianDur(nx)))))
		}
	}
	if len(losses) > 0 {
		fmt.Fprintf(&b, "\n**hop3 loses to nginx** on adding an app with %s: Caddy reloads its whole config on each admin change, so a change costs time in proportion to the number of apps, ", strings.Join(losses, ", "))
		fmt.Fprintf(&b, "and hop3's route takes %d bytes of compact JSON per app. ", shapes[0].size/1000)
		fmt.Fprintf(&b, "A bare route (host → reverse_proxy) loads in %s of the time (diagnostic above): the rest is the weight of hop3's route, and the bare part Caddy's reload of the whole config itself.\n", ratio(float64(medianDur(shapes[1].times)), float64(medianDur(shapes[0].times))))
	} else {
		b.WriteString("\n**hop3 matches or beats nginx** on adding and removing an app at every size measured.\n")
	}
	b.WriteString("\nnginx's reload also replaces every worker process; Caddy's change happens in place. The uWSGI emperor, for its part, starts a vassal when its file appears.\n")
	return b.String(), nil
}

// nginxReload times adding and removing one server block of an nginx with n others.
func nginxReload(ctx context.Context, env *benchEnv, n int) (add, rem []time.Duration, err error) {
	dir := filepath.Join(env.work, fmt.Sprintf("nginx-reload-%d", n))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return nil, nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	write := func(withExtra bool) error {
		var b strings.Builder
		if os.Geteuid() == 0 {
			b.WriteString("user root;\n")
		}
		fmt.Fprintf(&b, "worker_processes auto;\ndaemon off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log warn;\nevents { worker_connections 1024; }\nhttp {\n    access_log off;\n    server_names_hash_bucket_size 64;\n    client_body_temp_path %[1]s/tmp/body;\n    proxy_temp_path %[1]s/tmp/proxy;\n    fastcgi_temp_path %[1]s/tmp/fastcgi;\n    uwsgi_temp_path %[1]s/tmp/uwsgi;\n    scgi_temp_path %[1]s/tmp/scgi;\n", dir)
		fmt.Fprintf(&b, "    server { listen 127.0.0.1:%d default_server; return 404; }\n", port)
		for i := 0; i < n; i++ {
			fmt.Fprintf(&b, "    server { listen 127.0.0.1:%d; server_name app%04d.localhost; location / { include /etc/nginx/uwsgi_params; uwsgi_pass unix:%s/run/app%04d/web.sock; } }\n", port, i, dir, i)
		}
		if withExtra {
			fmt.Fprintf(&b, "    server { listen 127.0.0.1:%d; server_name benchx.localhost; location / { return 200 \"benchx\\n\"; } }\n", port)
		}
		b.WriteString("}\n")
		return os.WriteFile(conf, []byte(b.String()), 0o644)
	}
	if err := write(false); err != nil {
		return nil, nil, err
	}
	p, err := startProc("nginx reload", dir, nil, filepath.Join(dir, "stderr.log"), env.nginxBin, "-e", filepath.Join(dir, "error.log"), "-p", dir, "-c", conf)
	if err != nil {
		return nil, nil, err
	}
	defer p.stop(10 * time.Second)
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/"
	c := freshClient(2 * time.Second)
	waitFor := func(want int) error {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if code, _, err := httpGet(ctx, c, url, "benchx.localhost"); err == nil && code == want {
				return nil
			}
			time.Sleep(time.Millisecond)
		}
		return fmt.Errorf("nginx with %d servers: no %d for the new host: %s", n, want, logTail(filepath.Join(dir, "error.log"), 3))
	}
	if err := waitFor(404); err != nil {
		return nil, nil, err
	}
	for i := 0; i < 10; i++ {
		for _, extra := range []bool{true, false} {
			t0 := time.Now()
			if err := write(extra); err != nil {
				return nil, nil, err
			}
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				return nil, nil, err
			}
			want := 404
			if extra {
				want = 200
			}
			if err := waitFor(want); err != nil {
				return nil, nil, err
			}
			if extra {
				add = append(add, time.Since(t0))
			} else {
				rem = append(rem, time.Since(t0))
			}
		}
	}
	return add, rem, nil
}

type shapeTimes struct {
	label string
	size  int
	times []time.Duration
}

// shapeLoads times POST /load of hop3's config for 1000 apps with the app
// routes as built and bare.
func shapeLoads(ctx context.Context, client *router.Client, opts router.Options, dir string) ([]*shapeTimes, error) {
	shapes := []*shapeTimes{
		{label: "hop3's route as built (host → subroute: reverse_proxy with retries; error pages come from one server-level route)"},
		{label: "bare: host → reverse_proxy, nothing else"},
	}
	for i := 0; i < 6; i++ {
		for k, sh := range shapes {
			routes := benchRoutes(dir, 1000, "web.sock")
			routes[0] = benchRoute(dir, "app0000", "v"+strconv.Itoa(i)+".sock")
			cfg, err := router.Config(opts, routes)
			if err != nil {
				return nil, err
			}
			var m map[string]any
			if err := json.Unmarshal(cfg, &m); err != nil {
				return nil, err
			}
			srv := m["apps"].(map[string]any)["http"].(map[string]any)["servers"].(map[string]any)[router.ServerName].(map[string]any)
			for _, r := range srv["routes"].([]any) {
				rm := r.(map[string]any)
				handle, _ := rm["handle"].([]any)
				if len(handle) == 0 {
					continue
				}
				sub := handle[0].(map[string]any)
				if sub["handler"] != "subroute" {
					continue
				}
				if k == 1 {
					var proxy map[string]any
					walkProxies(sub, func(h map[string]any) { proxy = h })
					rm["handle"] = []any{map[string]any{"handler": "reverse_proxy", "upstreams": proxy["upstreams"]}}
				}
			}
			b, err := json.Marshal(m)
			if err != nil {
				return nil, err
			}
			sh.size = len(b)
			t0 := time.Now()
			if err := client.Load(ctx, b); err != nil {
				return nil, err
			}
			if i > 0 { // the first round warms up
				sh.times = append(sh.times, time.Since(t0))
			}
		}
	}
	return shapes, nil
}
