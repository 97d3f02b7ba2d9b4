package ui

import "testing"

func TestOneLine(t *testing.T) {
	tests := map[string]string{
		"":                   "",
		"exit status 3":      "exit status 3",
		"  build failed  \n": "build failed",
		"git clone: exit status 128\nfatal: x\nmore": "git clone: exit status 128",
		"\nfirst\nsecond":       "first",
		"line one \r\nline two": "line one",
	}
	for in, want := range tests {
		if got := OneLine(in); got != want {
			t.Errorf("OneLine(%q) = %q, want %q", in, got, want)
		}
	}
}
