package router

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// requestTimeout bounds one admin call when the caller's context has no
// deadline: a wedged Caddy must not hang hop3 forever.
const requestTimeout = 2 * time.Minute

// maxErrorBody bounds how much of an error response is kept.
const maxErrorBody = 4 << 10

// Client talks to Caddy's JSON admin API.
type Client struct {
	addr string // as given, for messages
	base string // URL prefix requests are built on
	http *http.Client
}

// NewClient returns a client for the admin endpoint at addr:
// "unix//abs/path.sock" (an optional "|0600" mode suffix, as in
// admin.listen, is ignored) or "http://127.0.0.1:2019". Only loopback hosts
// are accepted over TCP: the admin API has no authentication.
func NewClient(addr string) (*Client, error) {
	tr := &http.Transport{
		// Admin calls are rare and Caddy may be restarted between
		// them; a fresh connection per call never meets a dead one.
		DisableKeepAlives: true,
	}
	c := &Client{addr: addr, http: &http.Client{Transport: tr, Timeout: requestTimeout}}
	if sock, ok := strings.CutPrefix(addr, "unix/"); ok {
		sock, _, _ = strings.Cut(sock, "|")
		if !filepath.IsAbs(sock) {
			return nil, fmt.Errorf("new caddy admin client: socket path %q is not absolute", sock)
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
		// Caddy 2.7 to 2.9 accept only an empty Host, 127.0.0.1 or ::1
		// on a unix socket without origins; 2.10+ accept any.
		c.base = "http://127.0.0.1"
		return c, nil
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("new caddy admin client: address %q must be unix//<abs path> or http://127.0.0.1:<port>", addr)
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("new caddy admin client: host %q is not loopback", host)
	}
	c.base = "http://" + u.Host
	return c, nil
}

// Addr returns the address the client was created with.
func (c *Client) Addr() string { return c.addr }

// Error is a failed admin call: a status and Caddy's error text, or a
// transport error with Status 0.
type Error struct {
	Method  string
	Path    string
	Status  int
	Message string
	Err     error // transport error, when Status is 0
}

// Error formats like "caddy admin: PATCH /id/x: 404: unknown object ID 'x'".
func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("caddy admin: %s %s: %v", e.Method, e.Path, e.Err)
	}
	return fmt.Sprintf("caddy admin: %s %s: %d: %s", e.Method, e.Path, e.Status, e.Message)
}

// Unwrap returns the transport error, if any.
func (e *Error) Unwrap() error { return e.Err }

// IsNotFound reports whether err is an admin answer 404: an unknown id or
// a missing config key.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Load replaces Caddy's whole config with cfg (POST /load). Caddy keeps the
// old config when the new one fails.
func (c *Client) Load(ctx context.Context, cfg []byte) error {
	return c.do(ctx, http.MethodPost, "/load", json.RawMessage(cfg), nil)
}

// Get decodes the JSON at path into out. A path without a leading slash is
// relative to /config/ ("apps/http/servers"); others are used as they are
// ("/id/hop3_app_x", "/pki/ca/local/certificates"). out may be nil, a
// *[]byte or *string for the raw body, or anything encoding/json decodes.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, apiPath(path), nil, out)
}

// Do sends a mutating request: POST, PUT, PATCH or DELETE. body is encoded
// as JSON unless it is a []byte or json.RawMessage, which are sent as they
// are; nil sends no body. Paths are resolved as for Get.
func (c *Client) Do(ctx context.Context, method, path string, body any) error {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return fmt.Errorf("caddy admin: %s %s: method not allowed here", method, path)
	}
	return c.do(ctx, method, apiPath(path), body, nil)
}

// Stop asks Caddy to shut down gracefully; the process exits. It is meant
// for a Caddy hop3 does not supervise: a managed one is started again, so
// use Caddy.Stop for that.
func (c *Client) Stop(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/stop", nil, nil)
}

func apiPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return "/config/" + p
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	fail := func(err error) error { return &Error{Method: method, Path: path, Err: err} }
	var rd io.Reader
	if body != nil {
		var b []byte
		switch v := body.(type) {
		case []byte:
			b = v
		case json.RawMessage:
			b = v
		default:
			var err error
			if b, err = json.Marshal(v); err != nil {
				return fail(fmt.Errorf("encode body: %w", err))
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fail(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fail(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return &Error{Method: method, Path: path, Status: resp.StatusCode, Message: errorText(raw, resp.Status)}
	}
	switch o := out.(type) {
	case nil:
		_, err = io.Copy(io.Discard, resp.Body)
	case *[]byte:
		*o, err = io.ReadAll(resp.Body)
	case *string:
		var b []byte
		b, err = io.ReadAll(resp.Body)
		*o = string(b)
	default:
		err = json.NewDecoder(resp.Body).Decode(out)
	}
	if err != nil {
		return fail(fmt.Errorf("read response: %w", err))
	}
	return nil
}

// errorText extracts Caddy's {"error": "..."} message, falling back to the
// raw body and then to the status line.
func errorText(raw []byte, status string) string {
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return e.Error
	}
	if s := strings.TrimSpace(string(raw)); s != "" {
		return s
	}
	return status
}
