package procfile

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed five-field cron schedule.
type Schedule struct {
	minute, hour, dom, month, dow uint64 // bit v set: value v matches; dow uses 0-6, Sunday 0

	// Fields written with a leading '*' (such as "*" or "*/2") count as
	// unrestricted, as in Vixie cron: they decide between the AND and the
	// OR of day of month and day of week, and an unrestricted hour keeps
	// its rhythm through a repeated daylight-saving hour.
	hourStar, domStar, dowStar bool

	spec string // the five fields as written, separated by single spaces
}

// cronField describes one of the five fields.
type cronField struct {
	name     string
	min, max int      // accepted values
	starMax  int      // the upper end of '*'; day of week stops at 6, as 7 is Sunday again
	names    []string // value min+i may be written names[i]
	nameHelp string
	sunday7  bool // 7 is another way to write 0
}

const (
	fMinute = iota
	fHour
	fDom
	fMonth
	fDow
)

// cronFields is a read-only table.
var cronFields = [5]cronField{
	fMinute: {name: "minute", min: 0, max: 59, starMax: 59},
	fHour:   {name: "hour", min: 0, max: 23, starMax: 23},
	fDom:    {name: "day-of-month", min: 1, max: 31, starMax: 31},
	fMonth: {name: "month", min: 1, max: 12, starMax: 12,
		names:    []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
		nameHelp: "month name (jan-dec)"},
	fDow: {name: "day-of-week", min: 0, max: 7, starMax: 6,
		names:    []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
		nameHelp: "day name (sun-sat)", sunday7: true},
}

// ParseCron parses the five fields of a cron schedule: minute, hour, day of
// month, month and day of week, separated by whitespace.
func ParseCron(spec string) (*Schedule, error) {
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return nil, fmt.Errorf("cron schedule %q has %d fields; want 5: minute hour day-of-month month day-of-week", clip(spec), len(fields))
	}
	var bits [5]uint64
	for i, f := range fields {
		b, err := parseField(&cronFields[i], f)
		if err != nil {
			return nil, err
		}
		bits[i] = b
	}
	s := &Schedule{
		minute:   bits[fMinute],
		hour:     bits[fHour],
		dom:      bits[fDom],
		month:    bits[fMonth],
		dow:      bits[fDow],
		hourStar: strings.HasPrefix(fields[fHour], "*"),
		domStar:  strings.HasPrefix(fields[fDom], "*"),
		dowStar:  strings.HasPrefix(fields[fDow], "*"),
		spec:     strings.Join(fields, " "),
	}
	// When the day of month is what decides, a schedule such as
	// "0 0 30 2 *" would be accepted and then never run.
	if s.domStar || s.dowStar {
		possible := false
		for m := 1; m <= 12; m++ {
			if s.month&(1<<m) != 0 && s.dom&(1<<(daysIn(time.Month(m))+1)-1) != 0 {
				possible = true
			}
		}
		if !possible {
			return nil, fmt.Errorf("cron day-of-month field %q: no such day in month field %q; the schedule would never run", fields[fDom], fields[fMonth])
		}
	}
	return s, nil
}

// daysIn is the most days month m can have.
func daysIn(m time.Month) int {
	switch m {
	case time.February:
		return 29
	case time.April, time.June, time.September, time.November:
		return 30
	}
	return 31
}

// parseField parses one field: a comma-separated list of '*', values and
// ranges, each optionally followed by /step.
func parseField(f *cronField, text string) (uint64, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("cron %s field %q: %s", f.name, clip(text), fmt.Sprintf(format, args...))
	}
	var bits uint64
	for _, item := range strings.Split(text, ",") {
		if item == "" {
			return 0, fail("empty list item")
		}
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, ok := number(stepText)
			if !ok {
				return 0, fail("step %q is not a number", clip(stepText))
			}
			if n < 1 || n > f.max {
				return 0, fail("step must be 1-%d", f.max)
			}
			step = n
		}
		var lo, hi int
		if rng == "*" {
			lo, hi = f.min, f.starMax
		} else if a, b, isRange := strings.Cut(rng, "-"); isRange {
			var err error
			if lo, err = value(f, text, a); err != nil {
				return 0, err
			}
			if hi, err = value(f, text, b); err != nil {
				return 0, err
			}
			if lo > hi {
				return 0, fail("range %s runs backwards; write the smaller value first", rng)
			}
		} else {
			v, err := value(f, text, rng)
			if err != nil {
				return 0, err
			}
			if hasStep {
				return 0, fail("a step needs * or a range, as in */%d or %s-%d/%d", step, rng, f.max, step)
			}
			lo, hi = v, v
		}
		for v := lo; v <= hi; v += step {
			bit := v
			if f.sunday7 && v == 7 {
				bit = 0
			}
			bits |= 1 << bit
		}
	}
	return bits, nil
}

