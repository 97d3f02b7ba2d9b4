package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"hop3/internal/layout"
)

// scenarioIsolation measures what running each app as its own user under
// Landlock costs: two daemons side by side, one with isolation and the
// sandbox off (every app as hop3's user), one as hop3 runs by default (as
// root: each app its own uid, confined by Landlock). Each deploys the Flask
// fixture: a first push, then an unchanged one, then the memory of the
// app's processes once idle.
func scenarioIsolation(ctx context.Context, env *benchEnv) (string, error) {
	if os.Geteuid() != 0 {
		return "Not run: apps get users of their own only when hop3 runs as root.\n", nil
	}
	modes := []struct {
		label string
		env   []string
	}{
		{"isolation and sandbox off (every app as hop3's user)", []string{"HOP3_ISOLATION=off", "HOP3_SANDBOX=off"}},
		{"default as root (own uid per app, Landlock)", nil},
	}
	var b strings.Builder
	b.WriteString("Two daemons, one per row, each pushing `buildpacks/testdata/flask-app` as new apps with warm download caches: the time from the first push to the first 200 through Caddy, an empty commit pushed next (the virtualenv is reused; the 3 s settle time is in both rows), and the proportional memory (PSS) of the app's processes 5 s after that push. Medians of the runs, range in brackets.\n\n")
	b.WriteString("| mode | first push → first 200 | unchanged push | app PSS (MiB) |\n| --- | ---: | ---: | ---: |\n")
	src := filepath.Join(env.repo, "buildpacks", "testdata", "flask-app")
	for i, mode := range modes {
		d, err := startHop3(ctx, env, fmt.Sprintf("iso%d", i), mode.env...)
		if err != nil {
			return b.String(), err
		}
		var firsts, seconds []time.Duration
		var pss []float64
		for rep := 0; rep < env.reps; rep++ {
			app := fmt.Sprintf("iso%d", rep+1)
			r, err := newRepo(env, src, fmt.Sprintf("iso%d-%s", i, app))
			if err != nil {
				return b.String(), err
			}
			first, _, err := pushToLive(ctx, d, r, app, "/", "Flask")
			if err != nil {
				return b.String(), err
			}
			if err := r.commit("unchanged", nil); err != nil {
				return b.String(), err
			}
			t0 := time.Now()
			if _, err := d.push(ctx, r.dir, app); err != nil {
				return b.String(), err
			}
			firsts, seconds = append(firsts, first), append(seconds, time.Since(t0))
			time.Sleep(5 * time.Second)
			pss = append(pss, appPSS(d, app))
			logf("isolation %d %s: first %s, unchanged %s", i, app, first.Round(time.Millisecond), seconds[len(seconds)-1].Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %.1f |\n", mode.label, spread(firsts), spread(seconds), median(pss))
		d.Stop()
	}
	return b.String(), nil
}

// appPSS adds up the PSS of the processes running from app's releases (the
// Granian master and its workers), in MiB.
func appPSS(d *hop3d, app string) float64 {
	dir := layout.New(d.root).Releases(app) + "/"
	kb := 0
	for _, p := range allProcs() {
		if strings.HasPrefix(procCwd(p.pid), dir) {
			kb += pssKB(p.pid)
		}
	}
	return float64(kb) / 1024
}
