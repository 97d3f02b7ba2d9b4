package hop3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Caddy is a Caddy someone other than hop3 runs, as an operator's own
// would: its admin API on a unix socket, its config what the test gave.
type Caddy struct {
	Sock    string       // the admin API's unix socket
	Port    int          // the loopback port handed to the config, for the owner's own server
	Admin   *http.Client // talks to the admin API (any URL host: it dials Sock)
	LogPath string
}

// StartCaddy runs the Caddy binary bin with its admin API on a unix socket
// in dir and the "apps" object apps(port) returns, port a loopback port
// free a moment ago (tried again with another when Caddy finds it taken).
// It waits until the admin API answers and kills Caddy when the test ends.
func StartCaddy(tb testing.TB, bin, dir string, apps func(port int) string) *Caddy {
	tb.Helper()
	c := &Caddy{Sock: filepath.Join(dir, "admin.sock"), LogPath: filepath.Join(dir, "owner.log")}
	c.Admin = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", c.Sock)
	}}}
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		c.Port = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		cfg := fmt.Sprintf(`{"admin": {"listen": "unix/%s", "config": {"persist": false}}, "apps": %s}`, c.Sock, apps(c.Port))
		boot := filepath.Join(dir, "owner.json")
		if err := os.WriteFile(boot, []byte(cfg), 0o600); err != nil {
			tb.Fatal(err)
		}
		logf, err := os.Create(c.LogPath)
		if err != nil {
			tb.Fatal(err)
		}
		cmd := exec.Command(bin, "run", "--config", boot)
		cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(dir, "cfg"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			tb.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); logf.Close(); close(exited) }()
		tb.Cleanup(func() {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		})
		for range 200 {
			// Host 127.0.0.1 is one that Caddy 2.7 to 2.9 accept on a unix
			// socket; later ones accept any.
			if resp, err := c.Admin.Get("http://127.0.0.1/config/"); err == nil {
				resp.Body.Close()
				return c
			}
			select {
			case <-exited:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			break
		}
		if attempt >= 4 {
			b, _ := os.ReadFile(c.LogPath)
			tb.Fatalf("owner's caddy did not start:\n%s", b)
		}
	}
}
