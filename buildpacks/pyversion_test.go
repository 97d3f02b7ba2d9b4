package buildpacks

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakePython writes an executable that answers queryPython as an
// interpreter of the given version would.
func fakePython(t *testing.T, path, version string) {
	t.Helper()
	writeFile(t, path, fmt.Sprintf("#!/bin/sh\necho %s\necho \"$0\"\n", version))
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestFindPythonManaged(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	pyenv := filepath.Join(root, "pyenv")
	uvDir := filepath.Join(root, "uv-python")
	onPath := filepath.Join(root, "bin")
	fakePython(t, filepath.Join(onPath, "python3"), "3.11.2")
	fakePython(t, filepath.Join(pyenv, "versions", "3.12.1", "bin", "python3"), "3.12.1")
	fakePython(t, filepath.Join(pyenv, "versions", "3.12.9", "bin", "python3"), "3.12.9")
	// Free-threaded builds, PyPy and virtualenvs are not candidates.
	fakePython(t, filepath.Join(pyenv, "versions", "3.13.0t", "bin", "python3"), "3.13.0")
	fakePython(t, filepath.Join(pyenv, "versions", "myenv", "bin", "python3"), "3.13.0")
	fakePython(t, filepath.Join(uvDir, "cpython-3.10.14-linux-x86_64-gnu", "bin", "python3"), "3.10.14")
	fakePython(t, filepath.Join(uvDir, "cpython-3.13.0+freethreaded-linux-x86_64-gnu", "bin", "python3"), "3.13.0")
	fakePython(t, filepath.Join(home, ".pyenv", "versions", "3.9.7", "bin", "python"), "3.9.7")
	fakePython(t, filepath.Join(home, ".local", "share", "uv", "python", "cpython-3.8.20-linux-x86_64-gnu", "bin", "python3"), "3.8.20")
	// Where to look comes from hop3's own environment, or the app's config;
	// the build's HOME is its own.
	explicit := map[string]string{"HOME": home, "PYENV_ROOT": pyenv, "UV_PYTHON_INSTALL_DIR": uvDir, "XDG_DATA_HOME": ""}
	defaults := map[string]string{"HOME": home, "PYENV_ROOT": "", "UV_PYTHON_INSTALL_DIR": "", "XDG_DATA_HOME": ""}
	spec := func(version string, env map[string]string) Spec {
		s := Spec{Env: map[string]string{"PYTHON_VERSION": version}}
		for k, v := range env {
			s.Env[k] = v
		}
		return s
	}

	tests := []struct {
		name, want, path string
		env              map[string]string
	}{
		{"3.11", "3.11.2", filepath.Join(onPath, "python3"), explicit},
		{"3.12.1", "3.12.1", filepath.Join(pyenv, "versions", "3.12.1", "bin", "python3"), explicit},
		{"3.12", "3.12.9", filepath.Join(pyenv, "versions", "3.12.9", "bin", "python3"), explicit},
		{"3.10", "3.10.14", filepath.Join(uvDir, "cpython-3.10.14-linux-x86_64-gnu", "bin", "python3"), explicit},
		{"3.9", "3.9.7", filepath.Join(home, ".pyenv", "versions", "3.9.7", "bin", "python"), defaults},
		{"3.8", "3.8.20", filepath.Join(home, ".local", "share", "uv", "python", "cpython-3.8.20-linux-x86_64-gnu", "bin", "python3"), defaults},
		{"3.13", "", "", explicit},
		{"3.9", "", "", explicit}, // PYENV_ROOT replaces ~/.pyenv
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+fmt.Sprint(tt.env["PYENV_ROOT"] != ""), func(t *testing.T) {
			dir := t.TempDir()
			sp := spec(tt.name, tt.env)
			sp.Dir = dir
			b := newBuilder(sp, dir)
			b.env = map[string]string{"PATH": onPath}
			in, err := b.findPython(testContext(t))
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "is not installed; available:") {
					t.Fatalf("findPython = %+v, %v; want not installed", in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.version != tt.want || in.path != tt.path {
				t.Errorf("findPython = %+v, want %s at %s", in, tt.want, tt.path)
			}
		})
	}

	dir := t.TempDir()
	sp := spec("3.7", explicit)
	sp.Dir = dir
	b := newBuilder(sp, dir)
	b.env = map[string]string{"PATH": onPath}
	_, err := b.findPython(testContext(t))
	if err == nil || !strings.HasSuffix(err.Error(), "available: 3.11.2, 3.12.9, 3.12.1, 3.10.14") {
		t.Errorf("error = %v", err)
	}
}
