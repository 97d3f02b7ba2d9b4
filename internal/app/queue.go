package app

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// inFlightTimeout bounds one read of Caddy's counters: a wedged Caddy
// delays a sample by this much at most, and the CPU decides meanwhile.
const inFlightTimeout = time.Second

// inFlightSource is the optional part of a Router that reads the requests
// Caddy has in flight to each upstream (router.Router.InFlight).
type inFlightSource interface {
	InFlight(ctx context.Context) (map[string]int, error)
}

// blockingThreads is a wsgi entry's Granian threads per worker:
// GRANIAN_THREADS, or 1 (see granianSpec).
func blockingThreads(env map[string]string) int {
	if n, err := strconv.Atoi(env["GRANIAN_THREADS"]); err == nil && n > 0 {
		return n
	}
	return 1
}

// queueReader returns the autoscaler's reader of requests in flight, by
// the socket a Granian process listens on, or nil when the router cannot
// tell. When Caddy does not answer, the reader returns nil, which leaves
// the CPU alone to decide, and logs it once until Caddy answers again.
func (m *Manager) queueReader(ctx context.Context) func() map[string]int {
	src, ok := m.cfg.Router.(inFlightSource)
	if !ok {
		return nil
	}
	failing := false // the loop's own: it alone calls the reader
	return func() map[string]int {
		rctx, cancel := context.WithTimeout(ctx, inFlightTimeout)
		defer cancel()
		ups, err := src.InFlight(rctx)
		if err != nil {
			if !failing && ctx.Err() == nil {
				m.log.Warn("autoscale: requests in flight unknown, scaling on CPU alone until caddy answers", "err", err)
				failing = true
			}
			return nil
		}
		if failing {
			m.log.Info("autoscale: requests in flight known again")
			failing = false
		}
		return bySocket(ups)
	}
}

// bySocket keys in-flight counts by the socket each unix upstream leads
// to. A route names the app's stable socket, a symlink to the live
// generation's, and a Granian process is labelled with the latter; both
// keys are kept. Counts of upstreams that lead to one socket add up.
func bySocket(ups map[string]int) map[string]int {
	out := make(map[string]int, len(ups))
	for addr, n := range ups {
		path, ok := strings.CutPrefix(addr, "unix/")
		if !ok {
			continue
		}
		out[path] += n
		target, err := os.Readlink(path)
		if err != nil {
			continue // not a symlink, or gone since Caddy answered
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(path), target)
		}
		out[target] += n
	}
	return out
}
