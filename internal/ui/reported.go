package ui

import "errors"

// ErrReported is what errors.Is finds in an error that Reported marked.
var ErrReported = errors.New("already reported")

// reported is an error whose failure line the person at the other end has
// already read.
type reported struct{ err error }

func (r reported) Error() string        { return r.err.Error() }
func (r reported) Unwrap() error        { return r.err }
func (r reported) Is(target error) bool { return target == ErrReported }

// Reported marks err as told already: the code that printed its failure
// line returns it so wrapped, and whoever prints failures at the end of a
// command leaves it out, instead of reading its own output back to find
// out. The error keeps its message and its chain (errors.Is and errors.As
// see through the mark). Reported(nil) is nil.
func Reported(err error) error {
	if err == nil || errors.Is(err, ErrReported) {
		return err
	}
	return reported{err}
}

// IsReported tells whether err, or an error it wraps, was marked by
// Reported.
func IsReported(err error) bool { return errors.Is(err, ErrReported) }
