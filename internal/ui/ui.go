// Package ui writes Heroku-style progress for people: "-----> " for a step,
// seven spaces for detail, " !     " for a failure. Colour is decided per
// writer (per SSH session), never globally.
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

// Writer prints progress lines to one destination. It is safe for
// concurrent use: tool output and step lines may come from several goroutines.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	step  *color.Color
	fail  *color.Color
	ok    *color.Color
	dim   *color.Color
	color bool
}

// New returns a Writer on w, coloured when colour is true.
func New(w io.Writer, colour bool) *Writer {
	mk := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if colour {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	return &Writer{
		w:     w,
		step:  mk(color.FgCyan, color.Bold),
		fail:  mk(color.FgRed, color.Bold),
		ok:    mk(color.FgGreen, color.Bold),
		dim:   mk(color.Faint),
		color: colour,
	}
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

// Color reports whether this writer colours its output.
func (u *Writer) Color() bool { return u.color }

func (u *Writer) line(c *color.Color, prefix, msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintln(u.w, c.Sprint(prefix+msg))
}

// Step prints "-----> msg".
func (u *Writer) Step(msg string) { u.line(u.step, "-----> ", msg) }

// Info prints "       msg".
func (u *Writer) Info(msg string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintln(u.w, "       "+msg)
}

// Fail prints " !     msg".
func (u *Writer) Fail(msg string) { u.line(u.fail, " !     ", msg) }

// Success prints "=====> msg", the closing line of a good deploy.
func (u *Writer) Success(msg string) { u.line(u.ok, "=====> ", msg) }

// Stepf, Infof and Failf are the formatted forms.
func (u *Writer) Stepf(format string, a ...any) { u.Step(fmt.Sprintf(format, a...)) }

// Infof prints a formatted detail line.
func (u *Writer) Infof(format string, a ...any) { u.Info(fmt.Sprintf(format, a...)) }

// Failf prints a formatted failure line.
func (u *Writer) Failf(format string, a ...any) { u.Fail(fmt.Sprintf(format, a...)) }

// Output returns a writer for a tool's raw output: each line is indented
// like a detail line, partial lines are held until complete or Flush.
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
		in.u.mu.Lock()
		fmt.Fprintln(in.u.w, "       "+line)
		in.u.mu.Unlock()
	}
	// Long lines without a newline (progress bars) are flushed as they are.
	if len(in.buf) > 4096 {
		in.u.mu.Lock()
		fmt.Fprintln(in.u.w, "       "+string(in.buf))
		in.u.mu.Unlock()
		in.buf = in.buf[:0]
	}
	return len(p), nil
}
