package app

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hop3/internal/store"
)

// linkShared puts a copy named name into the shared-object store (made
// when missing) and links it into each of envs, as a build that shares a
// library leaves them.
func linkShared(t *testing.T, storeDir, name string, envs ...string) {
	t.Helper()
	if err := os.MkdirAll(storeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(storeDir, name)
	if err := os.WriteFile(copyPath, []byte("ELF "+name), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, env := range envs {
		lib := filepath.Join(env, "lib")
		if err := os.MkdirAll(lib, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(copyPath, filepath.Join(lib, name+".so")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDestroyPrunesSharedObjects: destroying an app removes the store's
// copies only its environments linked, and keeps those another app's
// environment still links, which that app can still read.
func TestDestroyPrunesSharedObjects(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	u.addRelease(t, "shop", "web: exec sleep 60\n", "{}")
	u.addRelease(t, "blog", "web: exec sleep 60\n", "{}")
	shared := u.m.paths.SharedObjects()
	shopEnv := filepath.Join(u.m.paths.Envs("shop"), "py-a")
	blogEnv := filepath.Join(u.m.paths.Envs("blog"), "py-b")
	linkShared(t, shared, "shop-only-0755", shopEnv)
	linkShared(t, shared, "both-0755", shopEnv, blogEnv)
	linkShared(t, shared, "blog-only-0755", blogEnv)

	if err := u.m.Destroy(ctx, "shop", false); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	for name, want := range map[string]bool{"shop-only-0755": false, "both-0755": true, "blog-only-0755": true} {
		_, err := os.Stat(filepath.Join(shared, name))
		if kept := err == nil; kept != want {
			t.Errorf("store copy %s kept = %v (%v) after destroying shop, want %v", name, kept, err, want)
		}
	}
	if _, err := os.Stat(u.m.paths.Envs("shop")); !os.IsNotExist(err) {
		t.Errorf("shop's environments still there: %v", err)
	}
	for _, name := range []string{"both-0755", "blog-only-0755"} {
		data, err := os.ReadFile(filepath.Join(blogEnv, "lib", name+".so"))
		if err != nil || string(data) != "ELF "+name {
			t.Errorf("blog's %s.so = %q, %v", name, data, err)
		}
	}
}

// TestDestroyPruneFailureLogged: a store that cannot be pruned (here a
// file where its directory should be) is logged; the app is destroyed all
// the same.
func TestDestroyPruneFailureLogged(t *testing.T) {
	t.Parallel()
	u := newUnitManager(t)
	ctx := t.Context()
	logs := &lockedBuffer{}
	u.m.log = slog.New(slog.NewTextHandler(logs, nil))
	u.addRelease(t, "shop", "web: exec sleep 60\n", "{}")
	shared := u.m.paths.SharedObjects()
	if err := os.MkdirAll(filepath.Dir(shared), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shared, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if err := u.m.Destroy(ctx, "shop", false); err != nil {
		t.Fatalf("destroy failed with the store unusable: %v", err)
	}
	if _, err := u.st.App(ctx, "shop"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("shop after destroy: %v, want not found", err)
	}
	if _, err := os.Stat(u.m.paths.AppDir("shop")); !os.IsNotExist(err) {
		t.Errorf("shop's directory still there: %v", err)
	}
	if !strings.Contains(logs.String(), "prune shared objects") {
		t.Errorf("the failed prune was not logged:\n%s", logs.String())
	}
}
