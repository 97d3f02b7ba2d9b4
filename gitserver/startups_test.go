package gitserver

import (
	"strings"
	"testing"
)

func TestDropChance(t *testing.T) {
	t.Parallel()
	st := Startups{Start: 10, Rate: 30, Full: 100}
	for n, want := range map[int]float64{0: 0, 9: 0, 10: 0.3, 55: 0.65, 99: 0.3 + 0.7*89/90, 100: 1, 500: 1} {
		if got := st.dropChance(n); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("dropChance(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestParseStartups(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Startups{"10:30:100": {10, 30, 100}, "64": {64, 100, 64}} {
		if got, err := ParseStartups(in); err != nil || got != want {
			t.Errorf("ParseStartups(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "a:b:c", "10:30", "0:30:10", "20:30:10", "1:101:10", "1:-1:10"} {
		if _, err := ParseStartups(in); err == nil {
			t.Errorf("ParseStartups(%q) accepted", in)
		}
	}
}

// TestStartupsAdmit drives the admission decisions with a chosen "random"
// number: an address over its maximum is refused, one past its share of
// handshakes is dropped at random past Start, one with turns to spare only
// at Full, and uncounting frees the slots.
func TestStartupsAdmit(t *testing.T) {
	t.Parallel()
	roll := 0.5
	st := newStartups(Config{MaxStartups: Startups{Start: 6, Rate: 40, Full: 10}, PerSourceStartups: 2, PerSourceMaxStartups: 5}, func() float64 { return roll })
	var flood []*source
	for i := 0; i < 5; i++ {
		src, why := st.admit("10.0.0.2")
		if why != "" {
			t.Fatalf("flood connection %d refused below every limit: %s", i, why)
		}
		flood = append(flood, src)
	}
	if _, why := st.admit("10.0.0.2"); !strings.Contains(why, "at most 5") {
		t.Errorf("sixth from one address: %q, want its maximum", why)
	}
	// 5 pending of 10, below Start: a second flooding address gets in.
	for i := 0; i < 2; i++ {
		if _, why := st.admit("10.0.0.3"); why != "" {
			t.Fatalf("second address, connection %d: %s", i, why)
		}
	}
	// 7 pending, past Start (6): drop chance 40% + 60%*1/4 = 55%.
	roll = 0.54
	if _, why := st.admit("10.0.0.3"); !strings.Contains(why, "random early drop") {
		t.Errorf("past its share and Start, roll below the chance: %q, want a drop", why)
	}
	roll = 0.56
	third, why := st.admit("10.0.0.3")
	if why != "" {
		t.Errorf("roll above the chance: refused: %s", why)
	}
	// 8 pending: an address with turns to spare is not dropped at random.
	roll = 0
	for i := 0; i < 2; i++ {
		if _, why := st.admit("192.0.2.1"); why != "" {
			t.Errorf("a quiet address was refused: %s", why)
		}
	}
	// 10 pending: Full refuses everyone.
	if _, why := st.admit("192.0.2.9"); !strings.Contains(why, "MaxStartups") {
		t.Errorf("at Full: %q", why)
	}
	st.done(third)
	for _, src := range flood {
		st.done(src)
	}
	if _, why := st.admit("192.0.2.9"); why != "" {
		t.Errorf("after slots freed: %s", why)
	}
	if _, ok := st.sources["10.0.0.2"]; ok {
		t.Error("an address with nothing pending is still tracked")
	}
}
