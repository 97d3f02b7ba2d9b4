package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"hop3/buildpacks"
	"hop3/internal/app"
)

// langFixture is one language's test app in buildpacks/testdata.
type langFixture struct {
	lang, dir  string
	path, want string   // a GET of path through Caddy answers 200 with want in the body
	tools      []string // on PATH, or the language is skipped
	// missing, when set, names a tool the build finds its own way that is
	// not there, or returns "".
	missing func() string
	// prepare, when set, completes the repository before its first commit
	// (the Ruby app's vendor/cache).
	prepare func(env *benchEnv, dir string) error
}

var langFixtures = []langFixture{
	{lang: "python", dir: "flask-app", path: "/", want: "Hello from a Flask app"},
	{lang: "node", dir: "express-app", path: "/hello", want: "Express", tools: []string{"node", "npm"}},
	{lang: "go", dir: "go-app", path: "/", want: "Hello from a Go service", tools: []string{"go"}},
	{lang: "rust", dir: "rust-app", path: "/", want: "Hello from a Rust app", tools: []string{"cargo"}},
	{lang: "java", dir: "java-app", path: "/", want: "Hello from a Java app", tools: []string{"java", "mvn"}},
	{lang: "ruby", dir: "ruby-app", path: "/", want: "Hello from Rack", tools: []string{"ruby", "bundle"}, prepare: debianGems},
	{lang: "php", dir: "php-app", path: "/", want: "from PHP", tools: []string{"php"}, missing: func() string {
		if _, err := buildpacks.FindPHPFPM("", os.Getenv("PATH")); err != nil {
			return "php-fpm"
		}
		return ""
	}},
}

// debianGems packs Debian's rack and webrick into the Ruby app's
// vendor/cache: this machine reaches no gem server.
func debianGems(env *benchEnv, dir string) error {
	script := filepath.Join(env.repo, "buildpacks", "testdata", "debian-gems.rb")
	if out, err := exec.Command("ruby", script, dir, "rack", "webrick").CombinedOutput(); err != nil {
		return fmt.Errorf("pack Debian's gems (apt-get install ruby-rack ruby-webrick): %v: %s", err, out)
	}
	return nil
}

