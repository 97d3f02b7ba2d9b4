package commands

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLogsMerged reads logs the supervisor stamped: the lines of all
// processes come out in time order, each with its process and generation;
// lines from before stamping keep their old form and come first.
func TestLogsMerged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\nworker: y\n")
	dir := filepath.Join(e.root, "logs", "myapp")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "web.1.log"), []byte(
		"unstamped web line\n"+
			"2026-03-04T04:06:07.100Z v1.1 old web 1\n"+
			"2026-03-04T04:06:07.300Z v2.2 new web 1\n"+
			"2026-03-04T04:06:07.350Z v1.1 old web 2\n"+
			"2026-03-04T04:06:07.500Z v2.2 --- hop3: started pid 9\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "worker.1.log"), []byte(
		"2026-03-04T04:06:07.200Z v1.1 tick\n"+
			"2026-03-04T04:06:07.400Z v2.2 \n"), 0o644)

	r := e.ok("logs", "myapp")
	want := "web.1 | unstamped web line\n" +
		"2026-03-04T04:06:07.100Z web.1 v1.1 | old web 1\n" +
		"2026-03-04T04:06:07.200Z worker.1 v1.1 | tick\n" +
		"2026-03-04T04:06:07.300Z web.1 v2.2 | new web 1\n" +
		"2026-03-04T04:06:07.350Z web.1 v1.1 | old web 2\n" +
		"2026-03-04T04:06:07.400Z worker.1 v2.2 | \n" +
		"2026-03-04T04:06:07.500Z web.1 v2.2 | --- hop3: started pid 9\n"
	if r.stdout != want {
		t.Errorf("logs =\n%s\nwant\n%s", r.stdout, want)
	}
	// -n counts per process.
	r = e.ok("logs", "myapp", "-n", "1")
	want = "2026-03-04T04:06:07.400Z worker.1 v2.2 | \n" +
		"2026-03-04T04:06:07.500Z web.1 v2.2 | --- hop3: started pid 9\n"
	if r.stdout != want {
		t.Errorf("logs -n 1 =\n%s\nwant\n%s", r.stdout, want)
	}
}
