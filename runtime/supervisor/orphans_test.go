package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCleanupOrphansDroppedSupervisor simulates a previous supervisor that
// went away without stopping its processes.
func TestCleanupOrphansDroppedSupervisor(t *testing.T) {
	t.Parallel()
	pidDir := filepath.Join(t.TempDir(), "pids")
	old, _ := newTestSupervisor(t, Options{PIDDir: pidDir})
	var pgids []int
	for i := range 2 {
		name := fmt.Sprintf("app/worker.%d", i)
		if err := old.Start(context.Background(), Spec{Name: name, Command: []string{"sh", "-c", "sleep 100 & sleep 100"}}); err != nil {
			t.Fatal(err)
		}
		st, _ := old.Status(name)
		pgids = append(pgids, st.PID)
		eventually(t, 5*time.Second, "both sleeps", func() bool { return len(liveMembers(st.PID)) >= 2 })
	}
	// old is dropped here: no Stop.
	n, err := CleanupOrphans(pidDir, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("killed %d groups, want 2", n)
	}
	for _, pgid := range pgids {
		assertGroupGone(t, pgid)
	}
	if files, _ := os.ReadDir(pidDir); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
}

// TestCleanupOrphansLeaderGone covers the usual case after hop3 died: the
// leader was killed by Pdeathsig, its children live on in the group.
func TestCleanupOrphansLeaderGone(t *testing.T) {
	t.Parallel()
	pidDir := t.TempDir()
	cmd := exec.Command("sh", "-c", "sleep 100 & exec sleep 100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pgid := cmd.Process.Pid
	if _, err := writePIDFile(pidDir, pgid, "app/web.1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "both sleeps", func() bool { return len(liveMembers(pgid)) >= 2 })
	cmd.Process.Kill()
	cmd.Wait()
	if len(liveMembers(pgid)) != 1 {
		t.Fatalf("want exactly the orphan left, got %v", liveMembers(pgid))
	}
	n, err := CleanupOrphans(pidDir, discardLogger())
	if err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v; want 1", n, err)
	}
	assertGroupGone(t, pgid)
}

// TestCleanupOrphansReusedPID: a pid file whose pid now belongs to another
// process (different start time) must not kill it.
func TestCleanupOrphansReusedPID(t *testing.T) {
	t.Parallel()
	pidDir := t.TempDir()
	cmd := exec.Command("sleep", "100")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	st, err := readProcStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("%d %d %q\n", pid, st.start-1, "old/web.1")
	if err := os.WriteFile(filepath.Join(pidDir, fmt.Sprintf("%d.pid", pid)), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(pidDir, "junk.pid"), []byte("not a pid file"), 0o600)
	n, err := CleanupOrphans(pidDir, discardLogger())
	if err != nil || n != 0 {
		t.Fatalf("cleanup = %d, %v; want 0", n, err)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("unrelated process was killed: %v", err)
	}
	if files, _ := os.ReadDir(pidDir); len(files) != 0 {
		t.Errorf("pid files left: %v", files)
	}
	if n, err := CleanupOrphans(filepath.Join(pidDir, "missing"), nil); n != 0 || err != nil {
		t.Errorf("missing dir: %d, %v", n, err)
	}
}

// TestCleanupOrphansAfterHop3Died kills a real supervising process with
// SIGKILL, as a crash would: Pdeathsig takes the leaders, CleanupOrphans
// must find and kill the children they leave behind.
func TestCleanupOrphansAfterHop3Died(t *testing.T) {
	t.Parallel()
	pidDir := t.TempDir()
	helper := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$")
	helper.Env = append(os.Environ(), "HOP3_SUPERVISOR_HELPER_PIDDIR="+pidDir)
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pgid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pgid "); ok {
			fmt.Sscan(v, &pgid)
			break
		}
	}
	if pgid == 0 {
		helper.Process.Kill()
		helper.Wait()
		t.Fatal("helper did not report its process group")
	}
	helper.Process.Kill()
	helper.Wait()
	// The leader dies of Pdeathsig; the background sleep stays behind.
	eventually(t, 5*time.Second, "leader to die", func() bool {
		st, err := readProcStat(pgid)
		return err != nil || st.state == 'Z'
	})
	if len(liveMembers(pgid)) == 0 {
		t.Fatal("no orphan left to clean up; the test proves nothing")
	}
	n, err := CleanupOrphans(pidDir, discardLogger())
	if err != nil || n != 1 {
		t.Fatalf("cleanup = %d, %v; want 1", n, err)
	}
	assertGroupGone(t, pgid)
}

// TestOrphanHelper is the "previous hop3" of TestCleanupOrphansAfterHop3Died.
func TestOrphanHelper(t *testing.T) {
	pidDir := os.Getenv("HOP3_SUPERVISOR_HELPER_PIDDIR")
	if pidDir == "" {
		t.Skip("helper process only")
	}
	s, err := New(Options{PIDDir: pidDir, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Name: "app/web.1", Command: []string{"sh", "-c", "sleep 100 & sleep 100"}, Restart: true}
	if err := s.Start(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	st, _ := s.Status(spec.Name)
	deadline := time.Now().Add(5 * time.Second)
	for len(liveMembers(st.PID)) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("pgid %d\n", st.PID)
	time.Sleep(time.Minute) // killed by the parent test
}
