// Package procfile parses and validates a Procfile in the Heroku/piku format
// and the cron schedules of its cron entries, and finds where an app keeps
// it (Find).
//
// Every error is a single line meant to be shown to the user as is; errors
// about one line start with "Procfile line N: ".
package procfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode"
)

// Limits on the input. They keep a hostile or broken Procfile from costing
// more than a little memory; real Procfiles are a few hundred bytes.
const (
	maxSize    = 64 << 10
	maxLine    = 4096
	maxEntries = 100
	maxName    = 30
)

// Kind classifies an entry by what hop3 does with it.
type Kind int

// The kinds of entry. The zero Kind is invalid, so a forgotten assignment
// does not silently mean WSGI.
const (
	KindWSGI      Kind = iota + 1 // a Python WSGI callable served by hop3
	KindASGI                      // a Python ASGI callable served by hop3
	KindWeb                       // a command that listens on $PORT
	KindStatic                    // a directory served as static files
	KindRelease                   // a hook run once per deploy, after the build
	KindPreflight                 // a hook run once per deploy, before the build
	KindCron                      // a command run on a schedule
	KindWorker                    // any other long-running command
	KindPHP                       // a PHP document root served by php-fpm
)

// String returns the Procfile name of the kind ("wsgi", "worker", ...).
func (k Kind) String() string {
	switch k {
	case KindWSGI:
		return "wsgi"
	case KindASGI:
		return "asgi"
	case KindWeb:
		return "web"
	case KindStatic:
		return "static"
	case KindRelease:
		return "release"
	case KindPreflight:
		return "preflight"
	case KindCron:
		return "cron"
	case KindWorker:
		return "worker"
	case KindPHP:
		return "php"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// routed reports whether the kind is the one HTTP entry Caddy routes to.
func (k Kind) routed() bool {
	return k == KindWSGI || k == KindASGI || k == KindWeb || k == KindStatic || k == KindPHP
}

// longRunning reports whether the process manager keeps entries of the kind
// running. Static has no process; hooks and cron entries run to completion.
func (k Kind) longRunning() bool {
	return k == KindWSGI || k == KindASGI || k == KindWeb || k == KindWorker || k == KindPHP
}

// Entry is one "name: command" line of a Procfile.
type Entry struct {
	Name    string    // as written: "web", "wsgi", "worker", "cron2", ...
	Kind    Kind      // derived from Name
	Command string    // the text after the first ':', trimmed; for cron entries the command without its schedule
	Cron    *Schedule // cron entries only
	Line    int       // 1-based line number in the Procfile
}

// Procfile is a parsed and validated Procfile. Entries keep the file's order.
type Procfile struct {
	Entries []Entry
}

// Get returns the entry with the given name.
func (p *Procfile) Get(name string) (Entry, bool) {
	if p == nil {
		return Entry{}, false
	}
	for _, e := range p.Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Routed returns the entry Caddy routes to: the wsgi, asgi, web, static or
// php entry. Parse guarantees there is at most one.
func (p *Procfile) Routed() (Entry, bool) {
	if p == nil {
		return Entry{}, false
	}
	for _, e := range p.Entries {
		if e.Kind.routed() {
			return e, true
		}
	}
	return Entry{}, false
}

// Processes returns the entries the process manager keeps running (wsgi,
// asgi, web, php and workers), in file order.
func (p *Procfile) Processes() []Entry {
	if p == nil {
		return nil
	}
	var out []Entry
	for _, e := range p.Entries {
		if e.Kind.longRunning() {
			out = append(out, e)
		}
	}
	return out
}

var (
	// nameRE is the whole rule; the checks in checkName only exist to
	// explain a failure precisely.
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,29}$`)
	// targetRE is a Python import target as Granian takes it:
	// dotted.module:callable.
	targetRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse reads and validates a Procfile. It reads at most 64 KiB from r.
func Parse(r io.Reader) (*Procfile, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading Procfile: %w", err)
	}
	if len(data) > maxSize {
		return nil, errors.New("Procfile is larger than 64 KiB")
	}
	// Editors on Windows like to start files with a byte order mark; it
	// would otherwise end up in the first name.
	data = bytes.TrimPrefix(data, []byte("\ufeff"))

	p := &Procfile{}
	seen := make(map[string]int)
	routed := -1 // index in p.Entries of the entry that serves HTTP
	for i, raw := range strings.Split(string(data), "\n") {
		n := i + 1
		raw = strings.TrimSuffix(raw, "\r")
		if len(raw) > maxLine {
			return nil, lineErr(n, "line is longer than %d bytes", maxLine)
		}
		line := strings.TrimSpace(raw)
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseLine(n, line)
		if err != nil {
			return nil, err
		}
		if first, ok := seen[e.Name]; ok {
			return nil, lineErr(n, "%s is already defined on line %d", e.Name, first)
		}
		seen[e.Name] = n
		if len(p.Entries) == maxEntries {
			return nil, lineErr(n, "more than %d entries", maxEntries)
		}
		if e.Kind.routed() {
			if routed >= 0 {
				r := p.Entries[routed]
				return nil, fmt.Errorf("Procfile: %s (line %d) and %s (line %d) both serve HTTP; keep one", r.Name, r.Line, e.Name, e.Line)
			}
			routed = len(p.Entries)
		}
		p.Entries = append(p.Entries, e)
	}
	if len(p.Entries) == 0 {
		return nil, errors.New("Procfile has no entries")
	}
	return p, nil
}

// parseLine parses one trimmed, non-comment line.
func parseLine(n int, line string) (Entry, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return Entry{}, lineErr(n, "contains a NUL byte")
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return Entry{}, lineErr(n, "missing ':' in %q; write \"name: command\"", clip(line))
	}
	name = strings.TrimSpace(name)
	value = strings.TrimSpace(value)
	if err := checkName(n, name); err != nil {
		return Entry{}, err
	}
	if hint := unsupported(name); hint != "" {
		return Entry{}, lineErr(n, "%s", hint)
	}
	if value == "" {
		return Entry{}, lineErr(n, "%s has no command", name)
	}
	e := Entry{Name: name, Kind: kindOf(name), Command: value, Line: n}
	switch e.Kind {
	case KindWSGI, KindASGI:
		if !targetRE.MatchString(value) {
			hint := ""
			if strings.ContainsFunc(value, unicode.IsSpace) {
				hint = "; hop3 runs the server itself, to run your own command use web: instead"
			}
			return Entry{}, lineErr(n, "%s value %q is not module:callable (for example app:app or myproj.%s:application)%s", name, clip(value), name, hint)
		}
	case KindStatic, KindPHP:
		if err := checkDir(n, name, value); err != nil {
			return Entry{}, err
		}
	case KindCron:
		if strings.HasPrefix(value, "@") {
			return Entry{}, lineErr(n, "%s: shortcuts like @daily are not supported; write the five fields, as in \"0 0 * * * command\"", name)
		}
		fields, cmd := splitFields(value, 5)
		if len(fields) < 5 || cmd == "" {
			return Entry{}, lineErr(n, "%s needs a schedule and a command: \"minute hour day-of-month month day-of-week command\", as in \"0 3 * * * ./backup.sh\"", name)
		}
		s, err := ParseCron(strings.Join(fields, " "))
		if err != nil {
			return Entry{}, lineErr(n, "%s: %v", name, err)
		}
		e.Cron = s
		e.Command = cmd
	}
	return e, nil
}

// checkName explains why name is not a valid process name, if it is not.
func checkName(n int, name string) error {
	switch {
	case nameRE.MatchString(name):
		return nil
	case name == "":
		return lineErr(n, "missing process name before ':'")
	case len(name) > maxName:
		return lineErr(n, "process name %q is longer than %d characters", clip(name), maxName)
	case nameRE.MatchString(strings.ToLower(name)):
		return lineErr(n, "process name %q must be lowercase: write %q", name, strings.ToLower(name))
	case !('a' <= name[0]|0x20 && name[0]|0x20 <= 'z'):
		return lineErr(n, "process name %q must start with a letter", clip(name))
	}
	return lineErr(n, "process name %q may contain only lowercase letters, digits, '-' and '_'", clip(name))
}

// unsupported returns a hint for names that piku or older hop3 versions
// give a meaning hop3 does not have. Run as plain workers they would fail
// or loop, far from the cause.
func unsupported(name string) string {
	switch name {
	case "jwsgi", "rwsgi":
		return name + " is a piku process type hop3 does not support; use web: with a command that listens on $PORT"
	case "prebuild":
		return "prebuild is not a hop3 process type; use preflight: to run a command before the build"
	case "postbuild":
		return "postbuild is not a hop3 process type; use release: to run a command after the build"
	}
	return ""
}

// kindOf classifies a valid name.
func kindOf(name string) Kind {
	switch name {
	case "wsgi":
		return KindWSGI
	case "asgi":
		return KindASGI
	case "web":
		return KindWeb
	case "static":
		return KindStatic
	case "php":
		return KindPHP
	case "release":
		return KindRelease
	case "preflight":
		return KindPreflight
	}
	if strings.HasPrefix(name, "cron") {
		return KindCron
	}
	return KindWorker
}

// checkDir accepts a path inside the app directory: the site of a static
// entry, the document root of a php entry.
func checkDir(n int, name, path string) error {
	if err := CheckDir(path); err != nil {
		return lineErr(n, "%s %v", name, err)
	}
	return nil
}

// CheckDir explains why path is not a directory inside the app, if it is
// not: it must be relative, one word, and never climb out with "..". The
// error reads after the name of what gives the path ("static ...",
// "PHP_DOCUMENT_ROOT ...").
func CheckDir(path string) error {
	if strings.ContainsFunc(path, unicode.IsSpace) {
		return fmt.Errorf("value %q must be a single directory path, without spaces", clip(path))
	}
	if strings.HasPrefix(path, "/") {
		return fmt.Errorf("path %q must be relative to the app directory (for example public or ./dist)", clip(path))
	}
	for _, part := range strings.Split(path, "/") {
		if part == ".." {
			return fmt.Errorf("path %q must stay inside the app directory (no \"..\")", clip(path))
		}
	}
	return nil
}

// splitFields splits the first max whitespace-separated fields off s and
// returns them with the trimmed rest, whose inner spacing is kept.
func splitFields(s string, max int) (fields []string, rest string) {
	for len(fields) < max {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		if s == "" {
			break
		}
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i < 0 {
			i = len(s)
		}
		fields = append(fields, s[:i])
		s = s[i:]
	}
	return fields, strings.TrimSpace(s)
}

// lineErr formats an error about line n of the Procfile.
func lineErr(n int, format string, args ...any) error {
	return fmt.Errorf("Procfile line %d: "+format, append([]any{n}, args...)...)
}
