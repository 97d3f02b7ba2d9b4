package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"hop3/internal/hop3test"
)

// call is one request the fake admin API received.
type call struct {
	Method, Path, ContentType string
	Body                      string
}

func (c call) String() string { return c.Method + " " + c.Path }

// fakeAdmin stands in for Caddy's admin API. It keeps the set of "@id"s
// the config holds, so PATCH and DELETE of unknown ids answer 404 the way
// Caddy does; fail makes chosen requests fail.
type fakeAdmin struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	calls  []call
	ids    map[string]bool
	server bool              // hop3's server exists
	fail   map[string]int    // "METHOD path" -> status to answer
	get    map[string]string // path -> body for GET
	hook   func(call) (int, string, bool)
}

func newFakeAdmin(t *testing.T) *fakeAdmin {
	f := &fakeAdmin{t: t, ids: map[string]bool{}, fail: map[string]int{}, get: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdmin) client() *Client {
	c, err := NewClient(f.srv.URL)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *fakeAdmin) reply(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status/100 != 2 {
		fmt.Fprintf(w, `{"error":%q}`, msg)
		return
	}
	io.WriteString(w, msg)
}

func (f *fakeAdmin) serve(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c := call{Method: r.Method, Path: r.URL.Path, ContentType: r.Header.Get("Content-Type"), Body: string(b)}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	if f.hook != nil {
		if status, msg, ok := f.hook(c); ok {
			f.reply(w, status, msg)
			return
		}
	}
	if status, ok := f.fail[c.String()]; ok {
		f.reply(w, status, "injected failure")
		return
	}
	id, _ := strings.CutPrefix(c.Path, "/id/")
	switch {
	case c.Method == http.MethodGet:
		body, ok := f.get[c.Path]
		if !ok {
			f.reply(w, http.StatusBadRequest, "invalid traversal path at: "+c.Path)
			return
		}
		f.reply(w, http.StatusOK, body)
	case c.Path == "/load":
		f.ids = idsOf(f.t, b)
		f.server = f.ids[serverID]
		f.reply(w, http.StatusOK, "")
	case c.Path == "/config/apps/http/servers/hop3":
		if c.Method == http.MethodPatch && !f.server {
			f.reply(w, http.StatusNotFound, "[/config/apps/http/servers/hop3] key does not exist: hop3")
			return
		}
		f.server = true
		f.ids = idsOf(f.t, b)
		f.reply(w, http.StatusOK, "")
	case c.Path == "/id/"+serverID+"/routes/0":
		if !f.server {
			f.reply(w, http.StatusNotFound, "unknown object ID '"+serverID+"'")
			return
		}
		for k := range idsOf(f.t, b) {
			f.ids[k] = true
		}
		f.reply(w, http.StatusOK, "")
	case strings.HasPrefix(c.Path, "/id/"):
		if !f.ids[id] {
			f.reply(w, http.StatusNotFound, "unknown object ID '"+id+"'")
			return
		}
		if c.Method == http.MethodDelete {
			for k := range f.ids {
				if k == id || strings.HasPrefix(k, id+"_") {
					delete(f.ids, k)
				}
			}
		}
		f.reply(w, http.StatusOK, "")
	case c.Path == "/stop":
		f.reply(w, http.StatusOK, "")
	default:
		f.reply(w, http.StatusNotFound, "not found")
	}
}

// take returns the calls made since the last take.
func (f *fakeAdmin) take() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func callNames(cs []call) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

func idsOf(t *testing.T, b []byte) map[string]bool {
	ids := map[string]bool{}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Errorf("body is not JSON: %v", err)
		return ids
	}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if id, ok := x["@id"].(string); ok {
				ids[id] = true
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
	return ids
}

func TestNewClientAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr string
		ok   bool
	}{
		{"unix//run/hop3/caddy/admin.sock", true},
		{"unix//run/hop3/caddy/admin.sock|0600", true},
		{"http://127.0.0.1:2019", true},
		{"http://localhost:2019", true},
		{"http://[::1]:2019", true},
		{"http://127.0.0.1:2019/", true},
		{"unix/relative.sock", false},
		{"http://10.0.0.1:2019", false},
		{"http://example.com:2019", false},
		{"https://127.0.0.1:2019", false},
		{"127.0.0.1:2019", false},
		{"http://127.0.0.1:2019/config", false},
		{"http://user:pw@127.0.0.1:2019", false},
		{"", false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			t.Parallel()
			_, err := NewClient(tc.addr)
			if (err == nil) != tc.ok {
				t.Fatalf("NewClient(%q) error = %v, want ok=%v", tc.addr, err, tc.ok)
			}
		})
	}
}

