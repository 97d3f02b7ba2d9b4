package router

import (
	"context"
	"fmt"
	"path/filepath"
)

// upstreamsPath is where Caddy's admin API lists the reverse proxy's
// upstreams and their counters.
const upstreamsPath = "/reverse_proxy/upstreams"

// upstreamStatus is one entry of GET /reverse_proxy/upstreams: num_requests
// counts the requests Caddy is proxying to the address right now, up from
// when it picks the upstream and down when the response is done.
type upstreamStatus struct {
	Address     string `json:"address"`
	NumRequests int    `json:"num_requests"`
}

// InFlight returns how many requests Caddy has in flight to each upstream,
// by dial address as the config names it ("unix//abs/web.sock",
// "127.0.0.1:5001"). It reads counters Caddy keeps anyway, so requests pay
// nothing for it. Upstreams of no loaded route are absent.
//
// Caddy 2.11 lists a unix upstream a second time, as its bare path, once
// it has dialled it, with the same count: that entry folds into the
// config's form, by the larger count, never added to it.
func (c *Client) InFlight(ctx context.Context) (map[string]int, error) {
	var ups []upstreamStatus
	if err := c.Get(ctx, upstreamsPath, &ups); err != nil {
		return nil, fmt.Errorf("read upstreams: %w", err)
	}
	out := make(map[string]int, len(ups))
	for _, u := range ups {
		addr := u.Address
		if filepath.IsAbs(addr) {
			addr = "unix/" + addr
		}
		out[addr] = max(out[addr], u.NumRequests)
	}
	return out, nil
}

// InFlight returns the requests in flight to each upstream of the Caddy
// the router drives (Client.InFlight). It takes no lock: it changes
// nothing and must not wait behind a reload.
func (r *Router) InFlight(ctx context.Context) (map[string]int, error) {
	return r.client.InFlight(ctx)
}
