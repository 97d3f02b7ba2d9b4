// Package bytesize reads and prints byte counts, so that a size reads the
// same wherever hop3 takes one (flags, config vars) or shows one.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// units are the suffixes Parse reads, longest first so that "mib" is not
// taken for "b". Every unit is a power of 1024: people write 10MB and mean
// what a disk tool calls 10 MiB.
var units = []struct {
	suffix string
	mult   int64
}{{"gib", 1 << 30}, {"mib", 1 << 20}, {"kib", 1 << 10}, {"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}, {"b", 1}}

// Parse reads a size as people write it: "1048576", "512k", "10MB",
// "1GiB", "1g", case and blanks around the number ignored. Decimals,
// negative sizes and sizes that do not fit in an int64 are refused.
func Parse(s string) (int64, error) {
	v := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(v, u.suffix) {
			v, mult = strings.TrimSpace(strings.TrimSuffix(v, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size (e.g. 1GiB, 500MB, 1048576)", s)
	}
	return n * mult, nil
}

// Format prints a size the way people set it: 1 GiB, 3 MiB, 512 KiB, exact
// where a whole unit fits, for limits and caps.
func Format(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}

// Human prints an amount for people, rounded: 1.5 GiB, 3.0 MiB, 512 KiB,
// 80 B. Every table and message that shows how much something holds uses
// it, so one amount reads the same everywhere.
func Human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
