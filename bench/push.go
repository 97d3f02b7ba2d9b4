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

// pushToLive pushes the repository and polls the app through Caddy every
// 20 ms from the start: it returns the time to the first 200 and the time
// the push took.
func pushToLive(ctx context.Context, d *hop3d, r *repo, app, path, want string) (first, push time.Duration, err error) {
	t0 := time.Now()
	firstc := make(chan time.Duration, 1)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := freshClient(5 * time.Second)
		for i := 0; i < 30000; i++ { // 10 minutes at most
			select {
			case <-stop:
				return
			default:
			}
			if code, body, err := httpGet(ctx, c, d.url(path), d.host(app)); err == nil && code == 200 && strings.Contains(body, want) {
				firstc <- time.Since(t0)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	_, err = d.push(ctx, r.dir, app)
	push = time.Since(t0)
	if err != nil {
		close(stop)
		<-done
		return 0, 0, err
	}
	select {
	case first = <-firstc:
	case <-time.After(30 * time.Second):
		close(stop)
		<-done
		return 0, 0, fmt.Errorf("%s: no 200 within 30s of the push", app)
	}
	<-done
	return first, push, nil
}

// currentRelease reads which release an app's current link points at.
func currentRelease(d *hop3d, app string) string {
	t, _ := os.Readlink(layout.New(d.root).Current(app))
	return filepath.Base(t)
}

func scenarioPush(ctx context.Context, env *benchEnv, m *mainSetup) (string, error) {
	d := m.d
	type fixture struct {
		label, dir, path, want string
	}
	fixtures := []fixture{
		{"Flask (`buildpacks/testdata/flask-app`: uv venv with Flask and Granian)", "flask-app", "/", "Flask"},
		{"Express (`buildpacks/testdata/express-app`: npm ci, npm run build, node)", "express-app", "/hello", "Express"},
		{"Next.js (`buildpacks/testdata/next-app`: npm ci of 386 MB, next build, next start)", "next-app", "/", "Hello from Next.js on hop3"},
	}
	var b strings.Builder
	b.WriteString("From `git push` to the first 200 through Caddy (polled every 20 ms from the start of the push), on the main daemon. ")
	b.WriteString("Each run pushes a new app (first push), then an empty commit to it (second push: same dependencies, so the build caches hit). ")
	b.WriteString("For a second push the old release answers 200 throughout, so its figure is the time until `git push` returned: hop3 answers the push once the new release serves (checked: the app's `current` link names the new release when the push returns). ")
	b.WriteString("Before the measured runs, each fixture is pushed once to a throwaway app so uv's and npm's download caches are warm, as on a server that has deployed before; a first push on a fresh server also downloads the packages.\n\n")
	b.WriteString("The last column tells how the two releases of an app hold `node_modules`: one tree shared through a link, or a copy each, with the size of one release directory (not following links).\n\n")
	b.WriteString("| app | first push → first 200 | (git push returned) | second push, unchanged → live | checked live | node_modules |\n| --- | ---: | ---: | ---: | ---: | --- |\n")
	for _, f := range fixtures {
		src := filepath.Join(env.repo, "buildpacks", "testdata", f.dir)
		warm, err := newRepo(env, src, "warm-"+f.dir)
		if err != nil {
			return b.String(), err
		}
		if _, err := d.push(ctx, warm.dir, "warm-"+strings.TrimSuffix(f.dir, "-app")); err != nil {
			return b.String(), err
		}
		var firsts, pushes, seconds []time.Duration
		live := 0
		modules := "-"
		for rep := 0; rep < env.reps; rep++ {
			app := fmt.Sprintf("%s%d", strings.TrimSuffix(f.dir, "-app"), rep+1)
			r, err := newRepo(env, src, app)
			if err != nil {
				return b.String(), err
			}
			first, push, err := pushToLive(ctx, d, r, app, f.path, f.want)
			if err != nil {
				return b.String(), err
			}
			firsts, pushes = append(firsts, first), append(pushes, push)
			before := currentRelease(d, app)
			if err := r.commit("unchanged", nil); err != nil {
				return b.String(), err
			}
			t0 := time.Now()
			if _, err := d.push(ctx, r.dir, app); err != nil {
				return b.String(), err
			}
			second := time.Since(t0)
			if after := currentRelease(d, app); after != before && after != "" {
				if code, _, err := httpGet(ctx, freshClient(5*time.Second), d.url(f.path), d.host(app)); err == nil && code == 200 {
					live++
				}
			}
			seconds = append(seconds, second)
			if m, ok := sharedModules(d, app, before, currentRelease(d, app)); ok {
				modules = m
			}
			logf("push %s: first %s (push %s), second %s", app, first.Round(time.Millisecond), push.Round(time.Millisecond), second.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d/%d | %s |\n", f.label, spread(firsts), spread(pushes), spread(seconds), live, env.reps, modules)
	}
	b.WriteString("\nThere is no baseline row: the stack hop3 replaces has no push-to-deploy of its own to time.\n")
	return b.String(), nil
}

// sharedModules tells how releases a and b of app hold node_modules, and the
// size of release b's directory; false when the app has none.
func sharedModules(d *hop3d, app, a, b string) (string, bool) {
	rel := func(n string) string { return filepath.Join(layout.New(d.root).Releases(app), n) }
	ma, errA := filepath.EvalSymlinks(filepath.Join(rel(a), "node_modules"))
	mb, errB := filepath.EvalSymlinks(filepath.Join(rel(b), "node_modules"))
	if errA != nil || errB != nil {
		return "", false
	}
	size := dirBytes(rel(b))
	if ma == mb {
		return fmt.Sprintf("shared (release %.1f MB, tree %.0f MB)", float64(size)/1e6, float64(dirBytes(mb))/1e6), true
	}
	return fmt.Sprintf("a copy each (release %.0f MB)", float64(size)/1e6), true
}

// dirBytes adds up the sizes of the files under dir, without following
// links.
func dirBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
