package app

import (
	"slices"
	"strings"
	"testing"

	"hop3/internal/layout"
	"hop3/internal/staticserve"
)

// TestMaxBodySize: MAX_BODY_SIZE takes the sizes every other size setting
// takes, 10MiB included, and refuses what is not one (a size past int64
// too), naming the variable.
func TestMaxBodySize(t *testing.T) {
	good := map[string]int64{"": 0, "0": 0, "1024": 1024, "512k": 512 << 10, "10MB": 10 << 20, "10MiB": 10 << 20, "1g": 1 << 30, "1GiB": 1 << 30, " 2 mb ": 2 << 20}
	for in, want := range good {
		if got, err := maxBodySize(map[string]string{"MAX_BODY_SIZE": in}); err != nil || got != want {
			t.Errorf("MAX_BODY_SIZE=%q: %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"x", "-1", "10XB", "1.5m", "9999999999999G"} {
		if _, err := maxBodySize(map[string]string{"MAX_BODY_SIZE": in}); err == nil || !strings.HasPrefix(err.Error(), "MAX_BODY_SIZE: ") {
			t.Errorf("MAX_BODY_SIZE=%q: err = %v, want one naming MAX_BODY_SIZE", in, err)
		}
	}
	// MAX_RELEASE_SIZE reads the same way.
	if n, err := appReleaseSize(map[string]string{"MAX_RELEASE_SIZE": "512KiB"}); err != nil || n != 512<<10 {
		t.Errorf("MAX_RELEASE_SIZE=512KiB: %d, %v", n, err)
	}
	if _, err := appReleaseSize(map[string]string{"MAX_RELEASE_SIZE": "9223372036854775808"}); err == nil || !strings.HasPrefix(err.Error(), "MAX_RELEASE_SIZE: ") {
		t.Errorf("MAX_RELEASE_SIZE past int64: err = %v", err)
	}
}

func TestTruthy(t *testing.T) {
	for in, want := range map[string]bool{
		"1": true, "true": true, "TRUE": true, "yes": true, "Yes": true, "on": true, " on ": true, "ON": true,
		"": false, "0": false, "false": false, "no": false, "off": false, "y": false, "enabled": false,
	} {
		if got := truthy(in); got != want {
			t.Errorf("truthy(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestStaticPaths(t *testing.T) {
	m := &Manager{paths: layout.New("/srv/hop3")}
	got, err := m.staticPaths("web", "/static:public/static, /media:/srv/hop3/data/web/media")
	if err != nil {
		t.Fatal(err)
	}
	want := []staticserve.Mount{
		{Prefix: "/static", Root: "/srv/hop3/apps/web/current", Dir: "public/static"},
		{Prefix: "/media", Root: "/srv/hop3/data/web", Dir: "media"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if got, err := m.staticPaths("web", "/d:/srv/hop3/data/web"); err != nil || len(got) != 1 || got[0].Dir != "." {
		t.Fatalf("DATA_DIR itself: %+v %v", got, err)
	}
	bad := []string{"/x:../../", "/x:/etc", "/x:/srv/hop3/data/other", "static:public", "/x:", "/x:public/../../other"}
	for _, spec := range bad {
		if _, err := m.staticPaths("web", spec); err == nil {
			t.Errorf("staticPaths(%q) accepted", spec)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
	}
}

func TestDurationEnv(t *testing.T) {
	env := map[string]string{"A": "60", "B": "90s", "C": "nope", "D": "-3"}
	cases := map[string]int64{"A": 60, "B": 90, "C": 7, "D": 7, "E": 7}
	for k, want := range cases {
		if got := durationEnv(env, k, 7e9).Seconds(); int64(got) != want {
			t.Errorf("durationEnv(%s) = %vs, want %d", k, got, want)
		}
	}
}
