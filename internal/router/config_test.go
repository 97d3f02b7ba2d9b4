package router

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func offOpts() Options {
	return Options{
		HTTPAddr:    "127.0.0.1:8080",
		AdminListen: "unix//var/lib/hop3/caddy/admin.sock|0600",
		Domain:      "hop3.example.com",
	}
}

func tlsOpts(mode TLSMode) Options {
	o := offOpts()
	o.HTTPAddr = ":80"
	o.HTTPSAddr = ":443"
	o.TLS = mode
	if mode == TLSACME {
		o.ACMEEmail = "ops@example.com"
		o.ACMECA = "https://acme-staging-v02.api.letsencrypt.org/directory"
	}
	return o
}

func withIssuer(o Options, f func(*Options)) Options {
	f(&o)
	return o
}

func webRoute(app string) Route {
	return Route{
		App:       app,
		Hosts:     []string{app + ".hop3.example.com"},
		Upstreams: []string{"unix//var/lib/hop3/run/" + app + "/web.sock"},
	}
}

// goldenCases are the configs kept under testdata/; the integration tests
// also run each through `caddy validate`.
func goldenCases() []struct {
	name   string
	opts   Options
	routes []Route
} {
	twoApps := []Route{webRoute("blog"), {
		App:       "api",
		Hosts:     []string{"api.hop3.example.com", "API.Example.org"},
		Upstreams: []string{"127.0.0.1:5001", "127.0.0.1:5002"},
	}}
	httpsOnly := webRoute("shop")
	httpsOnly.HTTPSOnly = true
	maxBody := webRoute("upload")
	maxBody.MaxBodySize = 10 << 20
	staticPaths := webRoute("django")
	staticPaths.StaticPaths = []string{"/static", "/media/public"}
	staticPaths.StaticServer = "unix//var/lib/hop3/run/django/static.sock"
	wait := offOpts()
	wait.UpstreamWait = 1500 * time.Millisecond
	inherited := offOpts()
	inherited.ListenFDs = true
	inheritedTLS := tlsOpts(TLSInternal)
	inheritedTLS.ListenFDs = true
	issuer := tlsOpts(TLSACME)
	issuer.ACMECARoot = "/var/lib/hop3/caddy/acme-ca-root.pem"
	issuer.ACMEEABKeyID = "kid-1"
	issuer.ACMEEABHMAC = "c2VjcmV0LWhtYWMta2V5"
	issuer.ACMEFallback = []string{"https://acme.zerossl.com/v2/DV90", "https://dv.acme-v02.api.pki.goog/directory"}
	onDemand := tlsOpts(TLSACME)
	onDemand.OnDemandAsk = "http://127.0.0.1:40123/ask"
	dns := tlsOpts(TLSACME)
	dns.Domain = "hop3.example.com"
	dns.ACMEFallback = []string{"https://acme.zerossl.com/v2/DV90"}
	dns.ACMEDNS = &DNSProvider{Name: "cloudflare", Config: map[string]string{"api_token": "tok-123"}}
	wildApp := webRoute("wild")
	wildApp.Hosts = append(wildApp.Hosts, "*.wild.hop3.example.com", "shop.example.org")
	return []struct {
		name   string
		opts   Options
		routes []Route
	}{
		{"empty", offOpts(), nil},
		{"off", offOpts(), twoApps},
		{"internal", tlsOpts(TLSInternal), twoApps},
		{"acme", tlsOpts(TLSACME), []Route{webRoute("blog"), httpsOnly}},
		{"static_site", offOpts(), []Route{{
			App: "site", Hosts: []string{"site.hop3.example.com"},
			Static: true, StaticServer: "unix//var/lib/hop3/run/site/static.sock",
		}}},
		{"static_paths", offOpts(), []Route{staticPaths}},
		{"stopped", offOpts(), []Route{{App: "sleepy", Hosts: []string{"sleepy.hop3.example.com"}, Stopped: true}}},
		{"https_only", tlsOpts(TLSInternal), []Route{httpsOnly}},
		{"https_only_tls_off", offOpts(), []Route{httpsOnly}},
		{"max_body", offOpts(), []Route{maxBody}},
		{"upstream_wait", wait, []Route{webRoute("blog")}},
		{"inherited", inherited, twoApps},
		{"inherited_tls", inheritedTLS, []Route{webRoute("blog"), httpsOnly}},
		{"host_order", offOpts(), hostOrder()},
		{"acme_issuers", issuer, []Route{webRoute("blog")}},
		{"php", offOpts(), []Route{{
			App: "wiki", Hosts: []string{"wiki.hop3.example.com"},
			Upstreams:    []string{"unix//var/lib/hop3/run/wiki/web.sock"},
			PHPRoot:      "/var/lib/hop3/apps/wiki/current/public",
			StaticServer: "unix//var/lib/hop3/run/wiki/static.sock",
			StaticPaths:  []string{"/uploads"},
		}}},
		{"on_demand", onDemand, []Route{webRoute("blog"), wildApp}},
		{"acme_dns", dns, []Route{webRoute("blog"), wildApp}},
	}
}

