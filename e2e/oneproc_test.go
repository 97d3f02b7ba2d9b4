package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// groupOf reads a process's process group.
func groupOf(pid int) int { return statField(pid, 2) }

// wantGranians waits until app runs exactly n Granian processes, all in one
// process group led by the first of them, and returns them.
func wantGranians(t *testing.T, root, app string, n int) []int {
	t.Helper()
	var pids []int
	eventually(t, 60*time.Second, func() error {
		pids = pids[:0]
		for _, p := range granianPIDs(t, root, app) {
			if !isZombie(p) {
				pids = append(pids, p)
			}
		}
		if len(pids) != n {
			return fmt.Errorf("%d Granian processes %v, want %d", len(pids), pids, n)
		}
		leader := groupOf(pids[0])
		for _, p := range pids {
			if groupOf(p) != leader {
				return fmt.Errorf("Granian processes %v are in more than one group", pids)
			}
		}
		return nil
	})
	return pids
}

// TestOneProcessGranian: a wsgi app with one worker runs as one process (no
// Granian manager); a long request across a deploy still finishes on the
// old release; a kill -9 of that process is recovered and the page answers
// again; two pinned workers run as a manager and two workers, which go
// with the manager when it is killed and come back; and
// GRANIAN_ONE_PROCESS=0 keeps the manager for one worker.
func TestOneProcessGranian(t *testing.T) {
	t.Parallel()
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0")
	alice := newUser(t, "alice")
	d.register(alice)
	const app, host = "one", "one.localhost"
	w := newWorkdir(t, slowApp("v1"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "v1")

	pids := wantGranians(t, root, app, 1)
	if cl := cmdline(pids[0]); !strings.Contains(cl, "hop3_granian.py") {
		t.Errorf("the one process is not hop3's launcher: %s", cl)
	}
	if groupOf(pids[0]) != pids[0] {
		t.Errorf("process %d does not lead its group (%d)", pids[0], groupOf(pids[0]))
	}
	if logs := d.mustCmd(alice, "logs", app).stdout; !strings.Contains(logs, "serving Granian's worker-1 in this process") {
		t.Errorf("logs do not say the worker is served in-process:\n%s", logs)
	}

	// A long request across a deploy finishes on the old release.
	slow := requestSlow(d, host)
	w.commit("v2", slowApp("v2"))
	w.mustPush(d, alice, app)
	wantBody(t, d, host, "/", "v2")
	wantSlowAnswer(t, slow, "slow v1")

	// kill -9 of the one process: hop3 starts it again.
	old := wantGranians(t, root, app, 1)[0]
	killPID(t, old)
	eventually(t, 60*time.Second, func() error {
		if syscallKill0(old) == nil && !isZombie(old) {
			return fmt.Errorf("killed process %d still runs", old)
		}
		code, body, err := tryGet(d.httpAddr, host, "/")
		if err != nil || code != 200 || body != "v2" {
			return fmt.Errorf("GET / = %d %q %v", code, body, err)
		}
		return nil
	})
	if p := wantGranians(t, root, app, 1)[0]; p == old {
		t.Fatalf("Granian %d was not replaced", p)
	}

	// Two pinned workers: Granian's manager and its two workers.
	d.mustCmd(alice, "ps:scale", app, "wsgi=2")
	pids = wantGranians(t, root, app, 3)
	manager := groupOf(pids[0])
	if !slices.Contains(pids, manager) {
		t.Fatalf("the group leader %d is not one of the Granian processes %v", manager, pids)
	}
	if cl := cmdline(manager); strings.Contains(cl, "hop3_granian.py") {
		t.Errorf("two workers run through the one-process launcher: %s", cl)
	}
	wantBody(t, d, host, "/", "v2")
	// kill -9 of the manager: its workers go with it and hop3 starts it again.
	killPID(t, manager)
	eventually(t, 60*time.Second, func() error {
		for _, p := range pids {
			if syscallKill0(p) == nil && !isZombie(p) {
				return fmt.Errorf("Granian process %d (of the killed manager %d) still runs", p, manager)
			}
		}
		code, body, err := tryGet(d.httpAddr, host, "/")
		if err != nil || code != 200 || body != "v2" {
			return fmt.Errorf("GET / = %d %q %v", code, body, err)
		}
		return nil
	})
	wantGranians(t, root, app, 3)

	// Opted out, one worker keeps its manager.
	d.mustCmd(alice, "ps:scale", app, "wsgi=1")
	wantGranians(t, root, app, 1)
	d.mustCmd(alice, "config:set", app, "GRANIAN_ONE_PROCESS=0")
	wantGranians(t, root, app, 2)
	wantBody(t, d, host, "/", "v2")
}
