package router

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

func TestListen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ls, err := Listen(ctx, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	if got, want := ls.HTTPAddr(), ls.HTTP.Addr().String(); got != want {
		t.Errorf("HTTPAddr = %s, want %s", got, want)
	}
	if ls.HTTPSAddr() == ls.HTTPAddr() || ls.HTTPSAddr() != ls.HTTPS.Addr().String() {
		t.Errorf("HTTPSAddr = %s (https socket %s)", ls.HTTPSAddr(), ls.HTTPS.Addr())
	}
	if got := ls.HTTP3.LocalAddr().String(); got != ls.HTTPSAddr() {
		t.Errorf("HTTP/3 socket on %s, want the HTTPS address %s", got, ls.HTTPSAddr())
	}
	files, err := ls.files()
	if err != nil {
		t.Fatal(err)
	}
	defer closeFiles(files)
	for n := HTTPFD; n <= HTTPSFD+altFDOffset; n++ {
		if files[n-3] == nil {
			t.Errorf("fd %d not passed", n)
		}
	}

	// The host is kept as given, only the port is filled in.
	wild, err := Listen(ctx, ":0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer wild.Close()
	if !strings.HasPrefix(wild.HTTPAddr(), ":") || wild.HTTPS != nil || wild.HTTP3 != nil {
		t.Errorf("Listen(:0) = %s, https %v", wild.HTTPAddr(), wild.HTTPS)
	}

	// A port in use is an error.
	if _, err := Listen(ctx, ls.HTTPAddr(), ""); err == nil {
		t.Error("Listen on a port in use succeeded")
	}
}

func TestListenersCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	plain, err := Listen(ctx, "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	both, err := Listen(ctx, "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer both.Close()
	off := Options{HTTPAddr: plain.HTTPAddr(), ListenFDs: true}
	tls := Options{HTTPAddr: both.HTTPAddr(), HTTPSAddr: both.HTTPSAddr(), TLS: TLSInternal, ListenFDs: true}
	other := off
	other.HTTPAddr = "127.0.0.1:1"
	tests := []struct {
		name string
		ls   *Listeners
		opts Options
		want string
	}{
		{"plain", plain, off, ""},
		{"tls", both, tls, ""},
		{"none", nil, off, "none were given"},
		{"tls without https socket", plain, Options{HTTPAddr: plain.HTTPAddr(), HTTPSAddr: "127.0.0.1:1", TLS: TLSInternal}, "no https sockets"},
		{"https socket without tls", both, Options{HTTPAddr: both.HTTPAddr()}, "tls is off"},
		{"other port", plain, other, "bound to port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.ls.check(tc.opts)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("check: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("check error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStartCaddySocketsMustMatch refuses inherited-socket options without
// sockets and sockets without such options, before running anything.
func TestStartCaddySocketsMustMatch(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	ls, err := Listen(context.Background(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	client, err := NewClient("unix/" + dir + "/admin.sock")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		fds  bool
		ls   *Listeners
		want string
	}{
		{"options want sockets", true, nil, "none were given"},
		{"sockets without options", false, ls, "do not use them"},
	} {
		opts := Options{HTTPAddr: ls.HTTPAddr(), ListenFDs: tc.fds, AdminListen: "unix/" + dir + "/admin.sock"}
		_, err := StartCaddy(context.Background(), ProcessOptions{Bin: "true", Dir: dir, Listeners: tc.ls}, New(opts, client, nil), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: StartCaddy error = %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestListenDefersAccept checks that a connection that sent nothing is not
// handed to the server, and one that sent its request is.
func TestListenDefersAccept(t *testing.T) {
	t.Parallel()
	ls, err := Listen(context.Background(), "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	silent, err := net.Dial("tcp", ls.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ls.HTTP.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if c, err := ls.HTTP.Accept(); err == nil {
		c.Close()
		t.Fatal("a connection that sent nothing was accepted")
	}
	talker, err := net.Dial("tcp", ls.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer talker.Close()
	if _, err := talker.Write([]byte("GET / HTTP/1.1\r\n")); err != nil {
		t.Fatal(err)
	}
	ls.HTTP.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := ls.HTTP.Accept()
	if err != nil {
		t.Fatalf("a connection with its request was not accepted: %v", err)
	}
	defer c.Close()
	if c.RemoteAddr().String() != talker.LocalAddr().String() {
		t.Errorf("accepted %s, want the one that sent bytes (%s)", c.RemoteAddr(), talker.LocalAddr())
	}
}
