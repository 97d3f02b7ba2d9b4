package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"hop3/internal/store"
	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// TestAppFilesFollowNoPlantedLink: with isolation an app owns its run
// directory, where hop3 (as root) writes the ASGI wrapper and drain files
// and reads the workers' reports. An app that plants links or pipes there
// must not get hop3 to overwrite a file elsewhere, read one, or hang.
func TestAppFilesFollowNoPlantedLink(t *testing.T) {
	t.Parallel()
	run := t.TempDir()
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hop3_asgi.py", "web.sock.drain"} {
		if err := os.Symlink(outside, filepath.Join(run, name)); err != nil {
			t.Fatal(err)
		}
		if err := writeAppFile(run, name, []byte("written by hop3\n")); err != nil {
			t.Fatalf("write %s: %v", name, err)
		}
		if b, _ := os.ReadFile(outside); string(b) != "7\n" {
			t.Fatalf("writing %s followed the planted link: the file outside now holds %q", name, b)
		}
		fi, err := os.Lstat(filepath.Join(run, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s after the write: %v %v, want a regular file, 0644", name, fi.Mode(), err)
		}
	}

	// Reports: a shell and its child stand in for Granian and a worker.
	file := filepath.Join(run, "web.sock.drain")
	cmd := exec.Command("sh", "-c", "sleep 30 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	pgid := cmd.Process.Pid
	var worker int
	for deadline := time.Now().Add(5 * time.Second); worker == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, pid := range supervisor.GroupPIDs(pgid) {
			if pid != pgid {
				worker = pid
			}
		}
	}
	if worker == 0 {
		t.Fatal("the child never showed up in the group")
	}
	if n, draining := webSocketReports(file, pgid); n != 0 || draining {
		t.Errorf("no reports: %d WebSockets, draining %v", n, draining)
	}
	report := file + "." + strconv.Itoa(worker)
	if err := syscall.Mkfifo(report, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() { n, _ := webSocketReports(file, pgid); done <- n }()
	select {
	case n := <-done:
		if n != 0 {
			t.Errorf("a pipe counted as %d WebSockets", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a planted pipe hangs")
	}
	os.Remove(report)
	if err := os.Symlink(outside, report); err != nil {
		t.Fatal(err)
	}
	if n, _ := webSocketReports(file, pgid); n != 0 {
		t.Errorf("a link to a file outside was read: %d WebSockets", n)
	}
	os.Remove(report)
	if err := os.WriteFile(report, []byte("3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, draining := webSocketReports(file, pgid); n != 3 || draining {
		t.Errorf("a worker reporting 3 WebSockets counted as %d (draining %v)", n, draining)
	}
	if err := os.WriteFile(report, []byte("2 draining\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, draining := webSocketReports(file, pgid); n != 2 || !draining {
		t.Errorf("a worker reporting 2 while draining counted as %d (draining %v)", n, draining)
	}
	removeDrainFiles(file)
	if left, _ := filepath.Glob(file + "*"); len(left) != 0 {
		t.Errorf("drain files left: %v", left)
	}
}

// TestSpecsForDrainAndReadiness checks what a release's processes are told
// and how they are watched: web processes bind loopback unless the app says
// otherwise, health checks carry the app's host name, every process must
// settle, and asgi runs through the wrapper.
func TestSpecsForDrainAndReadiness(t *testing.T) {
	t.Parallel()
	st, err := store.Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m, err := New(Config{Root: t.TempDir(), Domain: "example.org", Store: st, Router: nopRouter{}, Supervisor: newFakeSupervisor()})
	if err != nil {
		t.Fatal(err)
	}
	var procfiles []*procfile.Procfile
	for _, text := range []string{"web: node server.js\nworker: python worker.py\n", "asgi: app:app\n"} {
		pf, err := procfile.Parse(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		procfiles = append(procfiles, pf)
	}
	tests := []struct {
		name     string
		env      map[string]string
		wantHost string
		settle   time.Duration
	}{
		{name: "defaults", env: map[string]string{}, wantHost: "127.0.0.1", settle: DefaultSettleTime},
		{name: "app's own HOST and settle time", env: map[string]string{"HOST": "::1", "SETTLE_TIME": "7"}, wantHost: "::1", settle: 7 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HEALTHCHECK_PATH": "/up"}
			for k, v := range tt.env {
				env[k] = v
			}
			if err := os.MkdirAll(m.paths.Run("shop"), 0o755); err != nil {
				t.Fatal(err)
			}
			var specs []supervisor.Spec
			for _, pf := range procfiles {
				r := release{app: "shop", number: 3, gen: 9, dir: t.TempDir(), procfile: pf, env: env,
					meta: releaseMeta{Venv: "/venv"}, scale: map[string]int{"asgi": 1}}
				more, err := m.specs(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				specs = append(specs, more...)
			}
			byKind := map[string]supervisor.Spec{}
			for _, s := range specs {
				byKind[s.Labels["kind"]] = s
				if s.SettleTime != tt.settle {
					t.Errorf("%s settles %s, want %s", s.Name, s.SettleTime, tt.settle)
				}
			}
			web := byKind["web"]
			if !slices.Contains(web.Env, "HOST="+tt.wantHost) {
				t.Errorf("web env lacks HOST=%s: %v", tt.wantHost, web.Env)
			}
			if web.HealthHost != "shop.example.org" || byKind["asgi"].HealthHost != "shop.example.org" {
				t.Errorf("health hosts %q and %q, want shop.example.org", web.HealthHost, byKind["asgi"].HealthHost)
			}
			if _, set := tt.env["HOST"]; !set && slices.ContainsFunc(byKind["worker"].Env, func(kv string) bool { return strings.HasPrefix(kv, "HOST=") }) {
				t.Errorf("hop3 gave a worker HOST")
			}
			asgi := byKind["asgi"]
			if asgi.Command[len(asgi.Command)-1] != asgiShimTarget || !slices.Contains(asgi.Env, "HOP3_ASGI_APP=app:app") {
				t.Errorf("asgi does not run through the wrapper: %v", asgi.Command)
			}
			if b, err := os.ReadFile(filepath.Join(m.paths.Run("shop"), "hop3_asgi.py")); err != nil || string(b) != string(asgiShim) {
				t.Errorf("wrapper not written: %v", err)
			}
		})
	}
}
