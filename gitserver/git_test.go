package gitserver

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"hop3/internal/appname"
)

func TestCapReader(t *testing.T) {
	tests := []struct {
		size, limit int64
		over        bool
	}{
		{0, 10, false},
		{9, 10, false},
		{10, 10, false}, // exactly the limit is fine
		{11, 10, true},
		{1 << 20, 1 << 16, true},
		{1 << 20, -1, false}, // no limit
	}
	for _, tc := range tests {
		src := bytes.Repeat([]byte("x"), int(tc.size))
		for _, r := range []io.Reader{bytes.NewReader(src), iotest.OneByteReader(bytes.NewReader(src)), iotest.HalfReader(bytes.NewReader(src))} {
			c := &capReader{r: r, left: tc.limit}
			n, err := io.Copy(io.Discard, c)
			if c.over.Load() != tc.over {
				t.Fatalf("size %d limit %d: over = %v, want %v", tc.size, tc.limit, c.over.Load(), tc.over)
			}
			if tc.over {
				if !errors.Is(err, ErrPushTooLarge) || n != tc.limit {
					t.Fatalf("size %d limit %d: copied %d, %v; want %d, ErrPushTooLarge", tc.size, tc.limit, n, err, tc.limit)
				}
				continue
			}
			if err != nil || n != tc.size {
				t.Fatalf("size %d limit %d: copied %d, %v", tc.size, tc.limit, n, err)
			}
		}
	}
}

func TestRepoName(t *testing.T) {
	good := map[string]string{"myapp": "myapp", "/myapp": "myapp", "myapp.git": "myapp", "~/myapp": "myapp", "/my-app.git/": "my-app"}
	for in, want := range good {
		if got, err := RepoName(in, appname.Validate); err != nil || got != want {
			t.Errorf("RepoName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"../x", "/../x", "A_B", "a/b", "-x", strings.Repeat("a", 41), "", "/", ".git", "~/../../etc", "a\x00b", "a b", "x/.git"} {
		if got, err := RepoName(in, appname.Validate); err == nil {
			t.Errorf("RepoName(%q) = %q, want an error", in, got)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("RepoName(%q): error is not one line: %q", in, err)
		}
	}
}

func FuzzRepoName(f *testing.F) {
	for _, s := range []string{"myapp", "/myapp.git", "~/x", "../x", "a/b", "A_B", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		name, err := RepoName(in, appname.Validate)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error %q is not one line", err)
			}
			return
		}
		if strings.ContainsAny(name, "/.\\\x00") || name == "" || len(name) > 40 {
			t.Fatalf("RepoName(%q) = %q, which can leave the repository directory", in, name)
		}
	})
}
