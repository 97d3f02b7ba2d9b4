package gitserver_test

import (
	"net"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"hop3/gitserver"
)

func TestMatchFrom(t *testing.T) {
	t.Parallel()
	tests := []struct {
		patterns string
		ip       string
		want     bool
	}{
		{"10.9.9.9", "10.9.9.9", true},
		{"10.9.9.9", "127.0.0.1", false},
		{"127.0.0.1", "127.0.0.1", true},
		{"10.0.0.0/8", "10.200.1.2", true},
		{"10.0.0.0/8", "11.0.0.1", false},
		{"10.0.0.*", "10.0.0.77", true},
		{"10.0.0.?", "10.0.0.7", true},
		{"10.0.0.?", "10.0.0.77", false},
		{"10.0.0.0/8,!10.0.0.5", "10.0.0.5", false},
		{"!10.0.0.5,10.0.0.0/8", "10.0.0.5", false}, // a negated match refuses, whatever the order
		{"!10.0.0.5,10.0.0.0/8", "10.0.0.6", true},
		{"!10.0.0.5", "10.0.0.6", false}, // only negations: nothing is allowed
		{"*", "192.0.2.1", true},
		{"::1", "::1", true},
		{"2001:db8::/32", "2001:db8::7", true},
		{"127.0.0.1", "::ffff:127.0.0.1", true}, // IPv4-mapped
		{"[12].0.0.1", "1.0.0.1", false},
	}
	for _, tt := range tests {
		if got := gitserver.MatchFrom(strings.Split(tt.patterns, ","), net.ParseIP(tt.ip)); got != tt.want {
			t.Errorf("MatchFrom(%q, %s) = %v, want %v", tt.patterns, tt.ip, got, tt.want)
		}
	}
}

func TestParseKeyOptions(t *testing.T) {
	t.Parallel()
	good := []struct{ in, out string }{
		{"", ""},
		{`from="10.9.9.9"`, `from="10.9.9.9"`},
		{`from="10.0.0.0/8,!10.0.0.5,192.168.*"`, `from="10.0.0.0/8,!10.0.0.5,192.168.*"`},
		{`expiry-time="20300102Z"`, `expiry-time="20300102000000Z"`},
		{`expiry-time="203001021530Z",FROM="127.0.0.1"`, `from="127.0.0.1",expiry-time="20300102153000Z"`},
	}
	for _, tt := range good {
		o, err := gitserver.ParseKeyOptions(tt.in)
		if err != nil || o.String() != tt.out {
			t.Errorf("ParseKeyOptions(%q) = %q, %v; want %q", tt.in, o.String(), err, tt.out)
			continue
		}
		// What String writes reads back the same.
		if again, err := gitserver.ParseKeyOptions(o.String()); err != nil || again.String() != o.String() {
			t.Errorf("%q does not read back: %q, %v", o.String(), again.String(), err)
		}
	}
	bad := []struct{ in, want string }{
		{`command="piku.py shell"`, `strip the command="..." prefix`},
		{`no-pty`, "option no-pty is not supported"},
		{`restrict`, "option restrict is not supported"},
		{`from="10.0.0.1",no-port-forwarding`, "option no-port-forwarding is not supported"},
		{`permitopen="x:1"`, "option permitopen is not supported"},
		{`environment="A=1"`, "option environment is not supported"},
		{`from=10.0.0.1`, "double quotes"},
		{`from="10.0.0.0/33"`, "not an address block"},
		{`from=""`, "empty pattern"},
		{`from="a",from="b"`, "twice"},
		{`expiry-time="2030"`, "YYYYMMDD"},
		{`expiry-time="20301301"`, "YYYYMMDD"},
		{`from="10.0.0.1`, "unterminated quote"},
	}
	for _, tt := range bad {
		_, err := gitserver.ParseKeyOptions(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseKeyOptions(%q) = %v, want one line with %q", tt.in, err, tt.want)
		}
	}
}

