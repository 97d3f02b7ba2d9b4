package ui

import (
	"bytes"
	"strings"
	"testing"
)

func TestWriterPlain(t *testing.T) {
	var b bytes.Buffer
	u := New(&b, false)
	u.Step("Python app detected")
	u.Info("using uv")
	out := u.Output()
	out.Write([]byte("line one\nline "))
	out.Write([]byte("two\n"))
	u.Fail("build failed")
	want := "-----> Python app detected\n       using uv\n       line one\n       line two\n !     build failed\n"
	if b.String() != want {
		t.Fatalf("got %q want %q", b.String(), want)
	}
}

func TestWriterColour(t *testing.T) {
	var b bytes.Buffer
	New(&b, true).Step("x")
	if !strings.Contains(b.String(), "\x1b[") {
		t.Fatalf("expected ANSI escape, got %q", b.String())
	}
}

func TestColorFor(t *testing.T) {
	cases := []struct {
		tty  bool
		env  []string
		want bool
	}{
		{false, nil, false},
		{true, nil, true},
		{true, []string{"NO_COLOR=1"}, false},
		{true, []string{"NO_COLOR="}, false},
		{true, []string{"TERM=xterm"}, true},
	}
	for _, c := range cases {
		if got := ColorFor(c.tty, c.env); got != c.want {
			t.Errorf("ColorFor(%v, %v) = %v", c.tty, c.env, got)
		}
	}
}

func TestAlso(t *testing.T) {
	var a, b bytes.Buffer
	u := New(&a, true).Also(&b, false)
	u.Step("both")
	u.Output().Write([]byte("tool\n"))
	if !strings.Contains(a.String(), "\x1b[") || strings.Contains(b.String(), "\x1b[") {
		t.Fatalf("colour per destination broken: %q / %q", a.String(), b.String())
	}
	if b.String() != "-----> both\n       tool\n" {
		t.Fatalf("log got %q", b.String())
	}
}
