package buildpacks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// semver is a release version; pre-release and build suffixes are dropped,
// which is all a check of the installed Node.js needs.
type semver [3]int

func (v semver) less(w semver) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] < w[i]
		}
	}
	return false
}

func parseSemver(s string) (semver, error) {
	p, err := parsePartial(s)
	if err != nil {
		return semver{}, err
	}
	if p.n != 3 {
		return semver{}, fmt.Errorf("%q is not a full version", s)
	}
	return p.v, nil
}

// partial is a version that may give fewer than three numbers, or wildcards
// ("20", "20.x", "*"): n says how many numbers it gives.
type partial struct {
	v semver
	n int
}

func parsePartial(s string) (partial, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "="), "v")
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		s = s[:i]
	}
	var p partial
	if s == "" {
		return p, errors.New("empty version")
	}
	for i, f := range strings.Split(s, ".") {
		if i > 2 {
			return partial{}, fmt.Errorf("bad version %q", s)
		}
		if f == "x" || f == "X" || f == "*" {
			break
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return partial{}, fmt.Errorf("bad version %q", s)
		}
		p.v[i] = n
		p.n = i + 1
	}
	return p, nil
}

// next returns the smallest version above every version the partial
// covers: 20 -> 21.0.0, 20.1 -> 20.2.0.
func (p partial) next() semver {
	var v semver
	switch p.n {
	case 1:
		v = semver{p.v[0] + 1, 0, 0}
	case 2:
		v = semver{p.v[0], p.v[1] + 1, 0}
	default:
		v = semver{p.v[0], p.v[1], p.v[2] + 1}
	}
	return v
}

// bound is one comparison; lower bounds are inclusive, upper ones exclusive.
type bound struct {
	lower bool
	v     semver
}

// nothing is a bound no version passes: below 0.0.0.
func nothing() bound { return bound{} }

func (b bound) ok(v semver) bool {
	if b.lower {
		return !v.less(b.v)
	}
	return v.less(b.v)
}

// satisfies reports whether v is in the npm range r. It understands what
// package.json files say in practice: "20", "20.x", ">=18", ">=18 <21",
// "^20.1", "~20.1.2", "18 - 20", "18 || 20", "*".
func satisfies(v semver, r string) (bool, error) {
	for _, alt := range strings.Split(r, "||") {
		bounds, err := parseComparatorSet(alt)
		if err != nil {
			return false, err
		}
		all := true
		for _, b := range bounds {
			if !b.ok(v) {
				all = false
				break
			}
		}
		if all {
			return true, nil
		}
	}
	return false, nil
}

// parseComparatorSet turns a space-separated set of comparators into bounds.
func parseComparatorSet(s string) ([]bound, error) {
	fields := strings.Fields(s)
	// Join operators written apart from their version: ">= 18".
	var tokens []string
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Trim(f, "<>=~^") == "" && f != "-" && i+1 < len(fields) {
			f += fields[i+1]
			i++
		}
		tokens = append(tokens, f)
	}
	var bounds []bound
	for i := 0; i < len(tokens); i++ {
		if i+2 < len(tokens) && tokens[i+1] == "-" {
			lo, err := parsePartial(tokens[i])
			if err != nil {
				return nil, err
			}
			hi, err := parsePartial(tokens[i+2])
			if err != nil {
				return nil, err
			}
			bounds = append(bounds, bound{lower: true, v: lo.v})
			if hi.n > 0 {
				bounds = append(bounds, bound{v: hi.next()})
			}
			i += 2
			continue
		}
		b, err := parseComparator(tokens[i])
		if err != nil {
			return nil, err
		}
		bounds = append(bounds, b...)
	}
	return bounds, nil
}

func parseComparator(s string) ([]bound, error) {
	op := ""
	for _, prefix := range []string{">=", "<=", "~>", ">", "<", "^", "~", "="} {
		if strings.HasPrefix(s, prefix) {
			op, s = prefix, s[len(prefix):]
			break
		}
	}
	p, err := parsePartial(s)
	if err != nil {
		return nil, err
	}
	lo := bound{lower: true, v: p.v}
	switch op {
	case "", "=":
		if p.n == 0 {
			return nil, nil
		}
		return []bound{lo, {v: p.next()}}, nil
	case ">=":
		return []bound{lo}, nil
	case ">":
		if p.n == 0 {
			return []bound{nothing()}, nil
		}
		return []bound{{lower: true, v: p.next()}}, nil
	case "<":
		if p.n == 0 {
			return []bound{nothing()}, nil
		}
		return []bound{{v: p.v}}, nil
	case "<=":
		if p.n == 0 {
			return nil, nil
		}
		return []bound{{v: p.next()}}, nil
	case "~", "~>":
		if p.n == 0 {
			return nil, nil
		}
		if p.n == 1 {
			return []bound{lo, {v: semver{p.v[0] + 1, 0, 0}}}, nil
		}
		return []bound{lo, {v: semver{p.v[0], p.v[1] + 1, 0}}}, nil
	case "^":
		switch {
		case p.n == 0:
			return nil, nil
		case p.v[0] > 0 || p.n == 1:
			return []bound{lo, {v: semver{p.v[0] + 1, 0, 0}}}, nil
		case p.v[1] > 0 || p.n == 2:
			return []bound{lo, {v: semver{0, p.v[1] + 1, 0}}}, nil
		default:
			return []bound{lo, {v: semver{0, 0, p.v[2] + 1}}}, nil
		}
	}
	return nil, fmt.Errorf("bad comparator %q", s)
}
