package router

import (
	"context"
	"testing"
)

func TestInheritsSockets(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]bool{
		"v2.7.6": false, "v2.8.4": false, "v2.9.0": true, "v2.9.0-beta.1": true, "v2.11.7": true,
		"v2.12.0": true, "(devel)": true, "": true, "v3.0.0": true,
	} {
		if got := InheritsSockets(v); got != want {
			t.Errorf("InheritsSockets(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestCaddyVersion(t *testing.T) {
	t.Parallel()
	v, err := CaddyVersion(context.Background(), caddyBin(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := minorVersion(v); !ok {
		t.Errorf("CaddyVersion = %q, not a v2.N version", v)
	}
	t.Logf("caddy %s", v)
}
