package router

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestMeasureReloadDrops measures what config changes cost another app's
// clients, with Caddy binding its own listeners (as before hop3 passed it
// sockets), with inherited sockets, and with inherited sockets but no
// reload overlap. It asserts nothing and runs only
// when HOP3_MEASURE_RELOADS is set (to the number of changes, e.g. 400):
//
//	HOP3_MEASURE_RELOADS=400 go test -run TestMeasureReloadDrops -v ./internal/router/
func TestMeasureReloadDrops(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("HOP3_MEASURE_RELOADS"))
	if n <= 0 {
		t.Skip("set HOP3_MEASURE_RELOADS to the number of config changes to measure")
	}
	for _, mode := range []string{"caddy binds", "inherited, no overlap", "inherited"} {
		dir := shortDir(t)
		busy := Route{App: "busy", Hosts: []string{"busy.test"}, Upstreams: []string{startApp(t, dir, "busy")}}
		other := Route{App: "other", Hosts: []string{"other.test"}, Upstreams: []string{startApp(t, dir, "other")}}
		opts := Options{AdminListen: "unix/" + filepath.Join(dir, "admin.sock") + "|0600"}
		var ls *Listeners
		if mode != "caddy binds" {
			if !inherits(t) {
				t.Logf("%s: skipped, caddy %s predates inherited sockets", mode, caddyVer)
				continue
			}
			var err error
			if ls, err = Listen(context.Background(), "127.0.0.1:0", ""); err != nil {
				t.Fatal(err)
			}
			opts.HTTPAddr, opts.ListenFDs = ls.HTTPAddr(), true
			if mode == "inherited, no overlap" {
				opts.ReloadOverlap = -1
			}
		} else {
			opts.HTTPAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
		}
		client, err := NewClient(opts.AdminListen)
		if err != nil {
			t.Fatal(err)
		}
		r := New(opts, client, nil)
		if err := r.SetDesired([]Route{busy, other}); err != nil {
			t.Fatal(err)
		}
		caddy, err := StartCaddy(context.Background(), ProcessOptions{Bin: caddyBin(t), Dir: filepath.Join(dir, "caddy"),
			Env: []string{"GOMAXPROCS=1"}, Listeners: ls}, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		e := &edge{httpPort: port(t, opts.HTTPAddr)}
		for _, clients := range []string{"new connection per request", "keep-alive, 2 idle per host"} {
			c := e.httpClient(t, nil)
			tr := c.Transport.(*http.Transport)
			tr.MaxIdleConnsPerHost = 2
			tr.DisableKeepAlives = clients == "new connection per request"
			load := startEdgeLoad(c, e.url("busy.test", "/"), "app=busy", 20)
			for i := range n {
				o := other
				o.Hosts = []string{"other.test", "other" + strconv.Itoa(i%2) + ".test"}
				if err := r.Set(context.Background(), o); err != nil {
					t.Fatal(err)
				}
				time.Sleep(25 * time.Millisecond)
			}
			res := load.Stop()
			tr.CloseIdleConnections()
			t.Logf("%s, 20 clients, %s: %d changes: %s", mode, clients, n, res)
		}
		caddy.Stop(context.Background())
		if ls != nil {
			ls.Close()
		}
	}
}
