// Package appname validates app names, the one identifier that reaches
// paths, hosts, Caddy ids and process names.
package appname

import (
	"fmt"
	"regexp"
)

// MaxLen keeps an app name usable as a DNS label and short enough for unix
// socket paths under the root.
const MaxLen = 40

var valid = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Validate returns a one-line reason when name is not a valid app name.
func Validate(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("app name is empty")
	case len(name) > MaxLen:
		return fmt.Errorf("app name %q is too long (at most %d characters)", name, MaxLen)
	case !valid.MatchString(name):
		return fmt.Errorf("invalid app name %q: use lowercase letters, digits and '-', starting with a letter", name)
	case name[len(name)-1] == '-':
		return fmt.Errorf("invalid app name %q: it may not end with '-'", name)
	}
	return nil
}
