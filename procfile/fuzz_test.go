package procfile

import (
	"strings"
	"testing"
	"time"
)

func FuzzParse(f *testing.F) {
	for _, tc := range goodProcfiles {
		f.Add(tc.in)
	}
	for _, tc := range badProcfiles {
		if len(tc.in) < 8<<10 {
			f.Add(tc.in)
		}
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := Parse(strings.NewReader(in))
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, "Procfile") {
				t.Fatalf("error %q is not one line starting with Procfile", msg)
			}
			return
		}
		if len(p.Entries) == 0 || len(p.Entries) > maxEntries {
			t.Fatalf("accepted %d entries", len(p.Entries))
		}
		routed := 0
		for _, e := range p.Entries {
			if e.Kind.routed() {
				routed++
			}
			if (e.Kind == KindCron) != (e.Cron != nil) {
				t.Fatalf("entry %+v: Cron set for the wrong kind", e)
			}
		}
		if routed > 1 {
			t.Fatalf("accepted %d HTTP entries", routed)
		}

		// Written back from its entries, the Procfile parses the same.
		var b strings.Builder
		for _, e := range p.Entries {
			b.WriteString(e.Name + ":")
			if e.Cron != nil {
				b.WriteString(e.Cron.String() + " ")
			}
			b.WriteString(e.Command + "\n")
		}
		q, err := Parse(strings.NewReader(b.String()))
		if err != nil {
			t.Fatalf("re-parsing %q: %v", b.String(), err)
		}
		if len(q.Entries) != len(p.Entries) {
			t.Fatalf("re-parsed %d entries, want %d", len(q.Entries), len(p.Entries))
		}
		for i, e := range p.Entries {
			g := q.Entries[i]
			if g.Name != e.Name || g.Kind != e.Kind || g.Command != e.Command || (g.Cron == nil) != (e.Cron == nil) || (g.Cron != nil && *g.Cron != *e.Cron) {
				t.Fatalf("entry %d re-parsed as %+v, want %+v", i, g, e)
			}
		}
	})
}

func FuzzParseCron(f *testing.F) {
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, tc := range goodCron {
		f.Add(tc.spec, base, uint8(0))
	}
	for _, tc := range badCron {
		f.Add(tc.spec, base, uint8(1))
	}
	f.Add("30 2 * * *", time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC).Unix(), uint8(1))
	f.Add("*/10 * * * *", time.Date(2024, 11, 3, 5, 0, 0, 0, time.UTC).Unix(), uint8(1))
	f.Add("0 0 * * *", time.Date(2018, 11, 3, 12, 0, 0, 0, time.UTC).Unix(), uint8(2))
	f.Add("0 0 29 2 */7", base, uint8(3))

	locs := []*time.Location{time.UTC}
	for _, name := range []string{"America/New_York", "America/Sao_Paulo", "Pacific/Apia", "Australia/Lord_Howe"} {
		loc, err := time.LoadLocation(name)
		if err != nil {
			f.Fatal(err)
		}
		locs = append(locs, loc)
	}

	f.Fuzz(func(t *testing.T, spec string, sec int64, zone uint8) {
		s, err := ParseCron(spec)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, "cron ") {
				t.Fatalf("error %q is not one line starting with cron", msg)
			}
			return
		}
		again, err := ParseCron(s.String())
		if err != nil || *again != *s {
			t.Fatalf("String %q re-parses as %+v, %v; want %+v", s, again, err, s)
		}

		// Keep after within years time handles plainly: 1900 to 2200.
		const lo, span = -2208988800, 300 * 365 * 86400
		sec = lo + (sec%span+span)%span
		loc := locs[int(zone)%len(locs)]
		after := time.Unix(sec, 0).In(loc)
		next := s.Next(after)
		if next.IsZero() {
			return
		}
		if !next.After(after) || next.Second() != 0 || next.Nanosecond() != 0 || next.Location() != loc {
			t.Fatalf("Next(%v) = %v", after, next)
		}
		if next.Sub(after) > 6*366*24*time.Hour {
			t.Fatalf("Next(%v) = %v, beyond the horizon", after, next)
		}
		y, m, d := next.Date()
		if s.minute&(1<<next.Minute()) == 0 || s.hour&(1<<next.Hour()) == 0 || !s.matchDay(y, m, d) {
			t.Fatalf("Next(%v) = %v, which %q does not match", after, next, s)
		}
	})
}
