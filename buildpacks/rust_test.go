package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRustBuild(t *testing.T) {
	t.Parallel()
	cargo := needTool(t, "cargo")
	dir := fixture(t, "rust-app")
	rep := newRecorder(t)
	cache := t.TempDir()
	res := build(t, Spec{App: "test", Dir: dir, CacheDir: cache, HasProcfile: true, Report: rep, Tools: Tools{Cargo: cargo}})
	if !reflect.DeepEqual(res.Packs, []string{"rust"}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !isExecutable(filepath.Join(dir, "target", "release", "rust-app")) {
		t.Fatalf("no target/release/rust-app in the release:\n%s", rep)
	}
	if !isExecutable(filepath.Join(cache, "cargo-target", "release", "rust-app")) {
		t.Errorf("the target directory is not the cache's")
	}
	if !rep.hasStep("Building with cargo build --release --locked") {
		t.Errorf("log:\n%s", rep)
	}

	// A Cargo.toml the lock does not match: cargo's own words.
	data, err := os.ReadFile(filepath.Join(dir, "Cargo.toml"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Cargo.toml"), strings.Replace(string(data), `itoa = "1.0"`, `itoa = "1.0"`+"\nryu = \"1.0\"", 1))
	rep = newRecorder(t)
	_, err = Build(testContext(t), Spec{App: "test", Dir: dir, CacheDir: cache, HasProcfile: true, Report: rep, Tools: Tools{Cargo: cargo}})
	if err == nil || !strings.Contains(err.Error(), "cargo build failed") {
		t.Fatalf("err = %v, want cargo build to fail", err)
	}
	if !strings.Contains(rep.String(), "--locked") {
		t.Errorf("cargo's message is not in the output:\n%s", rep)
	}
}

func TestBinTargets(t *testing.T) {
	meta := `{"packages": [
	 {"manifest_path": "/app/Cargo.toml", "targets": [{"name": "app", "kind": ["bin"]}, {"name": "applib", "kind": ["lib"]}, {"name": "tool", "kind": ["bin"]}]},
	 {"manifest_path": "/app/member/Cargo.toml", "targets": [{"name": "member", "kind": ["bin"]}]}]}`
	tests := []struct {
		manifest string
		want     []string
	}{
		{"/app/Cargo.toml", []string{"app", "tool"}},
		{"/ws/Cargo.toml", []string{"app", "member", "tool"}}, // a workspace root: every member's
	}
	for _, tt := range tests {
		got, err := binTargets([]byte(meta), tt.manifest)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("binTargets(%s) = %v, %v; want %v", tt.manifest, got, err, tt.want)
		}
	}
	if _, err := binTargets([]byte("{"), "/app/Cargo.toml"); err == nil {
		t.Error("bad metadata read without error")
	}
}
