package app

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"hop3/internal/router"
	"hop3/internal/store"
	"hop3/runtime/supervisor"
)

type nopRouter struct{}

func (nopRouter) Set(ctx context.Context, r router.Route) error { return nil }
func (nopRouter) Remove(ctx context.Context, app string) error  { return nil }

// TestRecordProcessEvents feeds the supervisor's state changes of a worker
// that fails until it is given up, and checks the event log holds one
// restart and one crash, with the reason, and nothing for one-off runs.
func TestRecordProcessEvents(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.CreateApp(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	w := "shop/worker.1@v3.7"
	sup := newFakeSupervisor()
	sup.report(supervisor.Status{
		Name: w, Labels: labels("shop", "worker", 1, 3, 7), State: supervisor.Crashed,
		Restarts: 5, LastExit: "exit status 3",
	})
	m, err := New(Config{Root: t.TempDir(), Store: st, Router: nopRouter{}, Supervisor: sup})
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan supervisor.Event, 32)
	for i := 0; i < 5; i++ {
		events <- supervisor.Event{Name: w, From: supervisor.Starting, To: supervisor.Running}
		events <- supervisor.Event{Name: w, From: supervisor.Running, To: supervisor.Backoff}
		events <- supervisor.Event{Name: w, From: supervisor.Backoff, To: supervisor.Starting}
	}
	events <- supervisor.Event{Name: w, From: supervisor.Running, To: supervisor.Crashed}
	// A one-off run that is not in the list any more, and a process of
	// another app that is gone: its name still tells the app.
	events <- supervisor.Event{Name: "shop/run@v3.9", From: supervisor.Running, To: supervisor.Crashed}
	events <- supervisor.Event{Name: "blog/web.2@v1.4", From: supervisor.Running, To: supervisor.Crashed}
	close(events)
	m.RecordProcessEvents(ctx, events)

	evs, err := st.Events(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range evs {
		got = append(got, e.App+" "+e.Kind+": "+e.Message)
		if e.Actor != "" {
			t.Errorf("event %q has actor %q; the daemon itself acted", e.Message, e.Actor)
		}
	}
	want := []string{
		"shop restart: worker.1 exited (exit status 3); restarting it",
		"shop crash: worker.1 crashed after 5 restarts (last: exit status 3); it stays down until the app is restarted or deployed",
		"blog crash: web.2 crashed after 0 restarts; it stays down until the app is restarted or deployed",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