func TestKeyOptionsAllow(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 12, 0, 0, 0, time.UTC)
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}
	tests := []struct {
		opts string
		want string
	}{
		{"", ""},
		{`from="127.0.0.1"`, ""},
		{`from="10.9.9.9"`, "may not log in from 127.0.0.1:4000"},
		{`expiry-time="20300102Z"`, "expired"},
		{`expiry-time="203001021200Z"`, "expired"}, // at the instant itself
		{`expiry-time="203001021201Z"`, ""},
	}
	for _, tt := range tests {
		o, err := gitserver.ParseKeyOptions(tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		err = o.Allow(local, now)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("Allow(%s) = %v, want %q", tt.opts, err, tt.want)
		}
	}
}

func TestParseAuthorizedKey(t *testing.T) {
	t.Parallel()
	k := newKey(t)
	line := `from="10.9.9.9",expiry-time="20300101Z" ` + strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k.signer.PublicKey()))) + " alice@laptop"
	_, comment, o, err := gitserver.ParseAuthorizedKey(line)
	if err != nil || comment != "alice@laptop" || o.String() != `from="10.9.9.9",expiry-time="20300101000000Z"` {
		t.Fatalf("ParseAuthorizedKey = %q, %q, %v", comment, o.String(), err)
	}
	if _, _, _, err := gitserver.ParseAuthorizedKey(`command="echo hi",no-pty ` + string(gossh.MarshalAuthorizedKey(k.signer.PublicKey()))); err == nil || !strings.Contains(err.Error(), "command=") {
		t.Errorf("command= key accepted: %v", err)
	}
}

func FuzzParseKeyOptions(f *testing.F) {
	for _, s := range []string{`from="10.0.0.0/8,!10.0.0.5"`, `expiry-time="20300102Z"`, `no-pty`, `from="a\"b"`, `,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := gitserver.ParseKeyOptions(s)
		if err != nil {
			return
		}
		again, err := gitserver.ParseKeyOptions(o.String())
		if err != nil || again.String() != o.String() {
			t.Fatalf("%q -> %q does not read back: %q, %v", s, o.String(), again.String(), err)
		}
	})
}

// TestKeyOptionsAtLogin logs in over loopback with keys whose from= and
// expiry-time= allow it or not: a refused key gets no session, even when
// the same client then offers it with a valid signature.
func TestKeyOptionsAtLogin(t *testing.T) {
	t.Parallel()
	ts := startServer(t, gitserver.Config{})
	add := func(name, opts string) key {
		k := newKey(t)
		o, err := gitserver.ParseKeyOptions(opts)
		if err != nil {
			t.Fatal(err)
		}
		ts.keys.mu.Lock()
		ts.keys.ids[k.fp] = gitserver.Identity{Name: name, Admin: true, Limits: o}
		ts.keys.mu.Unlock()
		return k
	}
	tests := []struct {
		name, opts string
		ok         bool
	}{
		{"elsewhere", `from="10.9.9.9"`, false},
		{"here", `from="127.0.0.1"`, true},
		{"loopback-block", `from="127.0.0.0/8,!127.0.0.2"`, true},
		{"negated", `from="127.0.0.0/8,!127.0.0.1"`, false},
		{"expired", `expiry-time="20200101Z"`, false},
		{"valid", `expiry-time="29990101Z"`, true},
	}
	for _, tt := range tests {
		k := add(tt.name, tt.opts)
		c, err := gossh.Dial("tcp", ts.addr, ts.clientConfig(gossh.PublicKeys(k.signer)))
		if !tt.ok {
			if err == nil {
				c.Close()
				t.Errorf("%s (%s) logged in", tt.name, tt.opts)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s (%s): %v", tt.name, tt.opts, err)
			continue
		}
		if out, err := run(c, "whoami"); err != nil || !strings.Contains(out, tt.name) {
			t.Errorf("%s: whoami = %q, %v", tt.name, out, err)
		}
		c.Close()
	}
}
