package hostclaim

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	r := Rule{Domain: "hop3.test"}
	held := []Held{
		{"b", "b.hop3.test"},
		{"b", "www.example.test"},
		{"c", "*.wild.test"},
		{"a", "mine.example.test"},
	}
	tests := []struct {
		host  string
		admin bool
		want  string // "" allowed, else part of the refusal
		owner string
	}{
		// A deployer of a.
		{"a.hop3.test", false, "", ""},
		{"*.a.hop3.test", false, "", ""},
		{"api.a.hop3.test", false, "", ""},
		{"mine.example.test", false, "", ""},
		{"new.example.test", false, "", ""},
		{"*.hop3.test", false, "platform's", ""},
		{"hop3.test", false, "apex", ""},
		{"localhost", false, "platform's", ""},
		{"127.0.0.1", false, "IP address", ""},
		{"b.hop3.test", false, "reserved for an app named b", "b"},
		// The refusal says what the app may have instead.
		{"www.hop3.test", true, "under hop3.test an app answers to a.hop3.test and the names below it; for other names use a domain of your own", "www"},
		{"x.b.hop3.test", false, "reserved for an app named b", "b"},
		{"*.b.hop3.test", false, "reserved for an app named b", "b"},
		{"d.hop3.test", false, "reserved for an app named d", "d"}, // before d exists
		{"1x.hop3.test", false, "platform's", ""},
		{"www.example.test", false, "belongs to app b", "b"},
		{"*.example.test", false, "overlaps www.example.test of app b", "b"},
		{"x.wild.test", false, "overlaps *.wild.test of app c", "c"},
		{"*.wild.test", false, "belongs to app c", "c"},
		{"x.y.wild.test", false, "", ""}, // one label deep, as Caddy matches
		// An admin.
		{"*.hop3.test", true, "", ""},
		{"hop3.test", true, "", ""},
		{"localhost", true, "", ""},
		{"127.0.0.1", true, "", ""},
		{"x.wild.test", true, "", ""},    // exact under another's wildcard: the exact host wins
		{"*.example.test", true, "", ""}, // wildcard over another's exact host: that host keeps winning
		{"www.example.test", true, "belongs to app b", "b"},
		{"*.wild.test", true, "belongs to app c", "c"},
		{"b.hop3.test", true, "reserved for an app named b", "b"},
		{"*.b.hop3.test", true, "reserved for an app named b", "b"},
	}
	for _, tt := range tests {
		err := r.Check("a", tt.host, tt.admin, held)
		if tt.want == "" {
			if err != nil {
				t.Errorf("Check(a, %s, admin=%v) = %v, want allowed", tt.host, tt.admin, err)
			}
			continue
		}
		var ce *Error
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), tt.want) || ce.Owner != tt.owner || ce.Host != tt.host {
			t.Errorf("Check(a, %s, admin=%v) = %#v, want %q owned by %q", tt.host, tt.admin, err, tt.want, tt.owner)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("refusal is not one line: %q", err)
		}
	}
}

func TestNamespaceLocalhostDomain(t *testing.T) {
	t.Parallel()
	r := Rule{Domain: "localhost"}
	for host, want := range map[string]string{"a.localhost": "a", "x.a.localhost": "a", "*.a.localhost": "a", "*.localhost": "", "localhost": ""} {
		if got, _ := r.Namespace(host); got != want {
			t.Errorf("Namespace(%s) = %q, want %q", host, got, want)
		}
	}
	if err := r.Check("a", "*.localhost", false, nil); err == nil {
		t.Error("a deployer took *.localhost")
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"WWW.Example.COM": "www.example.com", "*.x.test": "*.x.test", "127.0.0.1": "127.0.0.1"} {
		if got, err := Normalize(in); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a..b", "x.*.y", "http://x", "x.test.", "a b", "-x.test", "::1", strings.Repeat("a.", 130) + "a"} {
		if _, err := Normalize(in); err == nil {
			t.Errorf("Normalize(%q) accepted", in)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"example.com", "*.a.b", "A.COM", "a..b", "-x", "é.com", "a:1", "127.0.0.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := Normalize(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			return
		}
		if h != strings.ToLower(h) || len(h) > MaxLen || strings.ContainsAny(h, " :/\n") {
			t.Errorf("Normalize(%q) = %q", s, h)
		}
		if again, err := Normalize(h); err != nil || again != h {
			t.Errorf("not stable: %q -> %q -> %q, %v", s, h, again, err)
		}
	})
}
