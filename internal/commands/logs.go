package commands

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"time"

	"hop3/internal/layout"
	"hop3/runtime/supervisor"
)

const (
	defaultLogLines = 100
	maxLogLines     = 100000
	// logPoll is how often -f looks for new lines, new files and rotation.
	logPoll = 250 * time.Millisecond
)

// logName matches the log of one process, <kind>.<n>.log.
var logName = regexp.MustCompile(`^([a-z][a-z0-9_-]*)\.([0-9]+)\.log$`)

// logSource is the log file of one process.
type logSource struct {
	label string // kind.N, the prefix of its lines
	kind  string
	index int
	path  string
}

// logSources lists the process logs in dir, of one kind if kind is set,
// in kind then number order.
func logSources(dir, kind string) ([]logSource, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []logSource
	for _, e := range entries {
		m := logName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() || (kind != "" && m[1] != kind) {
			continue
		}
		n, err := strconv.Atoi(m[2])
		if err != nil {
			continue
		}
		out = append(out, logSource{label: m[1] + "." + m[2], kind: m[1], index: n, path: filepath.Join(dir, e.Name())})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].kind != out[j].kind {
			return out[i].kind < out[j].kind
		}
		return out[i].index < out[j].index
	})
	return out, nil
}

func (inv *invocation) logs(ctx context.Context, c *command, args []string) error {
	fs := newFlags(c)
	n := fs.Int("n", defaultLogLines, "")
	follow := fs.Bool("f", false, "")
	fs.BoolVar(follow, "follow", false, "")
	kind := fs.String("process", "", "")
	fs.StringVar(kind, "p", "", "")
	pos, err := parse(c, fs, args, 1, 2)
	if err != nil {
		return err
	}
	if len(pos) == 2 {
		if *kind != "" && *kind != pos[1] {
			return usagef(c, "two different process kinds, %q and %q", *kind, pos[1])
		}
		*kind = pos[1]
	}
	if *n < 0 || *n > maxLogLines {
		return usagef(c, "-n must be between 0 and %d", maxLogLines)
	}
	a, err := inv.app(ctx, c, pos[0])
	if err != nil {
		return err
	}
	dir := layout.New(inv.d.cfg.Root).Logs(a.Name)
	srcs, err := logSources(dir, *kind)
	if err != nil {
		return err
	}
	if len(srcs) == 0 && !*follow {
		what := a.Name
		if *kind != "" {
			what += " " + *kind
		}
		inv.ui.Info("no logs yet for " + what)
		return nil
	}
	t := &tail{w: inv.stdout, tracked: map[string]*tailer{}}
	defer t.close()
	for _, src := range srcs {
		if err := t.start(src, *n); err != nil {
			return err
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	if !*follow {
		return nil
	}
	ticker := time.NewTicker(logPoll)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
		if err := t.poll(); err != nil {
			// The session is gone, or its output is.
			return nil
		}
		// Processes started since (a scale up, a new kind) get followed
		// from their first line.
		srcs, err := logSources(dir, *kind)
		if err != nil {
			continue
		}
		for _, src := range srcs {
			if _, ok := t.tracked[src.path]; !ok {
				if err := t.start(src, -1); err != nil {
					return nil
				}
			}
		}
	}
}

// tail prints the last lines of process logs and follows them, the lines
// of all processes merged in the order of the times the supervisor stamped
// on them.
type tail struct {
	w       io.Writer
	tracked map[string]*tailer
	order   []*tailer
	// pending holds the lines read since the last flush.
	pending []logLine
}

// logLine is a line ready to print and the time it was written; lines
// written before hop3 stamped them have the zero time.
type logLine struct {
	at   time.Time
	text string
}

// add formats a line of src's log for printing and holds it for flush:
// "<time> <kind.N> <generation> | <text>", or "<kind.N> | <text>" for a
// line without a stamp.
func (t *tail) add(src logSource, line []byte) {
	line = bytes.TrimRight(line, "\r")
	ll, ok := supervisor.ParseLogLine(string(line))
	if !ok {
		t.pending = append(t.pending, logLine{text: src.label + " | " + string(line)})
		return
	}
	t.pending = append(t.pending, logLine{at: ll.Time,
		text: ll.Time.Format(supervisor.LogTimeLayout) + " " + src.label + " " + ll.Tag + " | " + ll.Text})
}

// flush prints the pending lines in time order; lines with the same time,
// or without one, keep the order they were read in (process by process).
func (t *tail) flush() error {
	sort.SliceStable(t.pending, func(i, j int) bool { return t.pending[i].at.Before(t.pending[j].at) })
	var b bytes.Buffer
	for _, l := range t.pending {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	t.pending = t.pending[:0]
	if b.Len() == 0 {
		return nil
	}
	_, err := t.w.Write(b.Bytes())
	return err
}

// tailer follows one log file across rotations (the supervisor renames a
// full log to <log>.1 and starts a new one).
type tailer struct {
	src     logSource
	f       *os.File
	off     int64
	partial []byte
}

// start prints the last n lines of src (n < 0: follow it from its start,
// printing nothing now) and tracks it for poll.
func (t *tail) start(src logSource, n int) error {
	f, err := os.Open(src.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	tl := &tailer{src: src, f: f}
	t.tracked[src.path] = tl
	t.order = append(t.order, tl)
	if n < 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	lines, end, err := lastLines(f, fi.Size(), n)
	if err != nil {
		return err
	}
	tl.off = end
	if len(lines) < n {
		// The rest comes from before the last rotation.
		if old, err := os.Open(src.path + ".1"); err == nil {
			ofi, serr := old.Stat()
			if serr == nil {
				var more []string
				more, _, err = lastLines(old, ofi.Size(), n-len(lines))
				lines = append(more, lines...)
			}
			old.Close()
			if err != nil {
				return err
			}
		}
	}
	for _, l := range lines {
		t.add(src, []byte(l))
	}
	return nil
}

// poll prints what was written since the last poll.
func (t *tail) poll() error {
	for _, tl := range t.order {
		tl.poll(t)
	}
	return t.flush()
}

func (tl *tailer) poll(w *tail) {
	if tl.f == nil {
		f, err := os.Open(tl.src.path)
		if err != nil {
			return // rotated and not yet recreated; look again next time
		}
		tl.f, tl.off = f, 0
	}
	tl.read(w)
	cur, err := tl.f.Stat()
	if err != nil {
		return
	}
	fi, err := os.Stat(tl.src.path)
	switch {
	case err != nil || !os.SameFile(fi, cur):
		// Rotated: finish the old file, which the writer no longer touches,
		// then go on with the new one from its start.
		tl.read(w)
		if len(tl.partial) > 0 {
			w.add(tl.src, tl.partial)
			tl.partial = nil
		}
		tl.f.Close()
		tl.f = nil
		tl.poll(w)
	case cur.Size() < tl.off:
		// Truncated in place.
		tl.off, tl.partial = 0, nil
	}
}

// read takes in the complete lines written since off.
func (tl *tailer) read(w *tail) {
	buf := make([]byte, 64<<10)
	for {
		k, err := tl.f.ReadAt(buf, tl.off)
		if k > 0 {
			tl.off += int64(k)
			data := append(tl.partial, buf[:k]...)
			for {
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					break
				}
				w.add(tl.src, data[:i])
				data = data[i+1:]
			}
			tl.partial = append([]byte(nil), data...)
		}
		if err != nil || k == 0 {
			return
		}
	}
}

func (t *tail) close() {
	for _, tl := range t.order {
		if tl.f != nil {
			tl.f.Close()
		}
	}
}

// lastLines returns the last n complete lines of the first size bytes of f,
// and the offset just after the last of them (where following goes on).
func lastLines(f io.ReaderAt, size int64, n int) ([]string, int64, error) {
	const chunk = 64 << 10
	var buf []byte
	off := size
	for off > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		step := min(chunk, off)
		off -= step
		b := make([]byte, step, int(step)+len(buf))
		if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, err
		}
		buf = append(b, buf...)
	}
	// A line still being written is left for following.
	complete := bytes.LastIndexByte(buf, '\n') + 1
	end := off + int64(complete)
	if n == 0 || complete == 0 {
		return nil, end, nil
	}
	lines := bytes.Split(buf[:complete-1], []byte{'\n'})
	if off > 0 {
		// The first line was cut by where reading started.
		lines = lines[1:]
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(bytes.TrimRight(l, "\r"))
	}
	return out, end, nil
}
