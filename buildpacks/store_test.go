package buildpacks

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestEnvStoreCreate(t *testing.T) {
	t.Parallel()
	s := envStore{dir: filepath.Join(t.TempDir(), "envs")}
	fill := func(content string) func(tmp, final string) error {
		return func(tmp, final string) error {
			writeFile(t, filepath.Join(tmp, "data"), content+" for "+final)
			return nil
		}
	}
	path, err := s.create("k", false, map[string]string{"kind": "test"}, fill("one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(s.dir, "k") {
		t.Errorf("path = %s", path)
	}
	if got, ok := s.complete("k"); !ok || got != path {
		t.Errorf("complete = %s, %v", got, ok)
	}
	data, _ := os.ReadFile(filepath.Join(path, "data"))
	if string(data) != "one for "+path {
		t.Errorf("data = %q", data)
	}

	// A fresh build gets its own name and leaves the first alone.
	fresh, err := s.create("k", true, nil, fill("two"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == path {
		t.Fatal("fresh build replaced the existing environment")
	}
	if data, _ := os.ReadFile(filepath.Join(path, "data")); string(data) != "one for "+path {
		t.Errorf("old environment changed: %q", data)
	}

	// A failed build leaves nothing behind.
	boom := errors.New("boom")
	_, err = s.create("bad", false, nil, func(tmp, final string) error {
		writeFile(t, filepath.Join(tmp, "half"), "x")
		return boom
	}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("error = %v", err)
	}
	if names := entries(t, s.dir); len(names) != 2 {
		t.Errorf("store holds %v", names)
	}
}

func TestEnvStoreConcurrent(t *testing.T) {
	t.Parallel()
	s := envStore{dir: t.TempDir()}
	var wg sync.WaitGroup
	paths := make([]string, 4)
	errs := make([]error, 4)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = s.create("same", false, nil, func(tmp, final string) error {
				return os.MkdirAll(tmp, 0o755)
			}, nil)
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil {
			t.Errorf("build %d: %v", i, errs[i])
		}
		if _, err := os.Stat(filepath.Join(paths[i], markerFile)); err != nil {
			t.Errorf("build %d: %s is not complete", i, paths[i])
		}
	}
}

func TestPruneEnvs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"py-a", "py-b", "node-c", "py-d.tmp-1", "py-e.tmp-2"} {
		writeFile(t, filepath.Join(dir, name, "f"), "x")
	}
	old := time.Now().Add(-2 * staleTmpAge)
	if err := os.Chtimes(filepath.Join(dir, "py-e.tmp-2"), old, old); err != nil {
		t.Fatal(err)
	}
	// A read-only tree, as some packages install, must not stop pruning.
	if err := os.Chmod(filepath.Join(dir, "py-b"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := PruneEnvs(dir, []string{filepath.Join(dir, "py-a"), "node-c"}); err != nil {
		t.Fatal(err)
	}
	got := entries(t, dir)
	want := []string{"node-c", "py-a", "py-d.tmp-1"}
	if len(got) != len(want) {
		t.Fatalf("after prune: %v, want %v", got, want)
	}
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("after prune: %v, want %v", got, want)
		}
	}
	if err := PruneEnvs(filepath.Join(dir, "missing"), nil); err != nil {
		t.Errorf("missing dir: %v", err)
	}
}

func TestHashTree(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.py"), "print(1)")
	writeFile(t, filepath.Join(dir, "node_modules", "x.js"), "1")
	h1, err := hashTree(ctx, dir, skipInTree)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "node_modules", "x.js"), "2")
	if h2, _ := hashTree(ctx, dir, skipInTree); h2 != h1 {
		t.Error("node_modules changed the hash")
	}
	writeFile(t, filepath.Join(dir, "a.py"), "print(2)")
	if h3, _ := hashTree(ctx, dir, skipInTree); h3 == h1 {
		t.Error("a source change did not change the hash")
	}
}