func TestClientRequests(t *testing.T) {
	t.Parallel()
	f := newFakeAdmin(t)
	f.get["/config/apps/http"] = `{"servers":{"x":{}}}`
	f.get["/pki/ca/local/certificates"] = "-----BEGIN CERTIFICATE-----\n"
	f.ids["hop3_app_x"] = true
	f.server = true
	c := f.client()
	ctx := context.Background()

	var v map[string]map[string]any
	if err := c.Get(ctx, "apps/http", &v); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, ok := v["servers"]["x"]; !ok {
		t.Errorf("Get decoded %v", v)
	}
	var raw []byte
	if err := c.Get(ctx, "/pki/ca/local/certificates", &raw); err != nil || !strings.HasPrefix(string(raw), "-----BEGIN") {
		t.Errorf("Get raw = %q, %v", raw, err)
	}
	var s string
	if err := c.Get(ctx, "apps/http", &s); err != nil || !strings.Contains(s, "servers") {
		t.Errorf("Get string = %q, %v", s, err)
	}
	if err := c.Do(ctx, http.MethodPatch, "/id/hop3_app_x", map[string]any{"a": 1}); err != nil {
		t.Errorf("Do PATCH: %v", err)
	}
	if err := c.Do(ctx, http.MethodPut, "/id/hop3_server/routes/0", []byte(`{"@id":"y"}`)); err != nil {
		t.Errorf("Do PUT raw: %v", err)
	}
	if err := c.Load(ctx, []byte(`{"apps":{}}`)); err != nil {
		t.Errorf("Load: %v", err)
	}
	if err := c.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := c.Do(ctx, http.MethodGet, "apps", nil); err == nil {
		t.Error("Do accepted GET")
	}
	want := []call{
		{Method: "GET", Path: "/config/apps/http"},
		{Method: "GET", Path: "/pki/ca/local/certificates"},
		{Method: "GET", Path: "/config/apps/http"},
		{Method: "PATCH", Path: "/id/hop3_app_x", ContentType: "application/json", Body: `{"a":1}`},
		{Method: "PUT", Path: "/id/hop3_server/routes/0", ContentType: "application/json", Body: `{"@id":"y"}`},
		{Method: "POST", Path: "/load", ContentType: "application/json", Body: `{"apps":{}}`},
		{Method: "POST", Path: "/stop"},
	}
	got := f.take()
	if len(got) != len(want) {
		t.Fatalf("calls = %s", callNames(got))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/id/hop3_app_x":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error":"unknown object ID 'hop3_app_x'"}`)
		case "/config/text":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "plain failure\n")
		case "/config/empty":
			w.WriteHeader(http.StatusConflict)
		default:
			io.WriteString(w, "not json")
		}
	}))
	t.Cleanup(srv.Close)
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		name     string
		err      error
		want     string
		notFound bool
	}{
		{"caddy json error", c.Do(ctx, http.MethodPatch, "/id/hop3_app_x", struct{}{}),
			"caddy admin: PATCH /id/hop3_app_x: 404: unknown object ID 'hop3_app_x'", true},
		{"plain text error", c.Do(ctx, http.MethodDelete, "text", nil),
			"caddy admin: DELETE /config/text: 500: plain failure", false},
		{"empty error", c.Do(ctx, http.MethodPut, "empty", nil),
			"caddy admin: PUT /config/empty: 409: 409 Conflict", false},
		{"undecodable", c.Get(ctx, "x", &map[string]any{}),
			"caddy admin: GET /config/x: read response:", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.HasPrefix(tc.err.Error(), tc.want) {
				t.Fatalf("error = %v, want prefix %q", tc.err, tc.want)
			}
			if IsNotFound(tc.err) != tc.notFound {
				t.Errorf("IsNotFound = %v", !tc.notFound)
			}
			if wrapped := fmt.Errorf("set route: %w", tc.err); IsNotFound(wrapped) != tc.notFound {
				t.Errorf("IsNotFound through wrapping = %v", !tc.notFound)
			}
		})
	}
}

func TestClientUnixSocket(t *testing.T) {
	t.Parallel()
	dir := shortDir(t)
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := NewClient("unix/" + sock + "|0600")
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Path string }
	if err := c.Get(context.Background(), "/id/hop3_catchall", &out); err != nil {
		t.Fatalf("Get over unix socket: %v", err)
	}
	if out.Path != "/id/hop3_catchall" {
		t.Errorf("path = %q", out.Path)
	}

	// A missing socket is a transport error, not a 404.
	gone, _ := NewClient("unix/" + filepath.Join(dir, "gone.sock"))
	err = gone.Do(context.Background(), http.MethodDelete, "/id/x", nil)
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 0 || IsNotFound(err) || !strings.Contains(err.Error(), "caddy admin: DELETE /id/x: ") {
		t.Errorf("error for a missing socket = %v", err)
	}
}

// shortDir returns a fresh directory with a short path: unix socket paths
// must stay under 108 bytes and t.TempDir() paths can be long.
func shortDir(t *testing.T) string {
	t.Helper()
	return hop3test.ShortTemp(t)
}
