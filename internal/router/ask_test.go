package router

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAskHandler answers Caddy's on-demand permission requests from the
// routes: exact hosts and one label under a wildcard are claimed; the
// wildcard's own apex, deeper names, other hosts and malformed names are
// not.
func TestAskHandler(t *testing.T) {
	t.Parallel()
	rt := New(tlsOpts(TLSACME), nil, nil)
	wild := webRoute("wild")
	wild.Hosts = []string{"wild.hop3.example.com", "*.Shop.example.org"}
	if err := rt.SetDesired([]Route{webRoute("blog"), wild}); err != nil {
		t.Fatal(err)
	}
	h := AskHandler(rt.Claims)
	tests := []struct {
		name   string
		method string
		target string
		want   int
	}{
		{"exact", "GET", "/ask?domain=blog.hop3.example.com", 200},
		{"exact, other case", "GET", "/ask?domain=BLOG.hop3.example.com", 200},
		{"under a wildcard", "GET", "/ask?domain=eu.shop.example.org", 200},
		{"wildcard's apex", "GET", "/ask?domain=shop.example.org", 403},
		{"two labels under a wildcard", "GET", "/ask?domain=a.eu.shop.example.org", 403},
		{"unclaimed", "GET", "/ask?domain=evil.example.net", 403},
		{"unclaimed under the domain", "GET", "/ask?domain=nobody.hop3.example.com", 403},
		{"wildcard itself", "GET", "/ask?domain=" + url.QueryEscape("*.shop.example.org"), 400},
		{"no domain", "GET", "/ask", 400},
		{"two domains", "GET", "/ask?domain=blog.hop3.example.com&domain=x.example.net", 400},
		{"empty", "GET", "/ask?domain=", 400},
		{"with port", "GET", "/ask?domain=blog.hop3.example.com:443", 400},
		{"bad label", "GET", "/ask?domain=-x.hop3.example.com", 400},
		{"trailing dot", "GET", "/ask?domain=blog.hop3.example.com.", 400},
		{"other path", "GET", "/config?domain=blog.hop3.example.com", 404},
		{"post", "POST", "/ask?domain=blog.hop3.example.com", 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(tc.method, tc.target, nil))
			if w.Code != tc.want {
				t.Errorf("%s %s = %d, want %d (%s)", tc.method, tc.target, w.Code, tc.want, w.Body)
			}
		})
	}
	// A route added later is claimed at once: the handler reads the
	// router's current routes.
	if err := rt.SetDesired([]Route{webRoute("late")}); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{"late.hop3.example.com": true, "blog.hop3.example.com": false} {
		if got := rt.Claims(host); got != want {
			t.Errorf("Claims(%s) = %v after the routes changed", host, got)
		}
	}
}

// TestListenAsk serves the endpoint on loopback TCP, where Caddy's
// permission module can reach it.
func TestListenAsk(t *testing.T) {
	t.Parallel()
	s, err := ListenAsk(func(h string) bool { return h == "yes.example.com" }, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Close(ctx)
	})
	u, err := url.Parse(s.URL())
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Path != AskPath {
		t.Fatalf("URL() = %q", s.URL())
	}
	for host, want := range map[string]int{"yes.example.com": 200, "no.example.com": 403} {
		resp, err := http.Get(s.URL() + "?domain=" + host)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("ask %s = %d, want %d", host, resp.StatusCode, want)
		}
	}
}

func TestParseModules(t *testing.T) {
	t.Parallel()
	out := "admin.api.load\nhttp.handlers.reverse_proxy\n\n  Standard modules: 2\n\ndns.providers.cloudflare\n\n  Non-standard modules: 1\n\n  Unknown modules: 0\n"
	got := ParseModules([]byte(out))
	want := []string{"admin.api.load", "http.handlers.reverse_proxy", "dns.providers.cloudflare"}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseModules = %v, want %v", got, want)
	}
	cf := DNSProvider{Name: "cloudflare"}
	if msg := cf.MissingModule("/bin/caddy", got); msg != "" {
		t.Errorf("cloudflare reported missing: %s", msg)
	}
	r53 := DNSProvider{Name: "route53"}
	if msg := r53.MissingModule("/bin/caddy", got); msg == "" || !strings.Contains(msg, "dns.providers.route53") || !strings.Contains(msg, "xcaddy build --with github.com/caddy-dns/route53") {
		t.Errorf("route53 missing message = %q", msg)
	}
}
