package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// timeToFirst starts argv and returns the time until probe first succeeds.
func timeToFirst(ctx context.Context, env *benchEnv, name, dir string, penv []string, argv []string, probe func() bool) (time.Duration, error) {
	t0 := time.Now()
	p, err := startProc(name, dir, penv, filepath.Join(env.work, "start-"+name+".log"), argv...)
	if err != nil {
		return 0, err
	}
	defer p.stop(15 * time.Second)
	deadline := t0.Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if probe() {
			return time.Since(t0), nil
		}
		if p.exited() {
			return 0, fmt.Errorf("%s exited: %s", name, logTail(p.log, 5))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: no answer after 60s", name)
}

// pidPoller asks url for /pid with a fresh connection every 10 ms and
// records when a process not in old first answers, and how many requests
// failed meanwhile.
type pidPoller struct {
	first  chan time.Duration
	sent   int
	failed int
	stop   chan struct{}
	done   chan struct{}
}

func pollNewPID(ctx context.Context, url, host string, old map[string]bool, t0 time.Time) *pidPoller {
	p := &pidPoller{first: make(chan time.Duration, 1), stop: make(chan struct{}), done: make(chan struct{})}
	c := freshClient(10 * time.Second)
	go func() {
		defer close(p.done)
		seen := false
		for i := 0; i < 20000; i++ { // 200 s at most
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			code, body, err := httpGet(ctx, c, url, host)
			p.sent++
			if err != nil || code != 200 {
				p.failed++
			} else if !seen && !old[strings.TrimSpace(body)] {
				seen = true
				p.first <- time.Since(t0)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return p
}

func (p *pidPoller) finish() { close(p.stop); <-p.done }

func pidSet(pgid int) map[string]bool {
	s := map[string]bool{}
	for _, p := range groupPIDs(pgid) {
		s[strconv.Itoa(p)] = true
	}
	return s
}

func scenarioStartReload(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	var b strings.Builder
	dir, err := shortDir("hb-start-")
	if err != nil {
		return "", err
	}
	env.cleanup(func() { os.RemoveAll(dir) })

	// Start: exec to the first answered request, on the socket itself.
	b.WriteString("### Start: from exec to the first answered request\n\n")
	b.WriteString("The same app and 2 workers each: Granian with hop3's command line on a unix socket (probed with HTTP over the socket), ")
	b.WriteString("uWSGI `--master --processes 2 --threads 1` on a unix socket (probed with the uwsgi protocol, as nginx speaks it). ")
	fmt.Fprintf(&b, "The probe is sent every 2 ms. %d runs each, alternated; median (min–max).\n\n", env.reps)
	b.WriteString("| app | Granian (hop3's flags) | uWSGI | × |\n| --- | ---: | ---: | ---: |\n")
	var verdicts []string
	for _, name := range []string{"hello", "flask"} {
		a := m.app(name)
		var gr, uw []time.Duration
		for rep := 0; rep < env.reps; rep++ {
			gsock := filepath.Join(dir, name+"-g.sock")
			os.Remove(gsock)
			argv := withFlag(a.tmpl.argv, "--uds", gsock)
			gc := unixClient(gsock, time.Second)
			d, err := timeToFirst(ctx, env, "granian-"+name, a.tmpl.dir, a.tmpl.env, argv, func() bool {
				code, _, err := httpGet(ctx, gc, "http://localhost/", "")
				return err == nil && code == 200
			})
			if err != nil {
				return b.String(), err
			}
			gr = append(gr, d)
			usock := filepath.Join(dir, name+"-u.sock")
			os.Remove(usock)
			appDir := filepath.Join(env.work, "apps", name)
			d, err = timeToFirst(ctx, env, "uwsgi-"+name, appDir, nil, uwsgiArgs(env, appDir, usock), func() bool {
				code, _, err := uwsgiGet(usock, "/", time.Second)
				return err == nil && code == 200
			})
			if err != nil {
				return b.String(), err
			}
			uw = append(uw, d)
		}
		logf("start %s: granian %v, uwsgi %v", name, gr, uw)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", a.label, spread(gr), spread(uw), ratio(float64(medianDur(gr)), float64(medianDur(uw))))
		if medianDur(gr) > medianDur(uw)*103/100 {
			verdicts = append(verdicts, fmt.Sprintf("**hop3 loses to uWSGI** on start time for the %s app: %s uWSGI's.\n", a.label, ratio(float64(medianDur(gr)), float64(medianDur(uw)))))
		} else {
			verdicts = append(verdicts, fmt.Sprintf("**hop3 matches or beats uWSGI** on start time for the %s app.\n", a.label))
		}
	}
	b.WriteString("\n" + strings.Join(verdicts, "\n") + "\n")
	b.WriteString("Why: Granian's main process spawns the workers one after the other, and each imports the app itself; ")
	b.WriteString("it listens once the first worker is ready. uWSGI imports the app once in the master and forks the workers (preforking).\n\n")

	// Reload: to the first request served by a new worker.
	b.WriteString("### Reload: to the first request served by a new worker\n\n")
	b.WriteString("The Flask app under a light probe (a new connection every 10 ms asking `/pid`), through each stack's proxy. ")
	b.WriteString("The time runs from the command to the first answer from a process that did not exist before; failed probes are counted.\n\n")
	flask := m.app("flask")
	var hop3Times, uwTimes []time.Duration
	var hop3Fail, uwFail, hop3Sent, uwSent int
	hop3How := ""
	for rep := 0; rep < env.reps; rep++ {
		// hop3: `restart` over ssh when the command exists, otherwise the
		// Manager's activate path reproduced on replicas.
		pid := m.d.granianPID("flask")
		old := pidSet(pid)
		t0 := time.Now()
		poll := pollNewPID(ctx, m.d.url("/pid"), m.d.host("flask"), old, t0)
		out, code := m.d.ssh(ctx, "restart", "flask")
		var d time.Duration
		if strings.Contains(strings.ToLower(out), "unknown command") {
			poll.finish()
			hop3How = "activate"
			var err error
			if d, err = replicaActivate(ctx, env, m, flask, dir, rep); err != nil {
				return b.String(), err
			}
		} else {
			hop3How = "restart"
			if code != 0 {
				poll.finish()
				return b.String(), fmt.Errorf("ssh restart flask: exit %d: %s", code, clip(out, 300))
			}
			select {
			case d = <-poll.first:
			case <-time.After(60 * time.Second):
				poll.finish()
				return b.String(), errors.New("no new Granian answered within 60s of restart")
			}
			poll.finish()
			hop3Fail += poll.failed
			hop3Sent += poll.sent
		}
		hop3Times = append(hop3Times, d)

		// uWSGI: graceful reload with SIGHUP to the master (what touch-reload does).
		old = pidSet(flask.uwsgi.pid())
		t0 = time.Now()
		poll = pollNewPID(ctx, "http://127.0.0.1:"+strconv.Itoa(flask.nginxPort)+"/pid", "", old, t0)
		if err := syscall.Kill(flask.uwsgi.pid(), syscall.SIGHUP); err != nil {
			poll.finish()
			return b.String(), err
		}
		select {
		case d = <-poll.first:
		case <-time.After(60 * time.Second):
			poll.finish()
			return b.String(), errors.New("no new uWSGI worker answered within 60s of SIGHUP")
		}
		time.Sleep(300 * time.Millisecond)
		poll.finish()
		uwFail += poll.failed
		uwSent += poll.sent
		uwTimes = append(uwTimes, d)
	}
	logf("reload: hop3 (%s) %v, uwsgi %v", hop3How, hop3Times, uwTimes)
	b.WriteString("| stack | how | to first new answer | × | failed probes |\n| --- | --- | ---: | ---: | ---: |\n")
	if hop3How == "restart" {
		fmt.Fprintf(&b, "| hop3 | `ssh hop3@host restart flask` (new Granian beside the old, readiness, socket symlink swap, old stopped) | %s | %s | %d / %d |\n",
			spread(hop3Times), ratio(float64(medianDur(hop3Times)), float64(medianDur(uwTimes))), hop3Fail, hop3Sent)
	} else {
		fmt.Fprintf(&b, "| hop3 | the Manager's activate path reproduced (`restart` not available: command not available): new Granian with hop3's flags beside the old, connect readiness, socket symlink swap, old stopped; through a replica Caddy | %s | %s | — |\n",
			spread(hop3Times), ratio(float64(medianDur(hop3Times)), float64(medianDur(uwTimes))))
	}
	fmt.Fprintf(&b, "| nginx → uWSGI | SIGHUP to the master (graceful reload, as `touch-reload`) | %s | 1.00× | %d / %d |\n\n", spread(uwTimes), uwFail, uwSent)
	if medianDur(hop3Times) > medianDur(uwTimes)*103/100 {
		fmt.Fprintf(&b, "**hop3 loses to uWSGI** on reload time: %s uWSGI's. hop3 starts a whole new Granian (Python start, Granian import, worker spawn, app import) and waits for it before switching; uWSGI's reload re-imports the app in the master and forks. ", ratio(float64(medianDur(hop3Times)), float64(medianDur(uwTimes))))
		b.WriteString("What the reload costs in failed requests is the other half of the comparison (the column on the right, and scenario 2).\n")
	} else {
		b.WriteString("**hop3 matches or beats uWSGI** on reload time.\n")
	}
	return b.String(), nil
}

// replicaActivate reproduces the Manager's activate path for the Flask app
// on replicas: Caddy (hop3's config) routes to a stable symlink; a new
// Granian starts on a new socket beside the old; once it accepts
// connections the symlink is swapped and the old one stopped.
func replicaActivate(ctx context.Context, env *benchEnv, m *mainSetup, a *benchApp, dir string, rep int) (time.Duration, error) {
	link := filepath.Join(dir, "web.sock")
	oldSock := filepath.Join(dir, fmt.Sprintf("gen%d.sock", 2*rep))
	newSock := filepath.Join(dir, fmt.Sprintf("gen%d.sock", 2*rep+1))
	oldP, err := startGranian(ctx, env, fmt.Sprintf("activate-%d-old", rep), a.tmpl, withFlag(a.tmpl.argv, "--uds", oldSock))
	if err != nil {
		return 0, err
	}
	defer oldP.stop(10 * time.Second)
	if err := swapLink(filepath.Base(oldSock), link); err != nil {
		return 0, err
	}
	r, err := startCaddyReplica(ctx, env, fmt.Sprintf("activate-%d", rep), m.caddyCfg, nil, func(cfg map[string]any) {
		walkProxies(cfg, func(h map[string]any) {
			for _, u := range h["upstreams"].([]any) {
				um := u.(map[string]any)
				if strings.Contains(um["dial"].(string), "/run/flask/") {
					um["dial"] = "unix/" + link
				}
			}
		})
	})
	if err != nil {
		return 0, err
	}
	defer r.proc.stop(10 * time.Second)
	url := "http://127.0.0.1:" + strconv.Itoa(r.port) + "/pid"
	if err := waitHTTP(ctx, url, m.d.host("flask"), "", 20*time.Second); err != nil {
		return 0, err
	}
	old := pidSet(oldP.pid())
	t0 := time.Now()
	poll := pollNewPID(ctx, url, m.d.host("flask"), old, t0)
	defer poll.finish()
	newP, err := startProc(fmt.Sprintf("activate-%d-new", rep), a.tmpl.dir, a.tmpl.env, filepath.Join(env.work, "granian-activate.log"), withFlag(a.tmpl.argv, "--uds", newSock)...)
	if err != nil {
		return 0, err
	}
	defer newP.stop(10 * time.Second)
	for {
		if c, err := dialUnix(newSock); err == nil {
			c.Close()
			break
		}
		if newP.exited() || time.Since(t0) > 60*time.Second {
			return 0, fmt.Errorf("new Granian not ready: %s", logTail(newP.log, 5))
		}
		time.Sleep(75 * time.Millisecond) // the supervisor's probe interval
	}
	if err := swapLink(filepath.Base(newSock), link); err != nil {
		return 0, err
	}
	oldP.stop(30 * time.Second)
	select {
	case d := <-poll.first:
		return d, nil
	case <-time.After(30 * time.Second):
		return 0, errors.New("no answer from the new Granian after the swap")
	}
}

func swapLink(target, link string) error {
	tmp := link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// spread renders a median with the range of the runs.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "—"
	}
	lo, hi := ds[0], ds[0]
	for _, d := range ds {
		lo, hi = min(lo, d), max(hi, d)
	}
	if len(ds) == 1 {
		return fmtDur(ds[0])
	}
	return fmt.Sprintf("%s (%s–%s)", fmtDur(medianDur(ds)), fmtDur(lo), fmtDur(hi))
}
