package app

import (
	"strings"
	"testing"
)

// TestCheckBackpressure: a GRANIAN_BACKPRESSURE below the connections
// Caddy keeps to an app is refused with one line naming the variable;
// unset, and values that admit Caddy's whole pool per worker, pass.
func TestCheckBackpressure(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  string // substring of the error; empty: accepted
	}{
		{"", ""},
		{"32", ""},
		{" 64 ", ""},
		{"1000", ""},
		{"31", "would starve connections"},
		{"4", "would starve connections"},
		{"1", "would starve connections"},
		{"0", "whole number"},
		{"-8", "whole number"},
		{"lots", "whole number"},
		{"4.5", "whole number"},
	} {
		env := map[string]string{}
		if tc.value != "" {
			env["GRANIAN_BACKPRESSURE"] = tc.value
		}
		err := checkBackpressure(env)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: refused: %v", tc.value, err)
		case tc.want != "" && err == nil:
			t.Errorf("%q: accepted", tc.value)
		case err != nil && (!strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "GRANIAN_BACKPRESSURE") || strings.Contains(err.Error(), "\n")):
			t.Errorf("%q: %v, want one line starting GRANIAN_BACKPRESSURE and holding %q", tc.value, err, tc.want)
		}
	}
}
