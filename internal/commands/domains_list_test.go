package commands

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// withoutReads drops the backend calls that only read (the listing reads
// the live environment).
func withoutReads(calls []string) []string {
	return slices.DeleteFunc(calls, func(c string) bool { return strings.HasPrefix(c, "LiveEnv ") })
}

// `domains APP` lists every host the app serves: its own, those added with
// domains:add, and those its environment names (HOST_NAME, else piku's
// NGINX_SERVER_NAME), from the live release (config over the repository's
// ENV and .env) or, before the first deploy, from config.
func TestDomainsListsConfigHosts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("live", "web: x\n")
	e.app("fresh", "")
	ctx := context.Background()
	if err := e.st.AddDomains(ctx, "live", []string{"added.example.com"}); err != nil {
		t.Fatal(err)
	}
	e.be.liveEnv = map[string]string{"NGINX_SERVER_NAME": "Shop.example.com, www.shop.example.com added.example.com _"}
	var d domainsJSON
	if err := json.Unmarshal([]byte(e.ok("domains", "live", "--json").stdout), &d); err != nil {
		t.Fatal(err)
	}
	if d.ConfigKey != "NGINX_SERVER_NAME" || !slices.Equal(d.FromConfig, []string{"shop.example.com", "www.shop.example.com"}) {
		t.Errorf("domains --json = %+v", d)
	}
	want := "live.localhost (default)\nadded.example.com\nshop.example.com (NGINX_SERVER_NAME)\nwww.shop.example.com (NGINX_SERVER_NAME)\n"
	if r := e.ok("domains", "live"); r.stdout != want {
		t.Errorf("domains = %q, want %q", r.stdout, want)
	}

	if err := e.st.SetConfig(ctx, "fresh", map[string]string{"HOST_NAME": "fresh.example.com", "NGINX_SERVER_NAME": "ignored.example.com"}); err != nil {
		t.Fatal(err)
	}
	if r := e.ok("domains", "fresh"); r.stdout != "fresh.localhost (default)\nfresh.example.com (HOST_NAME)\n" {
		t.Errorf("domains of an app never deployed = %q", r.stdout)
	}
}
