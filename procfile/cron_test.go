package procfile

import (
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the DST cases must not depend on the host's zoneinfo
)

var goodCron = []struct {
	spec, want string
}{
	{"* * * * *", "* * * * *"},
	{"  0\t3 *   * *  ", "0 3 * * *"},
	{"*/15 9-17 * * mon-fri", "*/15 9-17 * * mon-fri"},
	{"0 0 1 JAN,Jul *", "0 0 1 JAN,Jul *"},
	{"0 0 29 2 *", "0 0 29 2 *"},
	{"0 0 30 2 mon", "0 0 30 2 mon"},
	{"0 0 31 4,5 *", "0 0 31 4,5 *"},
	{"05 00 01 01 07", "05 00 01 01 07"},
	{"0-59/59 0-23/23 1-31/31 1-12/12 0-7/7", "0-59/59 0-23/23 1-31/31 1-12/12 0-7/7"},
	{"1,2,3-5,*/20 * * * sun-sat", "1,2,3-5,*/20 * * * sun-sat"},
}

func TestParseCronGood(t *testing.T) {
	t.Parallel()
	for _, tc := range goodCron {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			s, err := ParseCron(tc.spec)
			if err != nil {
				t.Fatalf("ParseCron: %v", err)
			}
			if got := s.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
			again, err := ParseCron(s.String())
			if err != nil || *again != *s {
				t.Errorf("re-parsing %q gives %+v, %v; want %+v", s, again, err, s)
			}
		})
	}
}

func TestParseCronBits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		spec                          string
		minute, hour, dom, month, dow uint64
	}{
		{"0 0 1 1 0", 1, 1, 1 << 1, 1 << 1, 1},
		{"0 0 1 1 7", 1, 1, 1 << 1, 1 << 1, 1},
		{"0 0 1 1 5-7", 1, 1, 1 << 1, 1 << 1, 1<<5 | 1<<6 | 1},
		{"0 0 1 1 0-7", 1, 1, 1 << 1, 1 << 1, 1<<7 - 1},
		{"0 0 1 1 */2", 1, 1, 1 << 1, 1 << 1, 1 | 1<<2 | 1<<4 | 1<<6},
		{"*/20 */12 */10 */5 *", 1 | 1<<20 | 1<<40, 1 | 1<<12, 1<<1 | 1<<11 | 1<<21 | 1<<31, 1<<1 | 1<<6 | 1<<11, 1<<7 - 1},
		{"10-30/10 1-5/2 * jan-mar/2 mon,WED,fri", 1<<10 | 1<<20 | 1<<30, 1<<1 | 1<<3 | 1<<5, 1<<32 - 2, 1<<1 | 1<<3, 1<<1 | 1<<3 | 1<<5},
		{"* * * * *", 1<<60 - 1, 1<<24 - 1, 1<<32 - 2, 1<<13 - 2, 1<<7 - 1},
	}
	for _, tc := range tests {
		s, err := ParseCron(tc.spec)
		if err != nil {
			t.Errorf("ParseCron(%q): %v", tc.spec, err)
			continue
		}
		got := [5]uint64{s.minute, s.hour, s.dom, s.month, s.dow}
		want := [5]uint64{tc.minute, tc.hour, tc.dom, tc.month, tc.dow}
		if got != want {
			t.Errorf("ParseCron(%q) bits = %b, want %b", tc.spec, got, want)
		}
	}
}

