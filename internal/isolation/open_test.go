package isolation

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenInTree(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o600)
	rel := filepath.Join(dir, "rel")
	os.MkdirAll(filepath.Join(rel, "hop3"), 0o755)
	os.WriteFile(filepath.Join(rel, "Procfile"), []byte("web: x"), 0o644)
	os.Symlink("Procfile", filepath.Join(rel, "inside"))
	os.Symlink(outside, filepath.Join(rel, ".env"))
	os.Symlink("../../", filepath.Join(rel, "up"))
	os.Symlink(filepath.Dir(outside), filepath.Join(rel, "hop3dir"))
	syscall.Mkfifo(filepath.Join(rel, "fifo"), 0o644)
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"Procfile", true},
		{"inside", true},
		{".env", false},
		{"up/secret", false},
		{"hop3dir/secret", false},
		{"../rel/Procfile", false},
		{"fifo", false},
		{"missing", false},
	} {
		f, err := OpenInTree(rel, c.name)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
		if err == nil {
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != "web: x" {
				t.Errorf("%s: read %q", c.name, b)
			}
		}
	}
}
