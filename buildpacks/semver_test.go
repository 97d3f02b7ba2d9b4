package buildpacks

import "testing"

func TestSatisfies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v, r string
		want bool
	}{
		{"20.20.2", ">=18", true},
		{"16.1.0", ">=18", false},
		{"20.20.2", "^20", true},
		{"21.0.0", "^20", false},
		{"20.20.2", "^20.21", false},
		{"0.2.5", "^0.2.3", true},
		{"0.3.0", "^0.2.3", false},
		{"0.0.4", "^0.0.3", false},
		{"20.20.2", "20.x", true},
		{"20.20.2", "20", true},
		{"22.1.0", "20.x", false},
		{"20.20.2", "18 || 20", true},
		{"19.0.0", "18 || 20", false},
		{"20.20.2", ">=18 <21", true},
		{"21.0.0", ">=18 <21", false},
		{"20.20.2", ">= 18.0.0", true},
		{"20.20.2", "18 - 20", true},
		{"21.0.0", "18 - 20", false},
		{"20.20.2", "~20.20.0", true},
		{"20.21.0", "~20.20.0", false},
		{"20.20.2", "*", true},
		{"20.20.2", "", true},
		{"20.20.2", ">20", false},
		{"21.0.0", ">20", true},
		{"20.20.2", "<=20", true},
		{"20.20.2", "<20.20.2", false},
		{"20.20.2", "=20.20.2", true},
		{"20.20.2", "v20.20.2", true},
		{"20.20.2", ">=22.0.0-rc.1", false},
		{"20.20.2", ">=14 <16 || >=18", true},
	}
	for _, tt := range tests {
		v, err := parseSemver(tt.v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := satisfies(v, tt.r)
		if err != nil {
			t.Errorf("satisfies(%s, %q): %v", tt.v, tt.r, err)
			continue
		}
		if got != tt.want {
			t.Errorf("satisfies(%s, %q) = %v, want %v", tt.v, tt.r, got, tt.want)
		}
	}
	for _, bad := range []string{"lts/*", ">=eighteen", "1.2.3.4"} {
		if _, err := satisfies(semver{20, 0, 0}, bad); err == nil {
			t.Errorf("satisfies(%q) gave no error", bad)
		}
	}
}

func FuzzSatisfies(f *testing.F) {
	for _, s := range []string{">=18", "^20", "18 || 20", "18 - 20", "~1.2", "*", ">= 1 <2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, r string) {
		_, _ = satisfies(semver{20, 1, 2}, r)
	})
}

func TestCheckNodeVersion(t *testing.T) {
	t.Parallel()
	pkg := packageJSON{Engines: map[string]any{"node": "^20"}}
	if w, err := checkNodeVersion("20.20.2", pkg, ""); err != nil || len(w) != 0 {
		t.Errorf("^20: %v, %v", w, err)
	}
	if _, err := checkNodeVersion("20.20.2", pkg, "22"); err == nil || err.Error() != `Node.js 20.20.2 is installed but NODE_VERSION requires "22"` {
		t.Errorf("NODE_VERSION 22: %v", err)
	}
	pkg.Engines["node"] = "lts/iron"
	if w, err := checkNodeVersion("20.20.2", pkg, ""); err != nil || len(w) != 1 {
		t.Errorf("unreadable range: %v, %v", w, err)
	}
}