var badCron = []struct {
	spec, want string
}{
	{"", `cron schedule "" has 0 fields; want 5: minute hour day-of-month month day-of-week`},
	{"* * * *", `cron schedule "* * * *" has 4 fields; want 5: minute hour day-of-month month day-of-week`},
	{"* * * * * *", `cron schedule "* * * * * *" has 6 fields; want 5: minute hour day-of-month month day-of-week`},
	{"61 * * * *", `cron minute field "61": out of range 0-59`},
	{"1,61 * * * *", `cron minute field "1,61": 61 is out of range 0-59`},
	{"50-61 * * * *", `cron minute field "50-61": 61 is out of range 0-59`},
	{"99999999999999999999 * * * *", `cron minute field "99999999999999999999": out of range 0-59`},
	{"* 24 * * *", `cron hour field "24": out of range 0-23`},
	{"* * 0 * *", `cron day-of-month field "0": out of range 1-31`},
	{"* * 32 * *", `cron day-of-month field "32": out of range 1-31`},
	{"* * * 0 *", `cron month field "0": out of range 1-12`},
	{"* * * 13 *", `cron month field "13": out of range 1-12`},
	{"* * * * 8", `cron day-of-week field "8": out of range 0-7`},
	{"jan * * * *", `cron minute field "jan": not a number`},
	{"* * * foo *", `cron month field "foo": not a number or month name (jan-dec)`},
	{"* * * * mon-funday", `cron day-of-week field "mon-funday": "funday" is not a number or day name (sun-sat)`},
	{"* * * * monday", `cron day-of-week field "monday": not a number or day name (sun-sat)`},
	{"-5 * * * *", `cron minute field "-5": "" is not a number`},
	{"1-2-3 * * * *", `cron minute field "1-2-3": "2-3" is not a number`},
	{"*/0 * * * *", `cron minute field "*/0": step must be 1-59`},
	{"*/60 * * * *", `cron minute field "*/60": step must be 1-59`},
	{"* */24 * * *", `cron hour field "*/24": step must be 1-23`},
	{"*/x * * * *", `cron minute field "*/x": step "x" is not a number`},
	{"*/ * * * *", `cron minute field "*/": step "" is not a number`},
	{"5/10 * * * *", `cron minute field "5/10": a step needs * or a range, as in */10 or 5-59/10`},
	{"5-1 * * * *", `cron minute field "5-1": range 5-1 runs backwards; write the smaller value first`},
	{"* 22-2 * * *", `cron hour field "22-2": range 22-2 runs backwards; write the smaller value first`},
	{"1,,2 * * * *", `cron minute field "1,,2": empty list item`},
	{"1, * * * *", `cron minute field "1,": empty list item`},
	{"0 0 30 2 *", `cron day-of-month field "30": no such day in month field "2"; the schedule would never run`},
	{"0 0 31 4,6,9,11 *", `cron day-of-month field "31": no such day in month field "4,6,9,11"; the schedule would never run`},
	{"0 0 30,31 feb */2", `cron day-of-month field "30,31": no such day in month field "feb"; the schedule would never run`},
}

