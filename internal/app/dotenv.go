package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/joho/godotenv"

	"hop3/internal/isolation"
	"hop3/internal/piku"
)

// maxDotenvSize bounds a repository's .env: it is read whole, at every
// deploy and restart.
const maxDotenvSize = 1 << 20

// parseDotenvBytes reads a .env file's content with godotenv and refuses
// what godotenv lets through but no environment can hold: an entry without a
// name (godotenv reads a bare "DEBUG" line, or text after a closing quote, as
// a variable named ""), names with blanks, and NUL bytes (every process start
// would fail with "invalid argument"). Its errors are one line, with the line
// number when it is known.
func parseDotenvBytes(src []byte) (map[string]string, error) {
	if len(src) > maxDotenvSize {
		return nil, fmt.Errorf("larger than %d KiB", maxDotenvSize>>10)
	}
	env, err := godotenv.UnmarshalBytes(src)
	if err != nil {
		return nil, dotenvError(src, err)
	}
	for k, v := range env {
		switch {
		case k == "":
			return nil, fmt.Errorf("an entry has no name (value %s): write NAME=value, one per line", quote(v))
		case strings.ContainsAny(k, " \t\v\f\r\x00"):
			return nil, fmt.Errorf("invalid name %s: no blanks in names", quote(k))
		case strings.IndexByte(v, 0) >= 0:
			return nil, fmt.Errorf("%s: a value may not contain a NUL byte", quote(k))
		}
	}
	return env, nil
}

// readInRelease reads a file of a release, which the app may write, as
// hop3: no link out of the release is followed, and at most
// maxDotenvSize+1 bytes are read.
func readInRelease(dir, name string) ([]byte, error) {
	f, err := isolation.OpenInTree(dir, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, maxDotenvSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return src, nil
}

// readPikuENV reads a repository's ENV file, piku's. A missing file, or a
// directory of that name, is no settings (nil).
func readPikuENV(dir string) ([]byte, error) {
	fi, err := os.Lstat(filepath.Join(dir, "ENV"))
	if errors.Is(err, os.ErrNotExist) || (err == nil && fi.IsDir()) {
		return nil, nil
	}
	return readInRelease(dir, "ENV")
}

// parsePikuENV reads an ENV file's content as piku does (KEY=VALUE lines,
// $VAR expanded against base and the lines before; see piku.ParseENV).
// Where piku silently ignored a whole file with one malformed line, this
// refuses it, with the line, as .env is refused: a push must not lose
// settings quietly.
func parsePikuENV(src []byte, base map[string]string) (map[string]string, error) {
	if len(src) > maxDotenvSize {
		return nil, fmt.Errorf("larger than %d KiB", maxDotenvSize>>10)
	}
	scope := make(map[string]string, len(base))
	for k, v := range base {
		scope[k] = v
	}
	vars, err := piku.ParseENV(string(src), scope)
	if err != nil {
		return nil, errors.New(shorten(err.Error()))
	}
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		if err := piku.CheckVar(v); err != nil {
			return nil, err
		}
		env[v.Key] = v.Value
	}
	return env, nil
}

var nearRe = regexp.MustCompile(`^(.*) near ("(?s:.*)")$`)

// dotenvError turns godotenv's error, which quotes the whole rest of the
// file, into one short line naming the line of the file.
func dotenvError(src []byte, err error) error {
	msg := err.Error()
	if m := nearRe.FindStringSubmatch(msg); m != nil {
		msg = m[1]
		if rest, uerr := strconv.Unquote(m[2]); uerr == nil {
			norm := bytes.ReplaceAll(src, []byte("\r\n"), []byte("\n"))
			if bytes.HasSuffix(norm, []byte(rest)) {
				line := 1 + bytes.Count(norm[:len(norm)-len(rest)], []byte("\n"))
				msg = fmt.Sprintf("line %d: %s", line, msg)
			}
		}
	}
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		msg = msg[:i]
	}
	return errors.New(shorten(msg))
}

// quote shows a name or value in an error line: quoted, escaped, short.
func quote(s string) string {
	const max = 60
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return strconv.Quote(s)
}

// shorten keeps an error line short and printable.
func shorten(msg string) string {
	const max = 160
	if len(msg) > max {
		msg = strings.ToValidUTF8(msg[:max], "") + "..."
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, msg)
}