// value parses one number or name of field f. The error mentions tok only
// when it is not the whole field, where it would be redundant.
func value(f *cronField, text, tok string) (int, error) {
	subject := func(quoted bool) string {
		if tok == text {
			return ""
		}
		if quoted {
			return strconv.Quote(clip(tok)) + " is "
		}
		return clip(tok) + " is "
	}
	if n, ok := number(tok); ok {
		if n < f.min || n > f.max {
			return 0, fmt.Errorf("cron %s field %q: %sout of range %d-%d", f.name, clip(text), subject(false), f.min, f.max)
		}
		return n, nil
	}
	for i, name := range f.names {
		if strings.EqualFold(tok, name) {
			return f.min + i, nil
		}
	}
	what := "a number"
	if f.nameHelp != "" {
		what += " or " + f.nameHelp
	}
	return 0, fmt.Errorf("cron %s field %q: %snot %s", f.name, clip(text), subject(true), what)
}

// number parses a non-empty string of ASCII digits; values too large for an
// int come back as a large number, so that they are reported as out of range.
func number(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1_000_000 {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}

// String returns the schedule's five fields as written, separated by single
// spaces. ParseCron accepts it and gives back an equal Schedule.
func (s *Schedule) String() string {
	if s == nil {
		return ""
	}
	return s.spec
}

// matchDay reports whether the schedule runs on the given date.
func (s *Schedule) matchDay(y int, m time.Month, d int) bool {
	if s.month&(1<<m) == 0 {
		return false
	}
	dom := s.dom&(1<<d) != 0
	dow := s.dow&(1<<time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Weekday()) != 0
	// Vixie cron: if either day field is unrestricted both must match, so
	// that the unrestricted one does not match every day.
	if s.domStar || s.dowStar {
		return dom && dow
	}
	return dom || dow
}

// horizon is how far Next looks ahead; a schedule such as "0 0 29 2 1"
// (the 29th of February when it is a Monday) may not run for longer.
const horizon = 5 // years

// Next returns the first time strictly after after, counted in whole
// minutes, at which the schedule runs, in after's Location. It returns the
// zero Time if the schedule does not run within five years.
//
// Daylight-saving changes follow the wall clock: a wall time that does not
// exist that day is skipped. A wall time that occurs twice runs only at its
// first occurrence, unless the hour field is unrestricted ('*'), in which
// case both occurrences run, so that "*/10 * * * *" keeps running every ten
// minutes of real time.
func (s *Schedule) Next(after time.Time) time.Time {
	if s == nil {
		return time.Time{}
	}
	loc := after.Location()
	// Truncate by the wall clock: after.Truncate works on absolute time and
	// would leave seconds behind in zones whose offset is not whole minutes.
	start := after.Add(-time.Duration(after.Second())*time.Second - time.Duration(after.Nanosecond())).Add(time.Minute)
	from := start.Unix()
	y, m, d := start.Date()
	// Start a day early: when clocks go back at midnight, an instant after
	// start can carry the previous day's date.
	day := time.Date(y, m, d-1, 0, 0, 0, 0, time.UTC)
	end := day.AddDate(horizon, 0, 2)
	for ; !day.After(end); day = day.AddDate(0, 0, 1) {
		y, m, d := day.Date()
		if !s.matchDay(y, m, d) {
			continue
		}
		for h := 0; h < 24; h++ {
			if s.hour&(1<<h) == 0 {
				continue
			}
			for mi := 0; mi < 60; mi++ {
				if s.minute&(1<<mi) == 0 {
					continue
				}
				ts := instants(y, m, d, h, mi, loc)
				for i, t := range ts {
					if i > 0 && !s.hourStar {
						break
					}
					if t.Unix() >= from {
						return t
					}
				}
			}
		}
	}
	return time.Time{}
}

// instants returns the instants, earliest first, at which clocks in loc show
// the given wall time: none in a gap where clocks jump forward, two where
// they go back.
func instants(y int, mo time.Month, d, h, mi int, loc *time.Location) []time.Time {
	wall := time.Date(y, mo, d, h, mi, 0, 0, time.UTC).Unix()
	// An instant reads as wall exactly when the zone offset in effect at
	// it is the offset it was computed with. The offsets worth trying are
	// the one time.Date picks and those a day either side, which covers
	// any single transition.
	var offs [3]int
	_, offs[0] = time.Date(y, mo, d, h, mi, 0, 0, loc).Zone()
	_, offs[1] = time.Unix(wall-86400, 0).In(loc).Zone()
	_, offs[2] = time.Unix(wall+86400, 0).In(loc).Zone()
	out := make([]time.Time, 0, 2)
	for i, off := range offs {
		if (i > 0 && off == offs[0]) || (i > 1 && off == offs[1]) {
			continue
		}
		t := time.Unix(wall-int64(off), 0).In(loc)
		if _, o := t.Zone(); o == off {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

// clip shortens user input quoted in an error, so that the message stays
// readable.
func clip(s string) string {
	const max = 60
	if len(s) <= max {
		return s
	}
	r := []rune(s)
	if len(r) <= max {
		return s
	}
	return string(r[:max]) + "..."
}
