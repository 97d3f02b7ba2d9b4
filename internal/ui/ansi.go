package ui

import "regexp"

// ansiRe matches the escape sequences that colour text or move the cursor,
// which some tools print even into a pipe (Maven), and which hop3 prints
// on a terminal.
var ansiRe = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

// StripANSI returns s without its colour codes and cursor movements: the
// text a person reads, for code that reads another program's output.
func StripANSI(s string) string { return ansiRe.ReplaceAllString(s, "") }
