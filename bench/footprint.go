package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// treeRSS sums VmRSS over a process and its descendants, in MiB.
func treeRSS(pid int) rss {
	if pid == 0 {
		return rss{}
	}
	kb, pss := rssKB(pid), pssKB(pid)
	n := 1
	for _, p := range descendants(pid) {
		kb += rssKB(p.pid)
		pss += pssKB(p.pid)
		n++
	}
	return rss{float64(kb) / 1024, float64(pss) / 1024, n}
}

// ownRSS is a process alone (hop3 without the processes it supervises).
func ownRSS(pid int) rss { return rss{float64(rssKB(pid)) / 1024, float64(pssKB(pid)) / 1024, 1} }

func scenarioFootprint(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	// A second daemon: idle, then with 100 static-site apps (routes in
	// Caddy, a release each, no process: 100 live Python apps would need
	// 300 processes on a 2-core machine).
	d, err := startHop3(ctx, env, "footprint")
	if err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second)
	idleHop3, idleCaddy := ownRSS(d.PID()), treeRSS(d.caddyPID())
	const napps = 100
	logf("footprint: pushing %d static sites", napps)
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, napps)
	sem := make(chan struct{}, 4)
	for i := 0; i < napps; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("site%03d", i)
			r, err := newRepo(env, filepath.Join(env.repo, "buildpacks", "testdata", "static-site"), name)
			if err == nil {
				_, err = d.push(ctx, r.dir, name)
			}
			if err != nil {
				errs <- err
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return "", err
	}
	pushAll := time.Since(t0)
	if err := waitHTTP(ctx, d.url("/"), d.host("site099"), "<", 10*time.Second); err != nil {
		return "", err
	}
	time.Sleep(2 * time.Second)
	fullHop3, fullCaddy := ownRSS(d.PID()), treeRSS(d.caddyPID())
	d.Stop()

	// One Flask app on each stack, warmed with the same load.
	flask := m.app("flask")
	gpid := m.d.granianPID("flask")
	if _, _, err := runWrk(ctx, m.d.url("/"), m.d.host("flask"), env.conns, 2*time.Second); err != nil {
		return "", err
	}
	granian := treeRSS(gpid)
	caddy := treeRSS(m.d.caddyPID())
	hop3 := ownRSS(m.d.PID())

	emperor, err := startEmperor(ctx, env, flask)
	if err != nil {
		return "", err
	}
	for i := 0; i < 2000; i++ {
		if _, _, err := uwsgiGet(emperor.sock, "/", 5*time.Second); err != nil {
			return "", fmt.Errorf("vassal: %w", err)
		}
	}
	// The same load through nginx for nginx's own figure.
	if _, _, err := runWrk(ctx, "http://127.0.0.1:"+strconv.Itoa(flask.nginxPort)+"/", "", env.conns, 2*time.Second); err != nil {
		return "", err
	}
	uw := treeRSS(emperor.proc.pid())
	ngx := treeRSS(m.nginx.pid())
	emperor.proc.stop(10 * time.Second)

	b.WriteString("VmRSS from /proc/<pid>/status, summed over each process and its children; PSS (from /proc/<pid>/smaps_rollup) divides shared pages among the processes sharing them, ")
	b.WriteString("which matters for forked workers: uWSGI's workers share the app the master imported. hop3's own figure excludes the processes it supervises (they have their own rows). ")
	fmt.Fprintf(&b, "\"100 apps\" are %d static-site apps pushed to a second daemon (%s for all the pushes, 4 at a time): each has a release and a route in Caddy, and no process; ", napps, pushAll.Round(100*time.Millisecond))
	b.WriteString("100 live Python apps would be 300 processes on this 2-core machine. The app rows are the Flask app with 2 workers after 2 s of wrk load.\n\n")
	b.WriteString("| stack | component | VmRSS MiB | PSS MiB | processes |\n| --- | --- | ---: | ---: | ---: |\n")
	row := func(stack, l string, r rss) {
		fmt.Fprintf(&b, "| %s | %s | %.1f | %.1f | %d |\n", stack, l, r.mb, r.pss, r.procs)
	}
	row("hop3", "hop3 daemon, idle (no app)", idleHop3)
	row("hop3", "hop3 daemon, 100 apps", fullHop3)
	row("hop3", "Caddy, idle (no app)", idleCaddy)
	row("hop3", "Caddy, 100 app routes", fullCaddy)
	row("hop3", "hop3 daemon with the 3 benchmark apps, after load", hop3)
	row("hop3", "Caddy with the 3 benchmark apps, after load", caddy)
	row("hop3", "Granian, Flask app (main + 2 workers), after load", granian)
	row("replaced", "uWSGI emperor + one vassal (Flask app: master + 2 workers), after load", uw)
	row("replaced", "nginx (master + workers), after load", ngx)
	tot := rss{hop3.mb + caddy.mb + granian.mb, hop3.pss + caddy.pss + granian.pss, hop3.procs + caddy.procs + granian.procs}
	base := rss{uw.mb + ngx.mb, uw.pss + ngx.pss, uw.procs + ngx.procs}
	b.WriteString("\n| one Flask app, everything included | hop3 + Caddy + Granian | emperor + vassal + nginx | × |\n| --- | ---: | ---: | ---: |\n")
	fmt.Fprintf(&b, "| VmRSS MiB | %.1f | %.1f | %s |\n", tot.mb, base.mb, ratio(tot.mb, base.mb))
	fmt.Fprintf(&b, "| PSS MiB | %.1f | %.1f | %s |\n", tot.pss, base.pss, ratio(tot.pss, base.pss))
	fmt.Fprintf(&b, "| processes | %d | %d | |\n\n", tot.procs, base.procs)
	if tot.pss > base.pss*1.03 {
		fmt.Fprintf(&b, "**hop3 loses to uWSGI + nginx** on memory: %s the PSS (%.0f MiB more; %s the VmRSS). ", ratio(tot.pss, base.pss), tot.pss-base.pss, ratio(tot.mb, base.mb))
		fmt.Fprintf(&b, "Caddy takes %.0f MiB (PSS) where nginx takes %.0f; Granian %.0f MiB for the app where the vassal and emperor take %.0f; hop3's daemon %.0f MiB.\n", caddy.pss, ngx.pss, granian.pss, uw.pss, hop3.pss)
	} else {
		fmt.Fprintf(&b, "**hop3 matches or beats uWSGI + nginx** on memory: %s the PSS.\n", ratio(tot.pss, base.pss))
	}
	return b.String(), nil
}

