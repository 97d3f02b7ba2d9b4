package supervisor

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// LogTimeLayout is the layout of the time that starts every line of a
// process log: UTC with milliseconds, of fixed width, so that lines from
// several logs sort by time as text.
const LogTimeLayout = "2006-01-02T15:04:05.000Z"

// LogLine is one line of a process log. The supervisor writes each line the
// process prints as "<time> <tag> <text>", stamped when it reads the line
// from the process's output: tag is what follows the last "@" of the
// process's Spec.Name ("v3.7" for "myapp/web.1@v3.7"), which tells apart
// processes of different generations sharing a log, or "-".
type LogLine struct {
	Time time.Time
	Tag  string
	Text string
}

// ParseLogLine splits a line of a process log. It reports false for a line
// without the time and tag (written before hop3 stamped lines).
func ParseLogLine(line string) (LogLine, bool) {
	stamp, rest, ok := strings.Cut(line, " ")
	if !ok || len(stamp) != len(LogTimeLayout) {
		return LogLine{}, false
	}
	t, err := time.Parse(LogTimeLayout, stamp)
	if err != nil {
		return LogLine{}, false
	}
	tag, text, ok := strings.Cut(rest, " ")
	if !ok {
		// A blank line the process printed.
		tag, text = rest, ""
	}
	if tag == "" {
		return LogLine{}, false
	}
	return LogLine{Time: t, Tag: tag, Text: text}, true
}

// logTag is the tag of the lines of the process named name.
func logTag(name string) string {
	i := strings.LastIndexByte(name, '@')
	if i < 0 || i == len(name)-1 {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, name[i+1:])
}

const (
	tailLines      = 20
	maxTailLineLen = 1000
	// maxPartialLine bounds the memory held for a line without a newline;
	// beyond it the fragment is written as a line of its own.
	maxPartialLine = 64 << 10
)

// logFile is an append-only log file rotated by size. Processes that share a
// path share one logFile, so rotation happens once and lines never land in a
// file another writer has just renamed away.
type logFile struct {
	path   string
	max    int64
	logger *slog.Logger

	mu   sync.Mutex
	f    *os.File
	size int64
	refs int // guarded by logRegistry.mu
}

func openLogFile(path string, max int64, logger *slog.Logger) (*logFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	lf := &logFile{path: path, max: max, logger: logger}
	if err := lf.open(); err != nil {
		return nil, err
	}
	return lf, nil
}

func (lf *logFile) open() error {
	f, err := os.OpenFile(lf.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open log %s: %w", lf.path, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open log %s: %w", lf.path, err)
	}
	lf.f, lf.size = f, fi.Size()
	return nil
}

// writeLines appends whole lines; the caller guarantees p ends with '\n'.
func (lf *logFile) writeLines(p []byte) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.size > 0 && lf.size+int64(len(p)) > lf.max {
		lf.rotate()
	}
	if lf.f == nil {
		return
	}
	n, err := lf.f.Write(p)
	lf.size += int64(n)
	if err != nil {
		lf.logger.Warn("write log failed", "path", lf.path, "err", err)
	}
}

// rotate keeps one old file; a failure is logged and writing goes on to
// whatever file is open, since losing rotation beats losing output.
func (lf *logFile) rotate() {
	if err := lf.f.Close(); err != nil {
		lf.logger.Warn("close log for rotation failed", "path", lf.path, "err", err)
	}
	lf.f = nil
	if err := os.Rename(lf.path, lf.path+".1"); err != nil {
		lf.logger.Warn("rotate log failed", "path", lf.path, "err", err)
	}
	if err := lf.open(); err != nil {
		lf.logger.Error("reopen log after rotation failed", "path", lf.path, "err", err)
	}
}

func (lf *logFile) close() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	if lf.f != nil {
		lf.f.Close()
		lf.f = nil
	}
}

// logRegistry hands out one logFile per path.
type logRegistry struct {
	logger *slog.Logger
	mu     sync.Mutex
	files  map[string]*logFile
}

func (r *logRegistry) acquire(path string, max int64) (*logFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open log %s: %w", path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if lf, ok := r.files[abs]; ok {
		lf.refs++
		return lf, nil
	}
	lf, err := openLogFile(abs, max, r.logger)
	if err != nil {
		return nil, err
	}
	lf.refs = 1
	r.files[abs] = lf
	return lf, nil
}

func (r *logRegistry) release(lf *logFile) {
	if lf == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	lf.refs--
	if lf.refs > 0 {
		return
	}
	delete(r.files, lf.path)
	lf.close()
}

// lineWriter receives one process's output and writes it to its logFile a
// whole line at a time, so lines of processes sharing a file, and the
// supervisor's marker lines, never split a line. It also remembers the last
// lines of the current run for start errors. out may be nil (output dropped).
type lineWriter struct {
	out *logFile
	// tag follows the time at the start of every line in the file (see
	// LogLine).
	tag string
	// now stamps lines; nil means time.Now.
	now func() time.Time

	mu      sync.Mutex
	partial []byte
	tail    []string
}

// Write implements io.Writer for the output copier.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.partial = append(w.partial, p...)
			if len(w.partial) >= maxPartialLine {
				w.emit(w.partial)
				w.partial = w.partial[:0]
			}
			break
		}
		if len(w.partial) > 0 {
			w.partial = append(w.partial, p[:i]...)
			w.emit(w.partial)
			w.partial = w.partial[:0]
		} else {
			w.emit(p[:i])
		}
		p = p[i+1:]
	}
	return n, nil
}

// flush writes a pending partial line, ending it with a newline; called once
// the process's output is closed.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.emit(w.partial)
		w.partial = w.partial[:0]
	}
}

// marker writes a supervisor line: "--- hop3: <msg>".
func (w *lineWriter) marker(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.emit([]byte("--- hop3: " + msg))
}

// resetTail forgets the lines of the previous run.
func (w *lineWriter) resetTail() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tail = nil
}

// lastLines returns a copy of the remembered lines.
func (w *lineWriter) lastLines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.tail...)
}

// emit writes line (without its newline); w.mu must be held.
func (w *lineWriter) emit(line []byte) {
	t := line
	if len(t) > maxTailLineLen {
		t = t[:maxTailLineLen]
	}
	if len(w.tail) == tailLines {
		copy(w.tail, w.tail[1:])
		w.tail = w.tail[:tailLines-1]
	}
	w.tail = append(w.tail, string(t))
	if w.out == nil {
		return
	}
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	tag := w.tag
	if tag == "" {
		tag = "-"
	}
	buf := make([]byte, 0, len(LogTimeLayout)+len(tag)+len(line)+3)
	buf = now().UTC().AppendFormat(buf, LogTimeLayout)
	buf = append(buf, ' ')
	buf = append(buf, tag...)
	buf = append(buf, ' ')
	buf = append(buf, line...)
	buf = append(buf, '\n')
	w.out.writeLines(buf)
}
