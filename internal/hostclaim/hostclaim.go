// Package hostclaim is the one rule deciding which host names an app may
// answer to, wherever a host enters: domains:add, HOST_NAME (piku's
// NGINX_SERVER_NAME) through config:set or a pushed .env, and an import.
//
// The platform's domain is shared: <app>.<domain> and every name under it
// belong to that app alone, whether or not it exists yet. The apex, the
// wildcard *.<domain>, IP literals and localhost are the platform's: only an
// admin may give them to an app. Among custom hosts, a deployer's claim may
// not overlap another app's exact or wildcard hosts in either direction; an
// admin may give an app an exact host under another app's wildcard (the
// router puts exact hosts first, so the exact host wins), but never a host
// another app already has.
package hostclaim

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"hop3/internal/appname"
)

// MaxLen is the longest host name DNS allows.
const MaxLen = 253

var label = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Normalize checks a host name and returns it lowercased (DNS names are not
// case-sensitive; Caddy's host matching is exact). A wildcard may only be
// the whole first label, as in *.example.com (one label deep, as Caddy
// matches it).
func Normalize(h string) (string, error) {
	switch {
	case h == "":
		return "", errors.New("empty host name")
	case strings.ContainsAny(h, ":/@?#"):
		return "", fmt.Errorf("%q: give a host name alone, without scheme, port or path", h)
	case strings.HasSuffix(h, "."):
		return "", fmt.Errorf("%q: leave out the trailing dot", h)
	case len(h) > MaxLen:
		return "", fmt.Errorf("%q is too long for a host name (at most %d characters)", h, MaxLen)
	}
	h = strings.ToLower(h)
	name := strings.TrimPrefix(h, "*.")
	if strings.Contains(name, "*") {
		return "", fmt.Errorf("%q: a wildcard may only be the first label, as in *.example.com", h)
	}
	for _, l := range strings.Split(name, ".") {
		if !label.MatchString(l) {
			return "", fmt.Errorf("%q is not a host name: labels are letters, digits and '-', 1 to 63 long, not starting or ending with '-'", h)
		}
	}
	return h, nil
}

// Covers reports whether pattern (a host, or *.suffix matching one label as
// Caddy does) matches host; two equal names cover each other.
func Covers(pattern, host string) bool {
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	first, rest, ok := strings.Cut(host, ".")
	return ok && first != "" && first != "*" && rest == suffix
}

// Overlap reports whether two host patterns can match one request's host.
func Overlap(a, b string) bool { return Covers(a, b) || Covers(b, a) }

// Held is a host an app already answers to.
type Held struct {
	App  string
	Host string
}

// Error is a refused claim: one line, and the app that holds the host
// (empty when the platform does).
type Error struct {
	Host  string
	Owner string
	msg   string
}

func (e *Error) Error() string { return e.msg }

// Rule decides claims on one platform domain.
type Rule struct {
	Domain string // apps answer at <app>.<Domain>
}

// Namespace names the app whose name space host is in: <app>.<domain> and
// every name under it. platform is true for the names only an admin may
// give: the apex, *.<domain>, labels that can not be an app's name, IP
// literals and localhost.
func (r Rule) Namespace(host string) (owner string, platform bool) {
	domain := strings.ToLower(r.Domain)
	if net.ParseIP(host) != nil || host == "localhost" || host == domain {
		return "", true
	}
	rest, ok := strings.CutSuffix(host, "."+domain)
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	name := rest[i+1:]
	if appname.Validate(name) != nil {
		return "", true // *.<domain>, or a label no app can have
	}
	return name, false
}

// Check says why app may not answer at host, or returns nil. host is
// normalized (see Normalize); admin is the role of whoever asks; held lists
// the hosts other apps answer to (those of app itself are ignored).
func (r Rule) Check(app, host string, admin bool, held []Held) error {
	if host == app+"."+strings.ToLower(r.Domain) {
		return nil
	}
	owner, platform := r.Namespace(host)
	switch {
	case owner != "" && owner != app:
		// Say what is possible, not only what is not: the app's own name
		// space, or a domain outside the platform's.
		return &Error{Host: host, Owner: owner, msg: fmt.Sprintf("host %s is reserved for an app named %s: under %s an app answers to %s.%s and the names below it; for other names use a domain of your own",
			host, owner, strings.ToLower(r.Domain), app, strings.ToLower(r.Domain))}
	case platform && !admin:
		return &Error{Host: host, msg: fmt.Sprintf("host %s is the platform's (%s): only an admin key may give it to an app", host, platformWhy(host, r.Domain))}
	}
	for _, h := range held {
		if h.App == app {
			continue
		}
		if h.Host == host {
			return &Error{Host: host, Owner: h.App, msg: fmt.Sprintf("host %s belongs to app %s", host, h.App)}
		}
		if !admin && Overlap(host, h.Host) {
			return &Error{Host: host, Owner: h.App, msg: fmt.Sprintf("host %s overlaps %s of app %s", host, h.Host, h.App)}
		}
	}
	return nil
}

func platformWhy(host, domain string) string {
	switch {
	case net.ParseIP(host) != nil:
		return "an IP address"
	case host == "localhost":
		return "localhost"
	case host == domain:
		return "the apex of " + domain
	case host == "*."+domain:
		return "it would take the address of every app"
	}
	return "not an app's name under " + domain
}
