package hop3test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// User is someone with an SSH key.
type User struct {
	Name string
	Key  string // private key path; the public key is beside it, with .pub
}

// NewUserIn generates an ed25519 key in dir with the real ssh-keygen.
func NewUserIn(dir, name string) (User, error) {
	key := filepath.Join(dir, name)
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key).CombinedOutput(); err != nil {
		return User{}, fmt.Errorf("ssh-keygen: %v\n%s", err, out)
	}
	return User{Name: name, Key: key}, nil
}

// NewUser is NewUserIn a directory of the test's own.
func NewUser(tb testing.TB, name string) User {
	tb.Helper()
	u, err := NewUserIn(tb.TempDir(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

// PublicKey is the user's public key line, as `hop3 keys add` reads it.
func (u User) PublicKey() (string, error) {
	b, err := os.ReadFile(u.Key + ".pub")
	return string(b), err
}
