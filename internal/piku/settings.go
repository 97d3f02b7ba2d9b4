package piku

import (
	"bufio"
	"fmt"
	"strconv"
	"strings"
)

// Var is one setting of a piku ENV file, in file order.
type Var struct {
	Key, Value string
}

// ParseENV reads a piku ENV file as piku's parse_settings does: KEY=VALUE
// lines, both sides trimmed; lines starting with '#' and blank lines are
// skipped; $VAR and ${VAR} are expanded against env (the variables defined
// before, which this function extends) and $$ is a dollar, unknown
// variables are left as written. piku ignores the whole file when one line
// is malformed (has no '='), and so does this: the error names the line.
func ParseENV(text string, env map[string]string) ([]Var, error) {
	var out []Var
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d %q is not KEY=VALUE (piku ignored this whole file)", n, strings.TrimSpace(line))
		}
		k, v = strings.TrimSpace(k), expand(strings.TrimSpace(v), env)
		env[k] = v
		out = append(out, Var{Key: k, Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// expand substitutes $NAME and ${NAME} from env the way Python's
// string.Template.safe_substitute does.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		rest := s[i+1:]
		switch {
		case rest[0] == '$':
			b.WriteByte('$')
			i++
		case rest[0] == '{':
			end := strings.IndexByte(rest, '}')
			name := ""
			if end > 0 {
				name = rest[1:end]
			}
			v, ok := env[name]
			if end < 0 || !isIdent(name) || !ok {
				b.WriteByte('$')
				continue
			}
			b.WriteString(v)
			i += end + 1
		default:
			j := 0
			for j < len(rest) && identByte(rest[j], j == 0) {
				j++
			}
			v, ok := env[rest[:j]]
			if j == 0 || !ok {
				b.WriteByte('$')
				continue
			}
			b.WriteString(v)
			i += j
		}
	}
	return b.String()
}

func identByte(c byte, first bool) bool {
	switch {
	case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	case c >= '0' && c <= '9':
		return !first
	}
	return false
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !identByte(s[i], i == 0) {
			return false
		}
	}
	return true
}

// ParseScaling reads a piku SCALING file: "kind:count" lines, as piku's
// Procfile parser reads them (blank lines and # comments skipped). Lines
// that are not kind:count are returned as problems, not errors: piku
// skipped them too.
func ParseScaling(text string) (map[string]int, []string) {
	out := map[string]int{}
	var problems []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		kind, count, ok := strings.Cut(line, ":")
		kind, count = strings.TrimSpace(kind), strings.TrimSpace(count)
		n, err := strconv.Atoi(count)
		if !ok || kind == "" || err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("SCALING line %q is not KIND:COUNT", line))
			continue
		}
		out[kind] = n
	}
	return out, problems
}

// CheckVar refuses a setting no process environment can hold: an empty
// name, blanks or '=' in the name, or a NUL byte in the value (every
// process start would fail).
func CheckVar(v Var) error {
	switch {
	case v.Key == "":
		return fmt.Errorf("an entry has no name (value %q): write NAME=value, one per line", v.Value)
	case strings.ContainsAny(v.Key, " \t\v\f\r\x00="):
		return fmt.Errorf("invalid name %q: no blanks in names", v.Key)
	case strings.IndexByte(v.Value, 0) >= 0:
		return fmt.Errorf("%s: a value may not contain a NUL byte", v.Key)
	}
	return nil
}
