package metrics

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Labels are a sample's label pairs, in the order they are written.
type Labels [][2]string

// L builds Labels from name, value pairs.
func L(kv ...string) Labels {
	out := make(Labels, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

func (l Labels) with(k, v string) Labels {
	out := make(Labels, len(l), len(l)+1)
	copy(out, l)
	return append(out, [2]string{k, v})
}

// key identifies a label set inside one metric family.
func (l Labels) key() string {
	var b strings.Builder
	for _, p := range l {
		b.WriteString(p[0])
		b.WriteByte(0)
		b.WriteString(p[1])
		b.WriteByte(0)
	}
	return b.String()
}

// textWriter writes the Prometheus text exposition format (version 0.0.4):
// a HELP and a TYPE line per family, then its samples.
type textWriter struct {
	w   io.Writer
	err error
}

func (t *textWriter) printf(format string, a ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.w, format, a...)
}

func (t *textWriter) family(name, typ, help string) {
	t.printf("# HELP %s %s\n# TYPE %s %s\n", name, escapeHelp(help), name, typ)
}

func (t *textWriter) sample(name string, labels Labels, v float64) {
	t.printf("%s%s %s\n", name, formatLabels(labels), formatValue(v))
}

func formatLabels(l Labels) string {
	if len(l) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, p := range l {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(p[0])
		b.WriteString(`="`)
		b.WriteString(escapeLabel(p[1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

// escapeLabel escapes a label value: backslash, double quote and newline.
func escapeLabel(s string) string {
	if !strings.ContainsAny(s, "\\\"\n") {
		return s
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return r.Replace(s)
}

// escapeHelp escapes a HELP text: backslash and newline.
func escapeHelp(s string) string {
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// series is one label set's value, for sorted output.
type series struct {
	labels Labels
	value  float64
}

func sortSeries(s []series) {
	sort.Slice(s, func(i, j int) bool { return s[i].labels.key() < s[j].labels.key() })
}
