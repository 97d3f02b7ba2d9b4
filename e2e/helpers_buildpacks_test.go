package e2e

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// testdataApp reads an app from buildpacks/testdata into a map for newWorkdir.
func testdataApp(t *testing.T, name string) map[string]string {
	t.Helper()
	dir := filepath.Join(repoRoot, "buildpacks", "testdata", name)
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[filepath.ToSlash(rel)] = string(b)
		return nil
	})
	if err != nil {
		t.Fatalf("read fixture %s: %v", name, err)
	}
	if len(files) == 0 {
		t.Fatalf("fixture %s is empty", name)
	}
	return files
}

// startBuildpackDaemon starts a daemon with one registered user.
func startBuildpackDaemon(t *testing.T) (*daemon, user) {
	t.Helper()
	d := startDaemon(t, shortTemp(t), "127.0.0.1:0")
	u := newUser(t, "alice")
	d.register(u)
	return d, u
}

// wantPushOutput checks that a push's output holds every want.
func wantPushOutput(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(out, want) {
			t.Errorf("push output lacks %q:\n%s", want, out)
		}
	}
}

// wantNoPushOutput checks that a push's output holds none of the given strings.
func wantNoPushOutput(t *testing.T, out string, nots ...string) {
	t.Helper()
	for _, not := range nots {
		if strings.Contains(out, not) {
			t.Errorf("push output has %q:\n%s", not, out)
		}
	}
}

// pushRemoteLines returns the lines the server wrote during a push: those
// with the prefix of a step, a detail, a failure or a success, with git's
// "remote: " taken off where git added it.
func pushRemoteLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimRight(l, "\r \t")
		l = strings.TrimPrefix(l, "remote: ")
		for _, p := range []string{"-----> ", "       ", " !     ", "=====> "} {
			if strings.HasPrefix(l, p) {
				lines = append(lines, l)
				break
			}
		}
	}
	return lines
}

// pushDeployLines are the lines of a push's output that belong to its deploy:
// from "-----> Deploying" to the end.
func pushDeployLines(out string) []string {
	lines := pushRemoteLines(out)
	for i, l := range lines {
		if strings.HasPrefix(l, "-----> Deploying ") {
			return lines[i:]
		}
	}
	return nil
}

var (
	deployingRe = regexp.MustCompile(`-----> Deploying (\S+) \(\S+\), deploy d(\d+)`)
	liveRe      = regexp.MustCompile(`=====> (\S+) v(\d+) is live`)
)

// releaseNumberOf reads the number of the release a push made live.
func releaseNumberOf(t *testing.T, out string) int {
	t.Helper()
	return numberIn(t, liveRe, "live release", out)
}

// deployNumberOf reads the number of a push's deploy attempt (dN), which a
// failed one has too.
func deployNumberOf(t *testing.T, out string) int {
	t.Helper()
	return numberIn(t, deployingRe, "deploy", out)
}

func numberIn(t *testing.T, re *regexp.Regexp, what, out string) int {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("push output names no %s:\n%s", what, out)
	}
	n, _ := strconv.Atoi(m[2])
	return n
}

// readBuildLog reads the build log kept for deploy attempt n of app.
func readBuildLog(t *testing.T, d *daemon, app string, n int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.root, "apps", app, "builds", strconv.Itoa(n)+".log"))
	if err != nil {
		t.Fatalf("build log of %s d%d: %v", app, n, err)
	}
	return string(b)
}

// wantLogHasDeploy checks that the build log of the push's deploy holds
// every line the push showed from "-----> Deploying" on.
func wantLogHasDeploy(t *testing.T, d *daemon, app, out string) {
	t.Helper()
	n := deployNumberOf(t, out)
	log := readBuildLog(t, d, app, n)
	lines := pushDeployLines(out)
	if len(lines) < 3 {
		t.Fatalf("push output shows too little of the deploy:\n%s", out)
	}
	for _, l := range lines {
		if strings.TrimSpace(l) != "" && !strings.Contains(log, l) {
			t.Errorf("build log of %s d%d lacks the line %q\nlog:\n%s", app, n, l, log)
		}
	}
}

// failureLines returns the " !     " lines of a push's output.
func failureLines(out string) []string {
	var fails []string
	for _, l := range pushRemoteLines(out) {
		if strings.HasPrefix(l, " !     ") {
			fails = append(fails, l)
		}
	}
	return fails
}

// wantBuildFails pushes HEAD, which must be refused with the tool's own
// error line (toolLine) and a single " !     " summary holding summary. The
// release's build log must keep both. The failed commit is then dropped
// from the workdir, as the server dropped it.
func wantBuildFails(t *testing.T, d *daemon, u user, w *workdir, app, toolLine, summary string) string {
	t.Helper()
	out, err := w.push(d, u, app)
	if err == nil {
		t.Fatalf("push to %s succeeded, want a failure:\n%s", app, out)
	}
	wantPushOutput(t, out, toolLine)
	fails := failureLines(out)
	if len(fails) != 1 || !strings.Contains(fails[0], summary) {
		t.Errorf("want one \" !     \" line holding %q, got %q:\n%s", summary, fails, out)
	}
	log := readBuildLog(t, d, app, deployNumberOf(t, out))
	for _, want := range append([]string{toolLine}, fails...) {
		if !strings.Contains(log, want) {
			t.Errorf("build log of the failed release lacks %q:\n%s", want, log)
		}
	}
	w.git("reset", "-q", "--hard", "HEAD~1")
	return out
}

// releaseDirNumbers lists the release directories of app, ascending.
func releaseDirNumbers(t *testing.T, d *daemon, app string) []int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.root, "apps", app, "releases"))
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	return nums
}

// buildLogNumbers lists the deploys of app that have a build log, ascending.
func buildLogNumbers(t *testing.T, d *daemon, app string) []int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.root, "apps", app, "builds"))
	if err != nil {
		t.Fatal(err)
	}
	var nums []int
	for _, e := range entries {
		if s, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			if n, err := strconv.Atoi(s); err == nil {
				nums = append(nums, n)
			}
		}
	}
	sort.Ints(nums)
	return nums
}

// wantLive checks that the app's current link points at release n.
func wantLive(t *testing.T, d *daemon, app string, n int) {
	t.Helper()
	target, err := filepath.EvalSymlinks(filepath.Join(d.root, "apps", app, "current"))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(target) != fmt.Sprint(n) {
		t.Fatalf("current release of %s is %s, want %d", app, target, n)
	}
	if _, err := os.Stat(filepath.Join(target, "Procfile")); err != nil {
		t.Fatalf("the live release lost its files: %v", err)
	}
}

func wantNumbers(t *testing.T, what string, got []int, want ...int) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}