// hostOrder are routes whose order by app name would let a wildcard catch
// another app's exact host: "aaa" has *.example.test, "zzz" has
// www.example.test.
func hostOrder() []Route {
	aaa := webRoute("aaa")
	aaa.Hosts = append(aaa.Hosts, "*.example.test")
	zzz := webRoute("zzz")
	zzz.Hosts = append(zzz.Hosts, "www.example.test")
	deep := webRoute("mmm")
	deep.Hosts = []string{"*.deep.example.test"}
	return []Route{aaa, deep, zzz, webRoute("bbb")}
}

// TestRouteOrder pins the order of the server's routes: exact hosts first,
// then wildcards from the longest suffix to the shortest, whatever the apps
// are called; an app with both has two routes.
func TestRouteOrder(t *testing.T) {
	t.Parallel()
	cfg, err := Config(offOpts(), hostOrder())
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						ID    string `json:"@id"`
						Match []struct {
							Host []string `json:"host"`
						} `json:"match"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &v); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range v.Apps.HTTP.Servers[ServerName].Routes {
		if len(r.Match) > 0 {
			got = append(got, r.ID+" "+strings.Join(r.Match[0].Host, ","))
		}
	}
	want := []string{
		"hop3_app_aaa aaa.hop3.example.com",
		"hop3_app_bbb bbb.hop3.example.com",
		"hop3_app_zzz zzz.hop3.example.com,www.example.test",
		"hop3_app_mmm *.deep.example.test",
		"hop3_app_aaa_wildcard *.example.test",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes in order:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestConfigGolden(t *testing.T) {
	t.Parallel()
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Config(tc.opts, tc.routes)
			if err != nil {
				t.Fatalf("Config: %v", err)
			}
			golden := filepath.Join("testdata", tc.name+".json")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Config(%s) differs from %s; run go test -update and review the diff\ngot:\n%s", tc.name, golden, got)
			}
			checkIDs(t, got)
		})
	}
}

// checkIDs asserts that every "@id" is unique and that every app route and
// its proxy carry the ids Set and Remove address.
func checkIDs(t *testing.T, cfg []byte) {
	t.Helper()
	var v any
	if err := json.Unmarshal(cfg, &v); err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	ids := map[string]int{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if id, ok := x["@id"].(string); ok {
				ids[id]++
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	for id, n := range ids {
		if n > 1 {
			t.Errorf("id %s used %d times", id, n)
		}
	}
	for _, id := range []string{serverID, catchAllID, errorID} {
		if ids[id] != 1 {
			t.Errorf("id %s missing", id)
		}
	}
}

func TestConfigShape(t *testing.T) {
	t.Parallel()
	routes := []Route{webRoute("zeta"), webRoute("alpha")}
	cfg, err := Config(offOpts(), routes)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Admin struct {
			Listen string `json:"listen"`
			Config struct {
				Persist *bool `json:"persist"`
			} `json:"config"`
		} `json:"admin"`
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []struct {
						ID string `json:"@id"`
					} `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(cfg, &c); err != nil {
		t.Fatal(err)
	}
	if c.Admin.Config.Persist == nil || *c.Admin.Config.Persist {
		t.Errorf("admin.config.persist must be false")
	}
	if c.Admin.Listen != offOpts().AdminListen {
		t.Errorf("admin.listen = %q", c.Admin.Listen)
	}
	var ids []string
	for _, r := range c.Apps.HTTP.Servers[ServerName].Routes {
		ids = append(ids, r.ID)
	}
	// Apps sorted, catch-all last.
	want := []string{"hop3_app_alpha", "hop3_app_zeta", "hop3_catchall"}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("route ids = %v, want %v", ids, want)
	}
	if strings.Contains(string(cfg), "keep_alive") {
		t.Errorf("config must leave upstream keep-alive at Caddy's default (on)")
	}
}

