package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"hop3/internal/hop3test"
)

// startOpsDaemon runs hop3 serve with --metrics-addr 127.0.0.1:0, as
// startDaemonEnv does, and returns the address the metrics endpoint bound,
// read from the ready line.
func startOpsDaemon(t *testing.T, root string, env []string, extra ...string) (*daemon, string) {
	t.Helper()
	d := startWith(t, hop3test.Options{Root: root, Env: append([]string{"HOP3_CONFIG=/nonexistent/hop3.env"}, env...),
		Args: append([]string{"--metrics-addr", "127.0.0.1:0"}, extra...)})
	metricsAddr := d.Ready["metrics"]
	if metricsAddr == "" {
		t.Fatalf("hop3 serve printed no ready line with metrics=:\n%s", d.log())
	}
	if strings.HasSuffix(metricsAddr, ":0") {
		t.Fatalf("metrics address %s: port 0 was not resolved", metricsAddr)
	}
	return d, metricsAddr
}

// opsScrape fetches a metrics page and parses the Prometheus text format
// into "name{labels}" -> value; a malformed line fails the test.
func opsScrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	body, err := opsFetch(url)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := opsParse(body)
	if err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return samples
}

func opsFetch(url string) (string, error) {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b), nil
}

func opsParse(text string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, fmt.Errorf("bad line %q", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("bad value in %q", line)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// opsRun runs the hop3 binary with args and environment, returning its
// combined output and exit status.
func opsRun(t *testing.T, env []string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(hop3Bin, args...)
	cmd.Env = append(os.Environ(), append([]string{"HOP3_CONFIG=/nonexistent/hop3.env", "NO_COLOR=1"}, env...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("hop3 %v: %v", args, err)
	}
	return out.String(), 0
}

// opsScript runs a script of the repository with bash.
func opsScript(t *testing.T, script string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot, script)}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	return out.String(), 0
}

// opsDoctorLines maps each check of `hop3 doctor` output to its verdict
// and text.
func opsDoctorLines(t *testing.T, out string) map[string][2]string {
	t.Helper()
	lines := map[string][2]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || strings.HasPrefix(l, "hop3:") {
			continue
		}
		switch f[0] {
		case "ok", "warn", "fail", "skip", "info":
			lines[f[1]] = [2]string{f[0], strings.Join(f[2:], " ")}
		default:
			t.Errorf("doctor line without a verdict: %q", l)
		}
	}
	return lines
}

// opsGit runs git in dir with a fixed identity.
func opsGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=p", "GIT_AUTHOR_EMAIL=p@example.com",
		"GIT_COMMITTER_NAME=p", "GIT_COMMITTER_EMAIL=p@example.com")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// opsPikuApp builds PIKU_ROOT/repos/<name> as a push to piku leaves it: a
// bare repository holding one commit of files on branch.
func opsPikuApp(t *testing.T, pikuRoot, name, branch string, files map[string]string) {
	t.Helper()
	repo := filepath.Join(pikuRoot, "repos", name)
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	opsGit(t, repo, "init", "-q", "--bare", "-b", branch)
	work := t.TempDir()
	opsGit(t, work, "init", "-q", "-b", branch)
	for p, c := range files {
		full := filepath.Join(work, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opsGit(t, work, "add", "-A")
	opsGit(t, work, "commit", "-q", "-m", "deployed with piku")
	opsGit(t, work, "push", "-q", repo, branch)
}

func opsWriteFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// opsWant checks one sample's value.
func opsWant(t *testing.T, samples map[string]float64, key string, want float64) {
	t.Helper()
	got, ok := samples[key]
	if !ok {
		t.Errorf("no sample %s", key)
		return
	}
	if got != want {
		t.Errorf("%s = %v, want %v", key, got, want)
	}
}
