package ui

import "strings"

// OneLine folds a message, usually an error's, into the single line users
// see: its first line, without the blanks around it. Tools append their
// own output below the line that says what failed; that line is the one
// to show.
func OneLine(msg string) string {
	msg = strings.TrimSpace(msg)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = strings.TrimSpace(msg[:i])
	}
	return msg
}
