package commands

import (
	"strings"
	"testing"
)

func FuzzParseAssignments(f *testing.F) {
	for _, s := range []string{"A=1", "A==", "=x", "A", "A_B=a b", "1A=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		vars, err := parseAssignments([]string{arg})
		if err != nil {
			return
		}
		for k, v := range vars {
			if k+"="+v != arg {
				t.Errorf("%q parsed as %q=%q", arg, k, v)
			}
		}
	})
}

func FuzzLastLines(f *testing.F) {
	f.Add("a\nb\nc", 2)
	f.Add("\n\n\n", 1)
	f.Fuzz(func(t *testing.T, data string, n int) {
		if n < 0 || n > 1000 {
			return
		}
		lines, end, err := lastLines(strings.NewReader(data), int64(len(data)), n)
		if err != nil || len(lines) > n || end < 0 || end > int64(len(data)) {
			t.Errorf("lastLines(%q, %d) = %q, %d, %v", data, n, lines, end, err)
		}
		if end > 0 && data[end-1] != '\n' {
			t.Errorf("end %d is not after a newline in %q", end, data)
		}
	})
}
