package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckLinks(t *testing.T) {
	tests := []struct {
		name  string
		links [][2]string // name -> target, created in order
		dirs  []string
		bad   string // the link reported, "" when the tree is fine
	}{
		{name: "inside", links: [][2]string{{"a", "b"}, {"d/up", "../a"}, {"self", "."}, {"d/x", "../d"}}, dirs: []string{"d"}},
		{name: "dangling inside", links: [][2]string{{"a", "nothing/there"}}},
		{name: "absolute", links: [][2]string{{"a", "/etc/passwd"}}, bad: "a"},
		{name: "parent", links: [][2]string{{"a", ".."}}, bad: "a"},
		{name: "chain through a dot link", links: [][2]string{{"l1", "."}, {"l2", "l1/.."}}, bad: "l2"},
		{name: "chain to the root", links: [][2]string{
			{"l1", "."}, {"l2", "l1/.."}, {"l3", "l2/.."}, {"public/db", "../l3/hop3.db"}}, dirs: []string{"public"}, bad: "l2"},
		{name: "link named later", links: [][2]string{{"a", "x/.."}, {"x", "."}}, bad: "a"},
		{name: "loop", links: [][2]string{{"a", "b"}, {"b", "a"}}, bad: "a"},
		{name: "through a missing directory", links: [][2]string{{"a", "nope/../../x"}}, bad: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range tc.dirs {
				os.MkdirAll(filepath.Join(dir, d), 0o755)
			}
			for _, l := range tc.links {
				if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
					t.Fatal(err)
				}
			}
			err := checkLinks(dir)
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("refused a confined tree: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted links leaving the tree")
			}
			if !strings.Contains(err.Error(), "points outside the app") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q", err)
			}
		})
	}
}

// Whatever resolveWithin accepts, the kernel resolves inside the tree too.
func TestResolveWithinAgreesWithKernel(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "d", "e"), 0o755)
	for _, l := range [][2]string{{"l1", "."}, {"l2", "l1/.."}, {"d/l3", "../d/e"}, {"d/e/l4", "../../l1/d"}, {"f", "d/l3/../.."}} {
		os.Symlink(l[1], filepath.Join(dir, l[0]))
	}
	realDir, _ := filepath.EvalSymlinks(dir)
	for _, rel := range []string{"l1", "l2", "d/l3", "d/e/l4", "f", "d/l3/l4", "l1/l1/d"} {
		got, err := resolveWithin(dir, rel)
		real, rerr := filepath.EvalSymlinks(filepath.Join(dir, rel))
		if rerr != nil {
			continue
		}
		inside := within(realDir, real)
		if err != nil && inside {
			t.Errorf("%s: resolveWithin refused it (%v), the kernel resolves it inside (%s)", rel, err, real)
		}
		if err == nil && !inside {
			t.Errorf("%s: resolveWithin says %s, the kernel %s (outside)", rel, got, real)
		}
		if err == nil {
			if g, _ := filepath.EvalSymlinks(got); g != real {
				t.Errorf("%s: resolveWithin says %s, the kernel %s", rel, got, real)
			}
		}
	}
}