func TestConfigRejects(t *testing.T) {
	t.Parallel()
	dup := webRoute("a")
	dupHost := webRoute("b")
	dupHost.Hosts = []string{"A.hop3.example.com"}
	tests := []struct {
		name   string
		opts   Options
		routes []Route
		want   string
	}{
		{"no http addr", Options{}, nil, "http addr"},
		{"tls without https addr", Options{HTTPAddr: ":80", TLS: TLSInternal}, nil, "https addr"},
		{"same addrs", Options{HTTPAddr: ":80", HTTPSAddr: ":80", TLS: TLSACME}, nil, "same"},
		{"unknown mode", Options{HTTPAddr: ":80", TLS: TLSMode(9)}, nil, "tls mode"},
		{"bad domain", Options{HTTPAddr: ":80", Domain: "a b"}, nil, "domain"},
		{"duplicate app", offOpts(), []Route{dup, dup}, "listed twice"},
		{"shared host", offOpts(), []Route{webRoute("a"), dupHost}, "claimed by both"},
		{"invalid route", offOpts(), []Route{{App: "A"}}, "app name"},
		{"ca root without acme", withIssuer(tlsOpts(TLSInternal), func(o *Options) { o.ACMECARoot = "/r.pem" }), nil, "need tls acme"},
		{"fallback with tls off", withIssuer(offOpts(), func(o *Options) { o.ACMEFallback = []string{"https://ca.test/dir"} }), nil, "need tls acme"},
		{"relative ca root", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMECARoot = "r.pem" }), nil, "not an absolute path"},
		{"eab key id alone", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEEABKeyID = "kid" }), nil, "both a key id and an hmac"},
		{"eab hmac alone", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEEABHMAC = "mac" }), nil, "both a key id and an hmac"},
		{"eab placeholder", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEEABKeyID, o.ACMEEABHMAC = "{env.X}", "m" }), nil, "braces"},
		{"http fallback", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEFallback = []string{"http://ca.test/dir"} }), nil, "not an https URL"},
		{"fallback without host", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEFallback = []string{"https:///dir"} }), nil, "not an https URL"},
		{"on demand with tls off", withIssuer(offOpts(), func(o *Options) { o.OnDemandAsk = "http://127.0.0.1:1/ask" }), nil, "on-demand tls needs tls"},
		{"on demand placeholder", withIssuer(tlsOpts(TLSInternal), func(o *Options) { o.OnDemandAsk = "http://{env.X}/ask" }), nil, "not an http URL"},
		{"on demand unix path", withIssuer(tlsOpts(TLSInternal), func(o *Options) { o.OnDemandAsk = "unix//run/ask.sock" }), nil, "not an http URL"},
		{"dns with internal", withIssuer(tlsOpts(TLSInternal), func(o *Options) { o.Domain = "example.com"; o.ACMEDNS = &DNSProvider{Name: "cloudflare"} }), nil, "acme dns needs tls acme"},
		{"dns on localhost", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.Domain = "localhost"; o.ACMEDNS = &DNSProvider{Name: "cloudflare"} }), nil, "no wildcard"},
		{"dns without domain", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.Domain = ""; o.ACMEDNS = &DNSProvider{Name: "cloudflare"} }), nil, "no wildcard"},
		{"dns bad provider", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.Domain = "example.com"; o.ACMEDNS = &DNSProvider{Name: "cloud.flare"} }), nil, "want a Caddy module name"},
		{"dns bad key", withIssuer(tlsOpts(TLSACME), func(o *Options) {
			o.Domain = "example.com"
			o.ACMEDNS = &DNSProvider{Name: "x", Config: map[string]string{"api-token": "t"}}
		}), nil, "setting"},
		{"dns key name", withIssuer(tlsOpts(TLSACME), func(o *Options) {
			o.Domain = "example.com"
			o.ACMEDNS = &DNSProvider{Name: "x", Config: map[string]string{"name": "t"}}
		}), nil, "setting"},
		{"fallback placeholder", withIssuer(tlsOpts(TLSACME), func(o *Options) { o.ACMEFallback = []string{"https://{env.CA}/dir"} }), nil, "not an https URL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Config(tc.opts, tc.routes)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Config error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestRouteValidate(t *testing.T) {
	t.Parallel()
	ok := webRoute("app")
	mod := func(f func(*Route)) Route {
		r := ok.clone()
		f(&r)
		return r
	}
	tests := []struct {
		name  string
		route Route
		want  string // "" means valid
	}{
		{"web", ok, ""},
		{"tcp upstream", mod(func(r *Route) { r.Upstreams = []string{"127.0.0.1:5001"} }), ""},
		{"static site", mod(func(r *Route) { r.Upstreams = nil; r.Static = true; r.StaticServer = "unix//srv/s.sock" }), ""},
		{"stopped without upstream", mod(func(r *Route) { r.Upstreams = nil; r.Stopped = true }), ""},
		{"stopped keeps upstream", mod(func(r *Route) { r.Stopped = true }), ""},
		{"wildcard host", mod(func(r *Route) { r.Hosts = []string{"*.example.com"} }), ""},
		{"ip host", mod(func(r *Route) { r.Hosts = []string{"192.0.2.7"} }), ""},
		{"static paths", mod(func(r *Route) { r.StaticPaths = []string{"/static", "/media/x"}; r.StaticServer = "unix//srv/s.sock" }), ""},
		{"upper app", mod(func(r *Route) { r.App = "App" }), "app name"},
		{"digit first", mod(func(r *Route) { r.App = "1app" }), "app name"},
		{"underscore", mod(func(r *Route) { r.App = "my_app" }), "app name"},
		{"empty app", mod(func(r *Route) { r.App = "" }), "app name"},
		// The router reads app and host names as the rest of hop3 does
		// (appname.Validate, hostclaim.Normalize).
		{"app ending in a dash", mod(func(r *Route) { r.App = "app-" }), "app name"},
		{"app too long", mod(func(r *Route) { r.App = strings.Repeat("a", 41) }), "app name"},
		{"host with a trailing dot", mod(func(r *Route) { r.Hosts = []string{"a.example.com."} }), "not a valid hostname"},
		{"host label starting with a dash", mod(func(r *Route) { r.Hosts = []string{"-a.example.com"} }), "not a valid hostname"},
		{"wildcard not first", mod(func(r *Route) { r.Hosts = []string{"a.*.example.com"} }), "not a valid hostname"},
		{"ipv6 host", mod(func(r *Route) { r.Hosts = []string{"::1"} }), "not a valid hostname"},
		{"no hosts", mod(func(r *Route) { r.Hosts = nil }), "no hosts"},
		{"host with port", mod(func(r *Route) { r.Hosts = []string{"a.example.com:80"} }), "not a valid hostname"},
		{"host placeholder", mod(func(r *Route) { r.Hosts = []string{"{env.X}"} }), "not a valid hostname"},
		{"host twice", mod(func(r *Route) { r.Hosts = []string{"a.example.com", "A.example.com"} }), "twice"},
		{"no upstream", mod(func(r *Route) { r.Upstreams = nil }), "no upstreams"},
		{"static and upstream", mod(func(r *Route) { r.Static = true; r.StaticServer = "unix//srv/s.sock" }), "static site has no upstreams"},
		{"relative socket", mod(func(r *Route) { r.Upstreams = []string{"unix/run/web.sock"} }), "absolute"},
		{"long socket", mod(func(r *Route) { r.Upstreams = []string{"unix//" + strings.Repeat("x", 120)} }), "107 bytes"},
		{"bare upstream", mod(func(r *Route) { r.Upstreams = []string{"localhost"} }), "unix//path or host:port"},
		{"upstream placeholder", mod(func(r *Route) { r.Upstreams = []string{"{env.UP}:80"} }), "forbidden"},
		{"static site without server", mod(func(r *Route) { r.Upstreams = nil; r.Static = true }), "static file server"},
		{"static paths without server", mod(func(r *Route) { r.StaticPaths = []string{"/s"} }), "static file server"},
		{"relative static server", mod(func(r *Route) { r.StaticPaths = []string{"/s"}; r.StaticServer = "unix/s.sock" }), "absolute"},
		{"static server placeholder", mod(func(r *Route) { r.StaticPaths = []string{"/s"}; r.StaticServer = "unix//{env.X}" }), "forbidden"},
		{"prefix root", mod(func(r *Route) { r.StaticPaths = []string{"/"}; r.StaticServer = "unix//s.sock" }), "clean absolute URL path"},
		{"prefix slash", mod(func(r *Route) { r.StaticPaths = []string{"/static/"}; r.StaticServer = "unix//s.sock" }), "clean absolute URL path"},
		{"prefix glob", mod(func(r *Route) { r.StaticPaths = []string{"/static*"}; r.StaticServer = "unix//s.sock" }), "clean absolute URL path"},
		{"prefix relative", mod(func(r *Route) { r.StaticPaths = []string{"static"}; r.StaticServer = "unix//s.sock" }), "clean absolute URL path"},
		{"prefix twice", mod(func(r *Route) { r.StaticPaths = []string{"/s", "/s"}; r.StaticServer = "unix//s.sock" }), "twice"},
		{"negative body", mod(func(r *Route) { r.MaxBodySize = -1 }), "negative"},
		{"php", mod(func(r *Route) { r.PHPRoot = "/srv/app/public"; r.StaticServer = "unix//s.sock" }), ""},
		{"php without static server", mod(func(r *Route) { r.PHPRoot = "/srv/app/public" }), "static file server"},
		{"php relative root", mod(func(r *Route) { r.PHPRoot = "public"; r.StaticServer = "unix//s.sock" }), "absolute clean path"},
		{"php root placeholder", mod(func(r *Route) { r.PHPRoot = "/srv/{env.X}"; r.StaticServer = "unix//s.sock" }), "absolute clean path"},
		{"php static site", mod(func(r *Route) {
			r.Upstreams = nil
			r.Static = true
			r.PHPRoot = "/srv"
			r.StaticServer = "unix//s.sock"
		}), "not a PHP site"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.route.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestTLSMode(t *testing.T) {
	t.Parallel()
	for _, m := range []TLSMode{TLSOff, TLSInternal, TLSACME} {
		got, err := ParseTLSMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseTLSMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := ParseTLSMode("letsencrypt"); err == nil {
		t.Error("ParseTLSMode accepted an unknown mode")
	}
	if s := TLSMode(7).String(); s != "TLSMode(7)" {
		t.Errorf("String of unknown mode = %q", s)
	}
}
