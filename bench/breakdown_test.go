package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestParseMx: -mx selects scenarios by name, empty means all, and an
// unknown name is refused with the known ones listed.
func TestParseMx(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: mxKeys},
		{in: "100", want: []string{"100"}},
		{in: " 100, ten ,", want: []string{"100", "ten"}},
		{in: "100,1000,ten,body,static,ws", want: mxKeys},
		{in: "100,tne", wantErr: `unknown matrix scenario "tne" (known: 100,1000,ten,body,static,ws)`},
	} {
		got, err := parseMx(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseMx(%q) error = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseMx(%q): %v", tc.in, err)
			continue
		}
		var keys []string
		for _, k := range mxKeys {
			if got[k] {
				keys = append(keys, k)
			}
		}
		if len(got) != len(keys) || !slices.Equal(keys, tc.want) {
			t.Errorf("parseMx(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestRotated(t *testing.T) {
	xs := []string{"a", "b", "c"}
	for k, want := range [][]string{{"a", "b", "c"}, {"b", "c", "a"}, {"c", "a", "b"}, {"a", "b", "c"}} {
		if got := rotated(xs, k); !slices.Equal(got, want) {
			t.Errorf("rotated(%v, %d) = %v, want %v", xs, k, got, want)
		}
	}
	if !slices.Equal(xs, []string{"a", "b", "c"}) {
		t.Errorf("rotated changed its input: %v", xs)
	}
}

func TestParseSmapsRollup(t *testing.T) {
	in := `5651d76fe000-7ffc4630e000 ---p 00000000 00:00 0                          [rollup]
Rss:                1628 kB
Pss:                 283 kB
Pss_Dirty:           116 kB
Pss_Anon:            116 kB
Pss_File:            167 kB
Pss_Shmem:             0 kB
Shared_Clean:       1472 kB
SwapPss:               9 kB
`
	want := pssSplit{pss: 283, anon: 116, file: 167}
	if got := parseSmapsRollup(in); got != want {
		t.Errorf("parseSmapsRollup = %+v, want %+v", got, want)
	}
	// Kernels before 5.x have no Pss_Anon/Pss_File: PSS alone.
	if got := parseSmapsRollup("Rss: 10 kB\nPss: 7 kB\n"); got != (pssSplit{pss: 7}) {
		t.Errorf("old kernel: %+v", got)
	}
}

// TestBreakdownReading: the reading names the component with the largest
// factor, and the factors multiply to the whole gap.
func TestBreakdownReading(t *testing.T) {
	ms := func(x float64) float64 { return x * float64(time.Millisecond) }
	cpu := map[string]map[string]float64{
		cellNU: {"proxy": 60, "app": 900}, cellNG: {"proxy": 60, "app": 1000},
		cellCU: {"proxy": 200, "app": 900}, cellCG: {"proxy": 220, "app": 1000},
	}
	for _, tc := range []struct {
		name   string
		p99    map[string]float64
		spread float64
		want   []string
	}{
		{
			name: "proxy carries",
			// Caddy doubles p99 whatever the app server; Granian adds 10 %.
			p99:    map[string]float64{cellNU: ms(2), cellNG: ms(2.2), cellCU: ms(4), cellCG: ms(4.4), "hop3": ms(4.84), "uwsgi": ms(2)},
			spread: 1.3,
			want: []string{
				"p99 hop3 / nginx → uWSGI = 2.42×",
				"the proxy (Caddy for nginx) 2.00× (2.00× in front of uWSGI, 2.00× in front of Granian)",
				"the app server (Granian for uWSGI) 1.10×",
				"hop3's routes and config (hop3 as it runs over the bare Caddy → Granian pair) 1.10×",
				"HTTP instead of the uwsgi protocol between nginx and uWSGI 1.00×",
				"The largest factor, carrying the gap, is the proxy (Caddy for nginx): 2.00×; the others together make 1.21×.",
				"larger than the spread between the runs of one stack (up to 1.30× at p99)",
				"CPU per request: the proxy 210 µs with Caddy against 60 µs with nginx; the app server 1000 µs with Granian against 900 µs with uWSGI",
			},
		},
		{
			name:   "app server carries, within the noise",
			p99:    map[string]float64{cellNU: ms(2), cellNG: ms(3), cellCU: ms(2.1), cellCG: ms(3.15)},
			spread: 2,
			want: []string{
				"p99 Caddy → Granian / nginx → uWSGI = 1.57×",
				"The largest factor, carrying the gap, is the app server (Granian for uWSGI): 1.50×",
				"smaller than the spread between the runs of one stack (up to 2.00× at p99), so more runs are needed",
			},
		},
		{
			name: "one run each",
			p99:  map[string]float64{cellNU: ms(2), cellNG: ms(2), cellCU: ms(3), cellCG: ms(3)},
			want: []string{"is the proxy (Caddy for nginx): 1.50×", "With one run of each stack, how much p99 moves between runs is not known."},
		},
		{
			name: "no gap",
			p99:  map[string]float64{cellNU: ms(2), cellNG: ms(2), cellCU: ms(2), cellCG: ms(2), "hop3": ms(1.9), "uwsgi": ms(2)},
			want: []string{"= 0.95×", "There is no gap at p99 here."},
		},
		{
			name: "a pair without answers",
			p99:  map[string]float64{cellNU: ms(2), cellNG: 0, cellCU: ms(2), cellCG: ms(2)},
			want: []string{"No reading: a pair of the breakdown got no answer."},
		},
	} {
		got := breakdownReading("Flask at 100 req/s", tc.p99, cpu, tc.spread)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: reading lacks %q:\n%s", tc.name, w, got)
			}
		}
	}
}

