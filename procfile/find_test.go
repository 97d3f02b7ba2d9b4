package procfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFind: hop3/Procfile wins over Procfile; without either, an
// index.html at the top makes a static site; a directory is not a file.
func TestFind(t *testing.T) {
	tests := []struct {
		name       string
		files      []string
		dirs       []string
		want       string
		wantStatic bool
	}{
		{name: "empty"},
		{name: "Procfile", files: []string{"Procfile"}, want: "Procfile"},
		{name: "hop3/Procfile first", files: []string{"Procfile", "hop3/Procfile"}, want: "hop3/Procfile"},
		{name: "hop3/Procfile alone", files: []string{"hop3/Procfile"}, want: "hop3/Procfile"},
		{name: "index.html", files: []string{"index.html"}, wantStatic: true},
		{name: "Procfile over index.html", files: []string{"Procfile", "index.html"}, want: "Procfile"},
		{name: "index.html below the top", files: []string{"public/index.html"}},
		{name: "a directory named Procfile", dirs: []string{"Procfile"}},
		{name: "a directory named hop3/Procfile", dirs: []string{"hop3/Procfile"}, files: []string{"Procfile"}, want: "Procfile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte("web: x\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			name, static := Find(dir)
			if name != tt.want || static != tt.wantStatic {
				t.Errorf("Find = %q, %v; want %q, %v", name, static, tt.want, tt.wantStatic)
			}
		})
	}
}

// TestStaticSite: the fallback Procfile parses to one static entry
// serving the top of the tree.
func TestStaticSite(t *testing.T) {
	pf, err := Parse(strings.NewReader(StaticSite))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := pf.Get("static")
	if !ok || e.Kind != KindStatic || e.Command != "." || len(pf.Entries) != 1 {
		t.Fatalf("StaticSite = %+v, %v", pf.Entries, ok)
	}
}
