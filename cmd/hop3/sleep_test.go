package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// TestServeSleepAfter: a --sleep-after or HOP3_SLEEP_AFTER that is no
// duration stops serve before it starts anything, with a usage error.
func TestServeSleepAfter(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--sleep-after", "soon"}, "", `invalid value "soon" for flag -sleep-after: use a duration (15m, 1h) or 0 for never`},
		{[]string{"--sleep-after=-5m"}, "", "use a duration"},
		{nil, "whenever", "HOP3_SLEEP_AFTER: use a duration"},
	} {
		if tc.env != "" {
			t.Setenv("HOP3_SLEEP_AFTER", tc.env)
		}
		var stdout, stderr bytes.Buffer
		err := serve(context.Background(), append([]string{"--root", t.TempDir()}, tc.args...), &stdout, &stderr)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Fatalf("serve %v (HOP3_SLEEP_AFTER=%q) = %v, want a usage error", tc.args, tc.env, err)
		}
		if got := ee.msg + stderr.String(); !strings.Contains(got, tc.want) {
			t.Errorf("serve %v (HOP3_SLEEP_AFTER=%q) said %q, want %q", tc.args, tc.env, got, tc.want)
		}
	}
}
