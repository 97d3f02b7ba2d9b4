package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestRouterAttachEmptyHTTP attaches hop3 to someone else's Caddy whose
// apps.http has no servers key: Caddy answers the PATCH there with 500
// "invalid traversal path", and hop3 must create the key anyway.
func TestRouterAttachEmptyHTTP(t *testing.T) {
	t.Parallel()
	owner := startOwnerCaddy(t)
	req, err := http.NewRequest(http.MethodDelete, "http://127.0.0.1/config/apps/http/servers", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := owner.admin.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("empty the owner's apps.http: %v %v", resp, err)
	}
	resp.Body.Close()
	if got := strings.TrimSpace(string(adminGet(t, owner.admin, "/config/apps/http"))); got != "{}" {
		t.Fatalf("owner's apps.http = %s, want {}", got)
	}
	root := shortTemp(t)
	d := startDaemon(t, root, "127.0.0.1:0", "--caddy-admin", "unix/"+owner.sock)
	alice := newUser(t, "alice")
	d.register(alice)
	newWorkdir(t, routerApp("ext", nil)).mustPush(d, alice, "ext")
	wantBody(t, d, "ext.localhost", "/e", "ext /e")
}