// TestMemBreakdown: totals per stack, the saving hop3 needs, and each
// part's difference.
func TestMemBreakdown(t *testing.T) {
	part := func(label string, procs, pss, anon, file int) memPart {
		return memPart{label: label, procs: procs, pss: pssSplit{pss: pss, anon: anon, file: file}}
	}
	hop3 := [3]memPart{part("Caddy", 1, 40*1024, 30*1024, 10*1024), part("Granian mains", 10, 100*1024, 60*1024, 40*1024), part("Granian workers", 15, 300*1024, 250*1024, 50*1024)}
	uw := [3]memPart{part("nginx", 3, 4*1024, 2*1024, 2*1024), part("uWSGI masters", 10, 80*1024, 50*1024, 30*1024), part("uWSGI workers", 20, 280*1024, 240*1024, 40*1024)}
	got := memBreakdown(hop3, uw)
	for _, w := range []string{
		"| **hop3, total** | 26 | 440.0 MiB | 340.0 MiB | 100.0 MiB |",
		"| **nginx → uWSGI, total** | 33 | 364.0 MiB | 292.0 MiB | 72.0 MiB |",
		"hop3 would need to save 76.0 MiB (PSS), 17 % of its 440.0 MiB, to reach nginx → uWSGI's 364.0 MiB.",
		"Caddy against nginx +36.0 MiB, Granian managers against uWSGI masters +20.0 MiB, Granian workers against uWSGI workers +20.0 MiB",
		"anonymous memory +48.0 MiB and file pages +28.0 MiB",
		"Per worker: Granian 20.0 MiB (15 workers), uWSGI 14.0 MiB (20).",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("memory breakdown lacks %q:\n%s", w, got)
		}
	}
	got = memBreakdown(uw, hop3)
	if w := "at or below nginx → uWSGI's 440.0 MiB, by 76.0 MiB"; !strings.Contains(got, w) {
		t.Errorf("memory breakdown lacks %q:\n%s", w, got)
	}
}

// TestTenReading: the steadiness table lists every stack's best and worst
// run, and the reading weighs the proxy with the app servers held fixed
// and the app servers with the proxy held fixed.
func TestTenReading(t *testing.T) {
	runs := func(ms ...float64) *mxStats {
		s := &mxStats{}
		for _, m := range ms {
			s.runs = append(s.runs, mxRun{res: rateResult{p99: time.Duration(m * float64(time.Millisecond))}})
		}
		s.finish()
		return s
	}
	sc := mxScenario{stacks: []mxStack{{key: "hop3", label: "hop3"}, {key: "uwsgi", label: "nginx → uWSGI"},
		{key: "nginx-granian", label: "ng"}, {key: "nginx-uwsgi-http", label: "nu"}, {key: "caddy-uwsgi-http", label: "cu"}}}
	stats := map[string]*mxStats{
		"hop3": runs(6, 8, 12), "uwsgi": runs(5, 4, 6),
		"nginx-granian": runs(5, 4, 6), "nginx-uwsgi-http": runs(4, 5, 5), "caddy-uwsgi-http": runs(8, 10, 7.5),
	}
	got := tenReading(sc, stats)
	for _, want := range []string{
		"| hop3 | 8.00 ms | 6.00 ms | 12.0 ms | 2.00× |",
		"| nginx → uWSGI | 5.00 ms | 4.00 ms | 6.00 ms | 1.50× |",
		"Caddy's median p99 is 1.60× nginx's and its worst run 2.00× nginx's worst",
		"hop3's ten Granians are 1.00× uWSGI's median p99, worst run 1.00×",
		"hop3 as it runs: 1.60×, worst run 2.00×",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("tenReading lacks %q:\n%s", want, got)
		}
	}
	delete(stats, "caddy-uwsgi-http")
	if got := tenReading(sc, stats); strings.Contains(got, "Reading:") {
		t.Errorf("tenReading without the proxy pair still reads it:\n%s", got)
	}
}
