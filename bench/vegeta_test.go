package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// TestRunRate: the fixed-rate load counts 2xx answers, other statuses and
// requests that got no answer within the timeout apart, and sends the
// Host header it is given.
func TestRunRate(t *testing.T) {
	hosts := make(chan string, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "no", http.StatusBadGateway)
		case "/hang":
			<-r.Context().Done()
		default:
			hosts <- r.Host
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path                 string
		ok, non2xx, noAnswer bool
	}{
		{path: "/", ok: true},
		{path: "/fail", non2xx: true},
		{path: "/hang", noAnswer: true},
	} {
		r := runRate(context.Background(), rateLoad{rate: 40, dur: time.Second, timeout: 300 * time.Millisecond,
			targets: []vegeta.Target{getTarget(srv.URL+tc.path, "app.example")}})
		if r.sent < 20 || r.sent > 60 {
			t.Errorf("%s: sent %d requests in 1 s at 40 req/s", tc.path, r.sent)
		}
		if got := r.sent - r.errors(); (got == r.sent) != tc.ok {
			t.Errorf("%s: %d of %d answered with 2xx", tc.path, got, r.sent)
		}
		if (r.non2xx == r.sent) != tc.non2xx || (r.noAnswer == r.sent) != tc.noAnswer {
			t.Errorf("%s: non-2xx %d, no answer %d of %d (%s)", tc.path, r.non2xx, r.noAnswer, r.sent, r.summaryErrs())
		}
		if tc.noAnswer && r.errs["no answer within the timeout"] != r.sent {
			t.Errorf("%s: errors %s, want every one a timeout", tc.path, r.summaryErrs())
		}
	}
	if h := <-hosts; h != "app.example" {
		t.Errorf("Host = %q, want app.example", h)
	}
}
