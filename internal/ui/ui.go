// Package ui writes Heroku-style progress for people: "-----> " for a step,
// seven spaces for detail, " !     " for a failure. Colour is decided per
// destination (per SSH session), never globally.
package ui

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/fatih/color"
	"github.com/mattn/go-isatty"
)

// sink is one destination with its own colour choice.
type sink struct {
	w     io.Writer
	step  *color.Color
	fail  *color.Color
	ok    *color.Color
	color bool
}

func newSink(w io.Writer, colour bool) sink {
	mk := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if colour {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	return sink{
		w:     w,
		step:  mk(color.FgCyan, color.Bold),
		fail:  mk(color.FgRed, color.Bold),
		ok:    mk(color.FgGreen, color.Bold),
		color: colour,
	}
}

// Writer prints progress lines to one or more destinations. It is safe for
// concurrent use: tool output and step lines may come from several goroutines.
type Writer struct {
	mu    *sync.Mutex
	sinks []sink
}

// New returns a Writer on w, coloured when colour is true.
func New(w io.Writer, colour bool) *Writer {
	return &Writer{mu: &sync.Mutex{}, sinks: []sink{newSink(w, colour)}}
}

// Also returns a Writer that writes everything to this writer's
// destinations and to w (for example a build log kept with the release).
func (u *Writer) Also(w io.Writer, colour bool) *Writer {
	sinks := append(append([]sink(nil), u.sinks...), newSink(w, colour))
	return &Writer{mu: u.mu, sinks: sinks}
}

// ColorFor reports whether output to a session should be coloured: only on a
// terminal, and never when NO_COLOR is set (https://no-color.org).
func ColorFor(tty bool, env []string) bool {
	if !tty {
		return false
	}
	for _, kv := range env {
		if len(kv) >= 9 && kv[:9] == "NO_COLOR=" {
			return false
		}
	}
	return true
}

// ColorForFile is ColorFor for a local file such as os.Stdout.
func ColorForFile(f *os.File) bool {
	return ColorFor(isatty.IsTerminal(f.Fd()), os.Environ())
}

func (u *Writer) line(pick func(sink) *color.Color, prefix, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.sinks {
		if pick == nil {
			fmt.Fprintln(s.w, prefix+msg)
		} else {
			fmt.Fprintln(s.w, pick(s).Sprint(prefix+msg))
		}
	}
}

// Step prints "-----> msg".
func (u *Writer) Step(msg string) {
	u.line(func(s sink) *color.Color { return s.step }, "-----> ", msg)
}

// Info prints "       msg".
func (u *Writer) Info(msg string) { u.line(nil, "       ", msg) }

// Fail prints " !     msg".
func (u *Writer) Fail(msg string) {
	u.line(func(s sink) *color.Color { return s.fail }, " !     ", msg)
}

// Success prints "=====> msg", the closing line of a good deploy.
func (u *Writer) Success(msg string) {
	u.line(func(s sink) *color.Color { return s.ok }, "=====> ", msg)
}

// Stepf prints a formatted step line.
func (u *Writer) Stepf(format string, a ...any) { u.Step(fmt.Sprintf(format, a...)) }

// Infof prints a formatted detail line.
func (u *Writer) Infof(format string, a ...any) { u.Info(fmt.Sprintf(format, a...)) }

// Failf prints a formatted failure line.
func (u *Writer) Failf(format string, a ...any) { u.Fail(fmt.Sprintf(format, a...)) }

// Output returns a writer for a tool's raw output: each line is indented
// like a detail line, partial lines are held until complete.
func (u *Writer) Output() io.Writer { return &indenter{u: u} }

type indenter struct {
	u   *Writer
	buf []byte
}

func (in *indenter) Write(p []byte) (int, error) {
	in.buf = append(in.buf, p...)
	for {
		i := bytes.IndexByte(in.buf, '\n')
		if i < 0 {
			break
		}
		line := string(bytes.TrimRight(in.buf[:i], "\r"))
		in.buf = in.buf[i+1:]
		in.u.line(nil, "       ", line)
	}
	// Long lines without a newline (progress bars) are flushed as they are.
	if len(in.buf) > 4096 {
		in.u.line(nil, "       ", string(in.buf))
		in.buf = in.buf[:0]
	}
	return len(p), nil
}
