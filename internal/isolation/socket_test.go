package isolation

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestSocketFollowsNoLink: the app owns the directory where hop3 binds a
// socket for it; a link planted where the socket should be must not get
// hop3 to change the mode of the file it points to.
func TestSocketFollowsNoLink(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "so")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "w.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p := Policy{}
	if err := p.Socket(sock, nil); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != SocketMode {
		t.Fatalf("socket mode %v, %v; want %v", fi.Mode().Perm(), err, SocketMode)
	}

	precious := filepath.Join(dir, "precious")
	if err := os.WriteFile(precious, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	planted := filepath.Join(dir, "planted.sock")
	if err := os.Symlink(precious, planted); err != nil {
		t.Fatal(err)
	}
	if err := p.Socket(planted, nil); err == nil {
		t.Error("a link where the socket should be was accepted")
	}
	if fi, _ := os.Stat(precious); fi.Mode().Perm() != 0o600 {
		t.Errorf("the link's target became %v", fi.Mode().Perm())
	}
	if err := p.Socket(precious, nil); err == nil {
		t.Error("a regular file was taken for a socket")
	}
}