func TestParseCronBad(t *testing.T) {
	t.Parallel()
	for _, tc := range badCron {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			s, err := ParseCron(tc.spec)
			if err == nil {
				t.Fatalf("ParseCron(%q) = %v, want error %q", tc.spec, s, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
		})
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNext(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	sp := mustLoad(t, "America/Sao_Paulo")
	ams := mustLoad(t, "Europe/Amsterdam")
	apia := mustLoad(t, "Pacific/Apia")
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	// at builds an instant from a wall time and the offset in hours that
	// picks one side of a DST change.
	at := func(loc *time.Location, offHours, y int, mo time.Month, d, h, mi int) time.Time {
		return time.Date(y, mo, d, h, mi, 0, 0, time.UTC).Add(-time.Duration(offHours) * time.Hour).In(loc)
	}
	tests := []struct {
		name  string
		spec  string
		after time.Time
		want  time.Time // zero: none within five years
	}{
		{"every minute", "* * * * *", time.Date(2024, 1, 1, 10, 0, 30, 0, time.UTC), utc(2024, 1, 1, 10, 1)},
		{"strictly after", "* * * * *", utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 1)},
		{"nanoseconds truncated", "* * * * *", time.Date(2024, 1, 1, 10, 0, 59, 999999999, time.UTC), utc(2024, 1, 1, 10, 1)},
		{"end of year", "59 23 31 12 *", utc(2024, 12, 31, 23, 59), utc(2025, 12, 31, 23, 59)},
		{"new year", "0 0 1 1 *", utc(2024, 12, 31, 23, 59), utc(2025, 1, 1, 0, 0)},
		{"31st skips short months", "0 0 31 * *", utc(2024, 4, 1, 0, 0), utc(2024, 5, 31, 0, 0)},
		{"leap day", "0 0 29 2 *", utc(2023, 3, 1, 0, 0), utc(2024, 2, 29, 0, 0)},
		{"leap day to next leap day", "0 0 29 2 *", utc(2024, 2, 29, 0, 0), utc(2028, 2, 29, 0, 0)},
		{"leap day or a Monday in February", "0 0 29 2 1", utc(2024, 2, 29, 0, 0), utc(2025, 2, 3, 0, 0)},
		// "*/7" is Sunday alone, but its '*' makes it AND the day of month.
		{"leap day on a Sunday, none within five years", "0 0 29 2 */7", utc(2024, 3, 1, 0, 0), time.Time{}},
		{"leap day on a Sunday within five years", "0 0 29 2 */7", utc(2027, 3, 2, 0, 0), utc(2032, 2, 29, 0, 0)},
		{"leap day on a Sunday just beyond five years", "0 0 29 2 */7", utc(2027, 2, 1, 0, 0), time.Time{}},
		{"dom or dow: Friday first", "0 12 13 * 5", utc(2024, 9, 1, 0, 0), utc(2024, 9, 6, 12, 0)},
		{"dom or dow: the 13th", "0 12 13 * 5", utc(2024, 9, 10, 0, 0), utc(2024, 9, 13, 12, 0)},
		{"dom or dow: Friday after", "0 12 13 * 5", utc(2024, 9, 13, 12, 0), utc(2024, 9, 20, 12, 0)},
		{"dom only", "0 12 13 * *", utc(2024, 9, 1, 0, 0), utc(2024, 9, 13, 12, 0)},
		{"dow only", "0 12 * * 5", utc(2024, 9, 1, 0, 0), utc(2024, 9, 6, 12, 0)},
		{"star step dom is AND", "0 12 */2 * 5", utc(2024, 9, 1, 0, 0), utc(2024, 9, 13, 12, 0)},
		{"step", "*/15 * * * *", utc(2024, 1, 1, 10, 7), utc(2024, 1, 1, 10, 15)},
		{"range step", "10-30/10 * * * *", utc(2024, 1, 1, 10, 31), utc(2024, 1, 1, 11, 10)},
		{"hour step", "0 */6 * * *", utc(2024, 1, 1, 19, 0), utc(2024, 1, 2, 0, 0)},
		{"weekday range over weekend", "0 9-17 * * mon-fri", utc(2024, 9, 6, 17, 30), utc(2024, 9, 9, 9, 0)},
		{"list", "0 0 1,15 * *", utc(2024, 9, 2, 0, 0), utc(2024, 9, 15, 0, 0)},
		{"month names", "0 0 1 jan,JUL *", utc(2024, 2, 1, 0, 0), utc(2024, 7, 1, 0, 0)},
		{"Sunday as 7", "0 0 * * 7", utc(2024, 9, 2, 0, 0), utc(2024, 9, 8, 0, 0)},
		{"Sunday as 0", "0 0 * * 0", utc(2024, 9, 2, 0, 0), utc(2024, 9, 8, 0, 0)},
		{"Sunday as sun", "0 0 * * SUN", utc(2024, 9, 2, 0, 0), utc(2024, 9, 8, 0, 0)},
		{"range to 7", "0 0 * * 6-7", utc(2024, 9, 2, 0, 0), utc(2024, 9, 7, 0, 0)},
		{"range to 7 reaches Sunday", "0 0 * * 6-7", utc(2024, 9, 7, 0, 0), utc(2024, 9, 8, 0, 0)},
		{"Apia skipped 30 December 2011", "0 12 30 12 *", time.Date(2011, 12, 29, 0, 0, 0, 0, apia), time.Date(2012, 12, 30, 12, 0, 0, 0, apia)},
		{"keeps the location", "0 9 * * *", time.Date(2024, 6, 1, 10, 0, 0, 0, ny), time.Date(2024, 6, 2, 9, 0, 0, 0, ny)},
		{"minute truncation by wall clock", "* * * * *", time.Date(1930, 6, 1, 12, 0, 30, 0, ams), time.Date(1930, 6, 1, 12, 1, 0, 0, ams)},

		// New York: 2024-03-10 02:00 EST becomes 03:00 EDT; 2024-11-03
		// 02:00 EDT becomes 01:00 EST.
		{"spring forward skips the missing time", "30 2 * * *", at(ny, -5, 2024, 3, 10, 0, 0), at(ny, -4, 2024, 3, 11, 2, 30)},
		{"spring forward every half hour", "*/30 * * * *", at(ny, -5, 2024, 3, 10, 1, 45), at(ny, -4, 2024, 3, 10, 3, 0)},
		{"fall back first occurrence", "30 1 * * *", at(ny, -4, 2024, 11, 3, 0, 0), at(ny, -4, 2024, 11, 3, 1, 30)},
		{"fall back runs a fixed hour once", "30 1 * * *", at(ny, -4, 2024, 11, 3, 1, 30), at(ny, -5, 2024, 11, 4, 1, 30)},
		{"fall back fixed hour every minute once", "*/20 1 * * *", at(ny, -4, 2024, 11, 3, 1, 40), at(ny, -5, 2024, 11, 4, 1, 0)},
		{"fall back keeps hourly rhythm", "30 * * * *", at(ny, -4, 2024, 11, 3, 1, 30), at(ny, -5, 2024, 11, 3, 1, 30)},
		{"fall back every ten minutes", "*/10 * * * *", at(ny, -4, 2024, 11, 3, 1, 55), at(ny, -5, 2024, 11, 3, 1, 0)},
		{"fall back inside second hour", "*/10 * * * *", at(ny, -5, 2024, 11, 3, 1, 5), at(ny, -5, 2024, 11, 3, 1, 10)},
		{"fall back fixed hour from second hour", "45 1 * * *", at(ny, -5, 2024, 11, 3, 1, 5), at(ny, -5, 2024, 11, 4, 1, 45)},

		// São Paulo changed clocks at midnight: 2018-11-04 00:00 -03
		// became 01:00 -02; 2019-02-17 00:00 -02 became 23:00 -03 on the 16th.
		{"midnight that does not exist", "0 0 * * *", at(sp, -3, 2018, 11, 3, 12, 0), at(sp, -2, 2018, 11, 5, 0, 0)},
		{"hour after missing midnight", "0 1 * * *", at(sp, -3, 2018, 11, 3, 12, 0), at(sp, -2, 2018, 11, 4, 1, 0)},
		{"repeated hour before midnight, fixed", "30 23 * * *", at(sp, -2, 2019, 2, 16, 23, 40), at(sp, -3, 2019, 2, 17, 23, 30)},
		{"repeated hour before midnight, every half hour", "*/30 * * * *", at(sp, -2, 2019, 2, 16, 23, 45), at(sp, -3, 2019, 2, 16, 23, 0)},
		{"after the repeated hour", "*/30 * * * *", at(sp, -3, 2019, 2, 16, 23, 45), at(sp, -3, 2019, 2, 17, 0, 0)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := ParseCron(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := s.Next(tc.after)
			if !got.Equal(tc.want) || got.IsZero() != tc.want.IsZero() {
				t.Fatalf("Next(%v) = %v, want %v", tc.after, got, tc.want)
			}
			if !got.IsZero() && got.Location() != tc.after.Location() {
				t.Errorf("Next in %v, want %v", got.Location(), tc.after.Location())
			}
		})
	}
}

func TestNextSequence(t *testing.T) {
	t.Parallel()
	s, err := ParseCron("0,30 9-10 * * mon")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for tm := time.Date(2024, 9, 1, 0, 0, 0, 0, time.UTC); len(got) < 6; {
		tm = s.Next(tm)
		got = append(got, tm.Format("Mon 01-02 15:04"))
	}
	want := "Mon 09-02 09:00,Mon 09-02 09:30,Mon 09-02 10:00,Mon 09-02 10:30,Mon 09-09 09:00,Mon 09-09 09:30"
	if strings.Join(got, ",") != want {
		t.Errorf("got %s\nwant %s", strings.Join(got, ","), want)
	}
}

func TestNilSchedule(t *testing.T) {
	t.Parallel()
	var s *Schedule
	if !s.Next(time.Now()).IsZero() || s.String() != "" {
		t.Error("nil Schedule is not inert")
	}
}

func TestInstants(t *testing.T) {
	t.Parallel()
	ny := mustLoad(t, "America/New_York")
	tests := []struct {
		name     string
		y        int
		mo       time.Month
		d, h, mi int
		offsets  []int
	}{
		{name: "ordinary", y: 2024, mo: 6, d: 1, h: 12, offsets: []int{-4}},
		{name: "gap", y: 2024, mo: 3, d: 10, h: 2, mi: 30},
		{name: "overlap", y: 2024, mo: 11, d: 3, h: 1, mi: 30, offsets: []int{-4, -5}},
	}
	for _, tc := range tests {
		got := instants(tc.y, tc.mo, tc.d, tc.h, tc.mi, ny)
		if len(got) != len(tc.offsets) {
			t.Errorf("%s: %v, want offsets %v", tc.name, got, tc.offsets)
			continue
		}
		for i, tm := range got {
			_, off := tm.Zone()
			if off != tc.offsets[i]*3600 || tm.Hour() != tc.h || tm.Minute() != tc.mi || tm.Day() != tc.d {
				t.Errorf("%s: instant %d = %v, want %02d:%02d at offset %d", tc.name, i, tm, tc.h, tc.mi, tc.offsets[i])
			}
		}
	}
}

func BenchmarkNextNever(b *testing.B) {
	s, err := ParseCron("0 0 29 2 */7")
	if err != nil {
		b.Fatal(err)
	}
	after := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		s.Next(after)
	}
}
