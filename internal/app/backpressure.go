package app

import (
	"fmt"
	"strconv"
	"strings"
)

// caddyKeepAliveConns is how many idle connections Caddy keeps open to
// each upstream: its reverse_proxy default max_idle_conns_per_host, which
// hop3's routes do not change.
const caddyKeepAliveConns = 32

// checkBackpressure refuses a GRANIAN_BACKPRESSURE that would starve
// connections. Granian lets only that many requests per worker in at once
// and holds the rest of the connections unanswered, while Caddy keeps its
// connections to the app open and queues requests on them: measured with
// 2 workers and a backpressure of 4, 24 of 32 keep-alive connections got
// no answer for the whole run (BENCHMARKS.md, "GRANIAN_BACKPRESSURE"). An
// app may run one worker, so each worker must admit Caddy's whole pool.
func checkBackpressure(env map[string]string) error {
	v := strings.TrimSpace(env["GRANIAN_BACKPRESSURE"])
	if v == "" {
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("GRANIAN_BACKPRESSURE %q: use a whole number of requests per worker, at least %d", v, caddyKeepAliveConns)
	}
	if n < caddyKeepAliveConns {
		return fmt.Errorf("GRANIAN_BACKPRESSURE=%d would starve connections: Caddy keeps up to %d open to the app and each Granian worker answers only %d at once; use at least %d or leave it unset", n, caddyKeepAliveConns, n, caddyKeepAliveConns)
	}
	return nil
}
