package hop3test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RequestTimeout bounds one request of Get and of a Load.
const RequestTimeout = 30 * time.Second

// Get fetches path through the Caddy at addr (host:port) with host as the
// Host header, the way a browser reaches an app.
func Get(addr, host, path string) (int, string, error) {
	return do(http.DefaultClient, "http://"+addr+path, host)
}

// do sends one GET of url with host (when not "") as the Host header and
// reads the whole answer.
func do(c *http.Client, url, host string) (int, string, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	if host != "" {
		req.Host = host
	}
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Load is clients requesting one URL until stopped, sorting each outcome;
// no request is sent twice.
type Load struct {
	stopped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	res     LoadResult
}

// LoadResult counts what a Load's requests met.
type LoadResult struct {
	OK         int            // answered as wanted
	Unanswered int            // connection closed before a byte of an answer
	Reset      int            // connection reset
	Bad        int            // a wrong answer or another error
	FirstBad   string         // the first reset, wrong answer or error
	FirstErr   string         // the first failure of any kind, unanswered ones too
	Bodies     map[string]int // how many answers ok accepted had each body
}

// Total is how many requests were sent.
func (r LoadResult) Total() int { return r.OK + r.Unanswered + r.Reset + r.Bad }

func (r LoadResult) String() string {
	return fmt.Sprintf("%d requests: %d answered, %d closed unanswered, %d reset, %d wrong answers or other errors",
		r.Total(), r.OK, r.Unanswered, r.Reset, r.Bad)
}

// Check returns an error on any reset or wrong answer, on too little load
// (fewer than minOK requests answered), and on connections closed
// unanswered beyond maxPercent of requests.
func (r LoadResult) Check(minOK, maxPercent int) error {
	if r.OK < minOK {
		return fmt.Errorf("too little load: %s", r)
	}
	if r.Bad > 0 || r.Reset > 0 {
		return fmt.Errorf("requests failed: %s; first: %s", r, r.FirstBad)
	}
	if r.Unanswered*100 > r.Total()*maxPercent {
		return fmt.Errorf("more than %d%% of requests closed unanswered: %s", maxPercent, r)
	}
	return nil
}

// StartLoad starts n clients sending GET url with c (with host, when not
// "", as the Host header), each answer checked by ok, until Stop.
func StartLoad(c *http.Client, url, host string, ok func(status int, body string) bool, n int) *Load {
	l := &Load{res: LoadResult{Bodies: map[string]int{}}}
	for range n {
		l.wg.Go(func() {
			for !l.stopped.Load() {
				status, body, err := do(c, url, host)
				// io.EOF from Do itself: not a byte of an answer came.
				closed := status == 0 && errors.Is(err, io.EOF)
				good := !closed && err == nil && ok(status, body)
				l.mu.Lock()
				switch {
				case closed:
					l.res.Unanswered++
				case errors.Is(err, syscall.ECONNRESET):
					l.res.Reset++
					if l.res.FirstBad == "" {
						l.res.FirstBad = err.Error()
					}
				case !good:
					l.res.Bad++
					if l.res.FirstBad == "" {
						l.res.FirstBad = fmt.Sprintf("%d %q %v", status, body, err)
					}
				default:
					l.res.OK++
					l.res.Bodies[body]++
				}
				if l.res.FirstErr == "" && !good {
					l.res.FirstErr = fmt.Sprintf("%d %q %v", status, body, err)
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// Stop ends the load and returns its counts.
func (l *Load) Stop() LoadResult {
	l.stopped.Store(true)
	l.wg.Wait()
	return l.res
}
