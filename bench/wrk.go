package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkResult is one wrk run.
type wrkResult struct {
	RPS      float64
	P50, P99 time.Duration
	Requests int
	Errors   int // socket errors plus non-2xx/3xx responses
}

var (
	reRPS      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs     = regexp.MustCompile(`(\d+) requests in`)
	rePct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	reSockErr  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkThreads = 1
)

// runWrk runs `wrk -t1 -cN -dD --latency` against url with a Host header.
func runWrk(ctx context.Context, url, host string, conns int, d time.Duration) (wrkResult, string, error) {
	args := []string{"-t" + strconv.Itoa(wrkThreads), "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency"}
	if host != "" {
		args = append(args, "-H", "Host: "+host)
	}
	args = append(args, url)
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", args...).CombinedOutput()
	text := string(out)
	if err != nil {
		return wrkResult{}, text, fmt.Errorf("wrk %s: %v: %s", strings.Join(args, " "), err, text)
	}
	r, err := parseWrk(text)
	return r, "wrk " + strings.Join(args, " "), err
}

func parseWrk(text string) (wrkResult, error) {
	var r wrkResult
	m := reRPS.FindStringSubmatch(text)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output: %s", text)
	}
	r.RPS, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(text); m != nil {
		r.Requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range rePct.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]float64{"us": 1e3, "ms": 1e6, "s": 1e9}[m[3]]
		d := time.Duration(v * unit)
		if m[1] == "50" {
			r.P50 = d
		} else {
			r.P99 = d
		}
	}
	if m := reSockErr.FindStringSubmatch(text); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.Atoi(s)
			r.Errors += n
		}
	}
	if m := reNon2xx.FindStringSubmatch(text); m != nil {
		n, _ := strconv.Atoi(m[1])
		r.Errors += n
	}
	return r, nil
}

// unixClient is an HTTP client that dials one unix socket whatever the URL.
func unixClient(sock string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
	}
}

// freshClient opens a new connection for every request, so a reload is
// seen by the next request rather than hidden behind a pooled connection.
func freshClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// httpGet fetches url with a Host header and returns status and body.
func httpGet(ctx context.Context, c *http.Client, url, host string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// uwsgiGet sends one request over the uwsgi protocol (what nginx's
// uwsgi_pass speaks) to a uWSGI socket and returns status and body.
func uwsgiGet(sock, path string, timeout time.Duration) (int, string, error) {
	conn, err := net.DialTimeout("unix", sock, timeout)
	if err != nil {
		return 0, "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	vars := [][2]string{
		{"REQUEST_METHOD", "GET"}, {"REQUEST_URI", path}, {"PATH_INFO", path}, {"QUERY_STRING", ""},
		{"SERVER_PROTOCOL", "HTTP/1.1"}, {"SERVER_NAME", "localhost"}, {"SERVER_PORT", "80"},
		{"REMOTE_ADDR", "127.0.0.1"}, {"HTTP_HOST", "localhost"}, {"wsgi.url_scheme", "http"},
	}
	var body bytes.Buffer
	for _, kv := range vars {
		for _, s := range kv {
			_ = binary.Write(&body, binary.LittleEndian, uint16(len(s)))
			body.WriteString(s)
		}
	}
	hdr := []byte{0, 0, 0, 0}
	binary.LittleEndian.PutUint16(hdr[1:3], uint16(body.Len()))
	if _, err := conn.Write(append(hdr, body.Bytes()...)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func dialUnix(sock string) (net.Conn, error) { return net.DialTimeout("unix", sock, time.Second) }
