package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// langCase is one language's push-to-deploy story, told the same way for
// every language: the first push builds the fixture and serves its page; an
// empty commit pushed again reuses the build; a commit the tool refuses fails
// the push with the tool's own line while the old release serves on; a
// changed commit builds again, reusing what did not change. The language's
// own checks (extra) follow.
type langCase struct {
	name    string // the subtest's
	fixture string // an app in buildpacks/testdata
	app     string // served at app.localhost

	// needs skips the case when the language's tools are missing; nil: none.
	needs func(t *testing.T)
	// daemon starts the daemon pushed to; nil: startBuildpackDaemon.
	daemon func(t *testing.T) (*daemon, user)
	// prepare adjusts the fixture before its first commit and returns what
	// fills the {placeholders} of the expected lines and pages; nil: none.
	prepare func(t *testing.T, files map[string]string) *strings.Replacer

	first     []string     // lines the first push shows
	page      langPage     // what / answers after the first push
	unchanged *langPush    // an empty commit pushed again; nil: not tried
	refused   *langRefusal // nil: not tried
	changed   *langPush    // nil: not tried

	// extra runs the language's own checks once the story is told.
	extra func(t *testing.T, r *langRun)
}

// langPush is a push expected to go live.
type langPush struct {
	edit  langEdit // nil: an empty commit
	shows []string // lines its output holds
	hides []string // what its output must not hold (a step it skips)
	page  langPage // what / answers after it; zero: the page before
}

// langRefusal is a push expected to fail, the old release serving on.
type langRefusal struct {
	edit     langEdit
	toolLine string // the tool's own words, in the output and the build log
	summary  string // held by the one " !     " line
}

// langPage is what an app's / answers: exactly body, or a match of re where
// the body varies (a request counter, PHP's version).
type langPage struct {
	body string
	re   *regexp.Regexp
}

// langRun is a case under way, for its extra checks.
type langRun struct {
	d     *daemon
	u     user
	w     *workdir
	app   string
	host  string
	files map[string]string // the fixture, as prepared
	page  langPage          // what / answers now
}

// langEdit makes the files of a commit on top of the fixture.
type langEdit func(t *testing.T, files map[string]string) map[string]string

// replaceIn puts with in place of old in path, which must hold old: an edit
// that no longer applies to its fixture would test nothing.
func replaceIn(path, old, with string) langEdit {
	return func(t *testing.T, files map[string]string) map[string]string {
		t.Helper()
		if !strings.Contains(files[path], old) {
			t.Fatalf("fixture's %s lacks %q", path, old)
		}
		return map[string]string{path: strings.Replace(files[path], old, with, 1)}
	}
}

// appendTo adds s at the end of path.
func appendTo(path, s string) langEdit {
	return func(t *testing.T, files map[string]string) map[string]string {
		return map[string]string{path: files[path] + s}
	}
}

// writeFile sets the content of path.
func writeFile(path, content string) langEdit {
	return func(*testing.T, map[string]string) map[string]string {
		return map[string]string{path: content}
	}
}

// needTools skips the test unless every tool is on PATH; hint says how to
// get them.
func needTools(t *testing.T, hint string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found on PATH%s", tool, hint)
		}
	}
}

// runLangs runs every case as a parallel subtest.
func runLangs(t *testing.T, cases []langCase) {
	for _, c := range cases {
		t.Run(c.name, c.run)
	}
}

func (c langCase) run(t *testing.T) {
	if c.needs != nil {
		c.needs(t)
	}
	t.Parallel()
	files := testdataApp(t, c.fixture)
	fill := func(s string) string { return s }
	if c.prepare != nil {
		fill = c.prepare(t, files).Replace
	}
	fillAll := func(ss []string) []string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = fill(s)
		}
		return out
	}
	start := c.daemon
	if start == nil {
		start = startBuildpackDaemon
	}
	d, u := start(t)
	r := &langRun{d: d, u: u, w: newWorkdir(t, files), app: c.app, host: c.app + ".localhost", files: files}

	pushed := func(p *langPush, when string) {
		t.Helper()
		if p.edit == nil {
			r.w.git("commit", "-q", "--allow-empty", "-m", when)
		} else {
			r.w.commit(when, p.edit(t, files))
		}
		out := r.w.mustPush(d, u, c.app)
		wantPushOutput(t, out, fillAll(p.shows)...)
		wantNoPushOutput(t, out, fillAll(p.hides)...)
		if p.page != (langPage{}) {
			r.page = p.page.filled(fill)
		}
		r.wantPage(t, "after the "+when+" push")
	}

	out := r.w.mustPush(d, u, c.app)
	wantPushOutput(t, out, fillAll(c.first)...)
	r.page = c.page.filled(fill)
	r.wantPage(t, "after the first push")

	if c.unchanged != nil {
		pushed(c.unchanged, "unchanged")
	}
	if f := c.refused; f != nil {
		r.w.commit("refused", f.edit(t, files))
		wantBuildFails(t, d, u, r.w, c.app, fill(f.toolLine), fill(f.summary))
		r.wantPage(t, "after the refused push")
	}
	if c.changed != nil {
		pushed(c.changed, "changed")
	}
	if c.extra != nil {
		c.extra(t, r)
	}
}

func (p langPage) filled(fill func(string) string) langPage {
	p.body = fill(p.body)
	return p
}

// wantPage checks that / answers 200 with the live page.
func (r *langRun) wantPage(t *testing.T, when string) {
	t.Helper()
	code, body := get(t, r.d, r.host, "/")
	if r.page.re != nil {
		if code != 200 || !r.page.re.MatchString(body) {
			t.Fatalf("%s: GET %s/ = %d %q, want 200 matching %s", when, r.host, code, body, r.page.re)
		}
		return
	}
	if code != 200 || body != r.page.body {
		t.Fatalf("%s: GET %s/ = %d %q, want 200 %q", when, r.host, code, body, r.page.body)
	}
}