type emperorProc struct {
	proc *proc
	sock string
}

// startEmperor runs uWSGI in emperor mode with one vassal: the Flask app
// with the same options as the baseline.
func startEmperor(ctx context.Context, env *benchEnv, a *benchApp) (*emperorProc, error) {
	dir := filepath.Join(env.work, "emperor")
	if err := os.MkdirAll(filepath.Join(dir, "vassals"), 0o755); err != nil {
		return nil, err
	}
	sock := filepath.Join(env.work, "vassal.sock")
	os.Remove(sock)
	appDir := filepath.Join(env.work, "apps", a.name)
	ini := fmt.Sprintf("[uwsgi]\nmaster = true\nprocesses = 2\nthreads = 1\nsocket = %s\nchmod-socket = 660\nchdir = %s\nmodule = app:app\nvirtualenv = %s\ndisable-logging = true\nneed-app = true\n", sock, appDir, env.venv)
	if err := os.WriteFile(filepath.Join(dir, "vassals", "flask.ini"), []byte(ini), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("uwsgi emperor", dir, nil, filepath.Join(dir, "emperor.log"), filepath.Join(env.venv, "bin", "uwsgi"), "--emperor", filepath.Join(dir, "vassals"), "--die-on-term")
	if err != nil {
		return nil, err
	}
	env.cleanup(func() { p.stop(10 * time.Second) })
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := uwsgiGet(sock, "/", time.Second); err == nil && code == 200 {
			return &emperorProc{p, sock}, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("uwsgi vassal not answering: %s", logTail(p.log, 10))
}
