package bytesize

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1024", 1024},
		{"1048576", 1 << 20},
		{"512k", 512 << 10},
		{"512KiB", 512 << 10},
		{"10MB", 10 << 20},
		{"10MiB", 10 << 20},
		{" 2 mb ", 2 << 20},
		{" 3 MiB ", 3 << 20},
		{"1GiB", 1 << 30},
		{"1g", 1 << 30},
		{"7b", 7},
		{strconv.FormatInt(math.MaxInt64, 10), math.MaxInt64},
		{strconv.FormatInt(math.MaxInt64>>30, 10) + "G", (math.MaxInt64 >> 30) << 30},
	}
	for _, tt := range tests {
		if got, err := Parse(tt.in); err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, in := range []string{
		"", "x", "lots", "-1", "10XB", "1.5m", "1.5G", "1T", "1 G B",
		// Overflow: a size past int64 would wrap to a small or negative limit.
		"9999999999999G", "9223372036854775808", strconv.FormatInt(math.MaxInt64>>30+1, 10) + "G", "9007199254740992k",
	} {
		got, err := Parse(in)
		if err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, got)
			continue
		}
		if !strings.Contains(err.Error(), "is not a size") || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): error %q is not one line naming the value", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"1GiB", "10MB", "512k", "-1", "9999999999999G", "1.5m"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := Parse(s)
		if err == nil && n < 0 {
			t.Fatalf("Parse(%q) = %d, a negative size", s, n)
		}
	})
}

func TestFormat(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{1 << 30, "1 GiB"},
		{2 << 30, "2 GiB"},
		{3 << 20, "3 MiB"},
		{512 << 10, "512 KiB"},
		{1500000, "1.4 MiB"},
		{100, "100 bytes"},
		{0, "0 bytes"},
	}
	for _, tt := range tests {
		if got := Format(tt.n); got != tt.want {
			t.Errorf("Format(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	// What Format prints, Parse reads back.
	for _, n := range []int64{1 << 30, 3 << 20, 512 << 10, 100} {
		if got, err := Parse(strings.ReplaceAll(strings.TrimSuffix(Format(n), "ytes"), " ", "")); err != nil || got != n {
			t.Errorf("Parse(Format(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{80, "80 B"},
		{512 << 10, "512 KiB"},
		{3 << 20, "3.0 MiB"},
		{3 << 30 / 2, "1.5 GiB"},
	}
	for _, tt := range tests {
		if got := Human(tt.n); got != tt.want {
			t.Errorf("Human(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
