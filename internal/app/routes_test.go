package app

import (
	"slices"
	"strings"
	"testing"

	"hop3/internal/layout"
	"hop3/internal/staticserve"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{"0": 0, "1024": 1024, "512k": 512 << 10, "10MB": 10 << 20, "1g": 1 << 30, " 2 mb ": 2 << 20}
	for in, want := range good {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "10XB", "1.5m"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
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