// scenarioLangs pushes each language's test app twice, the second time
// unchanged, on a daemon of its own as hop3 runs by default, and compares
// the two pushes: a second push should be served from the build caches and
// take under a third of the first. langs, when not empty, names the
// languages to run (comma-separated).
func scenarioLangs(ctx context.Context, env *benchEnv, langs string) (string, error) {
	settle := app.DefaultSettleTime
	var b strings.Builder
	b.WriteString("Each language's test app in `buildpacks/testdata`, pushed to a new app on a daemon of its own (as hop3 runs by default: as root, each app its own user), then an empty commit pushed to it. ")
	b.WriteString("Before the measured runs each app is pushed once to a throwaway app, which warms the daemon, Caddy and the machine's file cache. Each app builds as its own user with download caches of its own (uv's, npm's, Cargo's, Maven's), named by its uid and kept in the bench's cache directory between runs: a first push downloads what no earlier run with that uid did. What is built per app (the virtualenv, node_modules, the Cargo target directory, the gem environment) is never warm for a first push. ")
	b.WriteString("Times are until `git push` returned, which hop3 answers once the new release serves; the first push's first 200 through Caddy is checked, not timed. ")
	fmt.Fprintf(&b, "The first push waits the %s every new process must stay up before it takes traffic (the settle time); the unchanged one does not, as its live generation, running the same tree, build and settings, has already stayed up that long (see `SETTLE_TIME` in the README). ", settle)
	b.WriteString("The goal is a second push under a third of the first. Medians of the runs, range in brackets.\n\n")
	b.WriteString("| language | app | first push | second push, unchanged | second / first | under a third |\n| --- | --- | ---: | ---: | ---: | --- |\n")
	var picked []langFixture
	for _, f := range langFixtures {
		if langs == "" || containsWord(langs, f.lang) {
			picked = append(picked, f)
		}
	}
	var skipped, met, missed []string
	var d *hop3d
	for _, f := range picked {
		src := filepath.Join(env.repo, "buildpacks", "testdata", f.dir)
		if _, err := os.Stat(src); err != nil {
			skipped = append(skipped, f.lang+" (no "+f.dir+" fixture)")
			continue
		}
		missing := missingTools(f.tools)
		if missing == "" && f.missing != nil {
			missing = f.missing()
		}
		if missing != "" {
			skipped = append(skipped, f.lang+" ("+missing+" not found)")
			continue
		}
		if d == nil {
			var err error
			if d, err = startHop3(ctx, env, "langs"); err != nil {
				return b.String(), err
			}
			defer d.Stop()
		}
		newLangRepo := func(name string) (*repo, error) {
			r, err := newRepo(env, src, name)
			if err != nil || f.prepare == nil {
				return r, err
			}
			if err := f.prepare(env, r.dir); err != nil {
				return nil, err
			}
			if err := r.git("add", "-A"); err != nil {
				return nil, err
			}
			return r, r.git("commit", "-q", "--amend", "--no-edit")
		}
		warm, err := newLangRepo("langs-warm-" + f.lang)
		if err != nil {
			return b.String(), err
		}
		if out, err := d.push(ctx, warm.dir, "warm-"+f.lang); err != nil {
			// A toolchain the apps' users cannot run (rustup's, under
			// root's home) fails the build: say so, measure the others.
			skipped = append(skipped, f.lang+" (its push failed: "+failLine(out, err)+")")
			continue
		}
		var firsts, seconds []time.Duration
		var ratios []float64
		for rep := 0; rep < env.reps; rep++ {
			name := fmt.Sprintf("%s%d", f.lang, rep+1)
			r, err := newLangRepo("langs-" + name)
			if err != nil {
				return b.String(), err
			}
			_, first, err := pushToLive(ctx, d, r, name, f.path, f.want)
			if err != nil {
				return b.String(), err
			}
			if err := r.commit("unchanged", nil); err != nil {
				return b.String(), err
			}
			t0 := time.Now()
			if _, err := d.push(ctx, r.dir, name); err != nil {
				return b.String(), err
			}
			second := time.Since(t0)
			firsts, seconds = append(firsts, first), append(seconds, second)
			ratios = append(ratios, second.Seconds()/first.Seconds())
			logf("langs %s: first %s, second %s", name, first.Round(time.Millisecond), second.Round(time.Millisecond))
		}
		ratio := median(ratios)
		verdict := "yes"
		if ratio < 1.0/3 {
			met = append(met, f.lang)
		} else {
			verdict = "**no**"
			missed = append(missed, f.lang)
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %.2f | %s |\n", f.lang, f.dir, spread(firsts), spread(seconds), ratio, verdict)
	}
	if len(met)+len(missed) > 0 {
		if len(missed) == 0 {
			fmt.Fprintf(&b, "\n**hop3 serves an unchanged push in under a third of the first push's time for every language measured: %s.**\n", listOrNone(met))
		} else {
			fmt.Fprintf(&b, "\n**hop3 serves an unchanged push in under a third of the first push's time for %s; not for %s.**\n", listOrNone(met), listOrNone(missed))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(&b, "\nNot measured: %s.\n", strings.Join(skipped, ", "))
	}
	if langs != "" {
		fmt.Fprintf(&b, "\nThis run measured only `-langs %s`.\n", langs)
	}
	return b.String(), nil
}

// missingTools names the first of tools not on PATH, or "".
func missingTools(tools []string) string {
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return t
		}
	}
	return ""
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

func containsWord(list, word string) bool {
	for _, w := range strings.Split(list, ",") {
		if strings.TrimSpace(w) == word {
			return true
		}
	}
	return false
}

// failLine is the first " !     " line of a failed push's output, or err.
func failLine(out string, err error) string {
	for _, l := range strings.Split(out, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, "!") && !strings.Contains(t, "[remote rejected]") {
			return strings.TrimSpace(strings.TrimPrefix(t, "!"))
		}
	}
	return err.Error()
}
