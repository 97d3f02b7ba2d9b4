package router

import (
	"context"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestClientInFlight(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		want map[string]int
	}{
		{"none", `[]`, map[string]int{}},
		{"unix and tcp", `[{"address":"unix//run/a/web.sock","num_requests":3,"fails":0},{"address":"127.0.0.1:5001","num_requests":0,"fails":1}]`,
			map[string]int{"unix//run/a/web.sock": 3, "127.0.0.1:5001": 0}},
		// Once dialled, a unix upstream is listed again as its bare path
		// with the same counter: one count, not two.
		{"bare path folds in", `[{"address":"unix//run/a/web.sock","num_requests":3},{"address":"/run/a/web.sock","num_requests":3}]`,
			map[string]int{"unix//run/a/web.sock": 3}},
		{"bare path alone", `[{"address":"/run/b/web.sock","num_requests":2}]`, map[string]int{"unix//run/b/web.sock": 2}},
		{"the larger of the two", `[{"address":"/run/a/web.sock","num_requests":4},{"address":"unix//run/a/web.sock","num_requests":3}]`,
			map[string]int{"unix//run/a/web.sock": 4}},
		{"unknown fields ignored", `[{"address":"127.0.0.1:1","num_requests":1,"health":"up"}]`, map[string]int{"127.0.0.1:1": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAdmin(t)
			f.get[upstreamsPath] = tt.body
			got, err := f.client().InFlight(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("InFlight = %v, want %v", got, tt.want)
			}
			// The router asks its client, and takes no lock for it.
			r := New(Options{}, f.client(), nil)
			r.sem <- struct{}{}
			if got, err := r.InFlight(context.Background()); err != nil || !maps.Equal(got, tt.want) {
				t.Errorf("Router.InFlight during a mutation = %v, %v", got, err)
			}
		})
	}
}

func TestClientInFlightErrors(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	f.fail["GET "+upstreamsPath] = 500
	_, err := f.client().InFlight(context.Background())
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 500 || err.Error() != "read upstreams: caddy admin: GET /reverse_proxy/upstreams: 500: injected failure" {
		t.Errorf("error = %v", err)
	}
	f.get[upstreamsPath] = `{"not":"a list"}`
	delete(f.fail, "GET "+upstreamsPath)
	if _, err := f.client().InFlight(context.Background()); err == nil {
		t.Error("an answer of the wrong shape was accepted")
	}
}

// TestCaddyInFlight reads the real Caddy's counters while requests wait in
// an app: each upstream shows its own requests under the address its route
// names, and none once they are answered.
func TestCaddyInFlight(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	release := make(chan struct{})
	waiting := func(name string) string {
		sock := filepath.Join(dir, name+".sock")
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			io.WriteString(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return "unix/" + sock
	}
	a, b := waiting("a"), waiting("b")
	e := startEdge(t, TLSOff, 0, []Route{
		{App: "a", Hosts: []string{"a.test"}, Upstreams: []string{a}},
		{App: "b", Hosts: []string{"b.test"}, Upstreams: []string{b}},
	})
	ctx := context.Background()
	if got, err := e.r.InFlight(ctx); err != nil || got[a] != 0 || got[b] != 0 || len(got) != 2 {
		t.Fatalf("before any request: %v, %v; want both upstreams at 0", got, err)
	}
	c := e.httpClient(t, nil)
	var wg sync.WaitGroup
	for i, host := range []string{"a.test", "a.test", "a.test", "b.test"} {
		wg.Go(func() {
			resp, err := c.Get(e.url(host, "/"))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("request %d: %s", i, resp.Status)
			}
		})
	}
	await := func(what string, want map[string]int) {
		t.Helper()
		var got map[string]int
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got, err = e.r.InFlight(ctx); err == nil && maps.Equal(got, want) {
				return
			}
		}
		t.Fatalf("%s: InFlight = %v, %v; want %v", what, got, err, want)
	}
	await("requests waiting", map[string]int{a: 3, b: 1})
	close(release)
	wg.Wait()
	await("all answered", map[string]int{a: 0, b: 0})
}
