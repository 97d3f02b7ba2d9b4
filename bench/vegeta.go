package main

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// rateLoad is one open-loop load: requests are sent at a fixed rate
// whatever the server's answers, so queueing shows as latency and as
// requests that get no answer, which a closed-loop tool like wrk hides.
type rateLoad struct {
	rate    int // requests per second, over all targets
	dur     time.Duration
	timeout time.Duration // a request unanswered by then counts as no answer
	targets []vegeta.Target
	unix    string // dial this unix socket instead of the URL's address
}

// getTarget is a GET of url with a Host header (none when host is empty).
func getTarget(url, host string) vegeta.Target {
	t := vegeta.Target{Method: http.MethodGet, URL: url, Header: http.Header{}}
	if host != "" {
		t.Header.Set("Host", host) // vegeta moves it to the request's Host
	}
	return t
}

// rateResult is what one load saw.
type rateResult struct {
	sent          int
	p50, p95, p99 time.Duration // of answered requests
	non2xx        int           // answered with a status outside 2xx
	noAnswer      int           // connection errors and timeouts: no status at all
	errs          map[string]int
	wall          time.Duration
	perSec        []time.Duration // p99 of the requests sent in each second of the run
}

// worstSeconds names the seconds whose p99 exceeds limit, as "+Ns X":
// a stall shows as a few bad seconds, a slower stack as all of them high.
func (r rateResult) worstSeconds(limit time.Duration) string {
	var out []string
	for i, p := range r.perSec {
		if p > limit {
			out = append(out, "+"+strconv.Itoa(i)+"s "+fmtDur(p))
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, " ")
}

// errors is every request that did not get a 2xx answer.
func (r rateResult) errors() int { return r.non2xx + r.noAnswer }

// runRate sends l's requests round-robin over its targets and collects the
// answers; it stops early when ctx ends.
func runRate(ctx context.Context, l rateLoad) rateResult {
	opts := []func(*vegeta.Attacker){
		vegeta.Timeout(l.timeout),
		vegeta.KeepAlive(true),
		vegeta.MaxBody(0), // read and discard bodies: only status and time count
		vegeta.Redirects(vegeta.NoFollow),
	}
	if l.unix != "" {
		opts = append(opts, vegeta.UnixSocket(l.unix))
	}
	atk := vegeta.NewAttacker(opts...)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	rate := vegeta.Rate{Freq: l.rate, Per: time.Second}
	t0 := time.Now()
	res := rateResult{errs: map[string]int{}}
	var lat []time.Duration
	var secs [][]time.Duration
	for r := range atk.Attack(vegeta.NewStaticTargeter(l.targets...), rate, l.dur, "bench") {
		res.sent++
		if r.Code != 0 {
			sec := max(0, int(r.Timestamp.Sub(t0)/time.Second))
			for len(secs) <= sec {
				secs = append(secs, nil)
			}
			secs[sec] = append(secs[sec], r.Latency)
		}
		switch {
		case r.Code == 0:
			res.noAnswer++
			res.errs[errKind(r.Error)]++
		case r.Code < 200 || r.Code > 299:
			res.non2xx++
			res.errs[r.Error]++
			lat = append(lat, r.Latency)
		default:
			lat = append(lat, r.Latency)
		}
	}
	res.wall = time.Since(t0)
	for _, s := range secs {
		res.perSec = append(res.perSec, percentile(s, 99)) // percentile sorts a copy
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.p50, res.p95, res.p99 = percentile(lat, 50), percentile(lat, 95), percentile(lat, 99)
	return res
}

// errKind shortens a client error to its cause, so that thousands of
// timeouts read as one line.
func errKind(e string) string {
	switch {
	case strings.Contains(e, "Client.Timeout"), strings.Contains(e, "deadline exceeded"):
		return "no answer within the timeout"
	case strings.Contains(e, "connection refused"):
		return "connection refused"
	case strings.Contains(e, "connection reset"):
		return "connection reset"
	case strings.Contains(e, "EOF"):
		return "connection closed without an answer"
	}
	if i := strings.LastIndex(e, ": "); i >= 0 {
		return e[i+2:]
	}
	return e
}

// summaryErrs lists the kinds of error seen, most frequent first.
func (r rateResult) summaryErrs() string {
	type kv struct {
		k string
		n int
	}
	var kinds []kv
	for k, n := range r.errs {
		kinds = append(kinds, kv{k, n})
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i].n > kinds[j].n })
	var out []string
	for _, e := range kinds {
		out = append(out, e.k+" ×"+strconv.Itoa(e.n))
	}
	return strings.Join(out, "; ")
}
