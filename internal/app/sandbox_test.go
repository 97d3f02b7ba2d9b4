package app

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"hop3/internal/addons"
	"hop3/internal/layout"
)

func TestToolDirs(t *testing.T) {
	home, _ := os.UserHomeDir()
	m := &Manager{paths: layout.New("/srv/hop3")}
	cases := []struct {
		path string
		want []string
	}{
		{"/usr/local/bin:/usr/bin:/bin", []string{"/usr/local/bin", "/usr/local", "/usr/bin", "/usr", "/bin"}},
		// A version manager's shims need the rest of its tree.
		{"/opt/pyenv/shims:/opt/node/bin", []string{"/opt/pyenv/shims", "/opt/pyenv", "/opt/node/bin", "/opt/node"}},
		// Never a home directory, "/", a relative entry or hop3's root.
		{"/home/bob/bin:/root/bin:" + filepath.Join(home, "bin") + ":.:relative/bin::/",
			[]string{"/home/bob/bin", "/root/bin", filepath.Join(home, "bin")}},
		{"/srv/bin:/srv:/srv/hop3/bin:/srv/hop3", []string{"/srv/bin"}},
	}
	for _, tc := range cases {
		if got := m.toolDirs(tc.path); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("toolDirs(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestSandboxFor: an app's processes may write only its own directories,
// and nothing of hop3's or another app's is in any list.
func TestSandboxFor(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	root := t.TempDir()
	m := &Manager{paths: layout.New(root)}
	py := filepath.Join(t.TempDir(), "python", "bin", "python3.12")
	os.MkdirAll(filepath.Dir(py), 0o755)
	os.WriteFile(py, nil, 0o755)
	venv := filepath.Join(m.paths.Envs("a"), "py-1")
	os.MkdirAll(filepath.Join(venv, "bin"), 0o755)
	os.Symlink(py, filepath.Join(venv, "bin", "python"))
	r := release{app: "a", number: 3, dir: m.paths.Release("a", 3), meta: releaseMeta{Venv: venv}}

	sb := m.sandboxFor(r)
	for _, want := range []string{r.dir, m.paths.Data("a"), m.paths.Tmp("a")} {
		if !slices.Contains(sb.ReadWrite, want) {
			t.Errorf("%s is not writable: %q", want, sb.ReadWrite)
		}
	}
	// The socket directory holds web.sock, which only hop3 may replace.
	if !reflect.DeepEqual(sb.Shared, []string{m.paths.Run("a")}) || slices.Contains(sb.ReadWrite, m.paths.Run("a")) {
		t.Errorf("shared %q, writable %q: want %s shared, not writable", sb.Shared, sb.ReadWrite, m.paths.Run("a"))
	}
	for _, want := range []string{m.paths.Envs("a"), filepath.Dir(filepath.Dir(py)), "/usr/bin", "/usr"} {
		if !slices.Contains(sb.ReadExec, want) {
			t.Errorf("%s is not executable: %q", want, sb.ReadExec)
		}
	}
	for _, want := range addons.SandboxPaths(root, "a") {
		if !slices.Contains(sb.ReadWrite, want) {
			t.Errorf("add-on sockets in %s are out of reach: %q", want, sb.ReadWrite)
		}
	}
	own := append([]string{r.dir, m.paths.Data("a"), m.paths.Tmp("a"), m.paths.Run("a"), m.paths.Envs("a")}, addons.SandboxPaths(root, "a")...)
	for _, p := range slices.Concat(sb.ReadOnly, sb.ReadExec, sb.ReadWrite, sb.Shared) {
		if within(root, p) && !slices.Contains(own, p) || within(p, root) {
			t.Errorf("sandbox grants %s, which is hop3's or another app's", p)
		}
	}
}
