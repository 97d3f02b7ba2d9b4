package gitserver

import (
	"fmt"
	"net"
	"path"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// KeyOptions are the authorized_keys options hop3 honours on a key, with
// OpenSSH's meaning. Every other option is refused when the key is added
// (ParseAuthorizedKey), never dropped: a key must not mean less than its
// line says.
type KeyOptions struct {
	// From is from="pattern-list": the addresses the key may log in from,
	// as wildcard patterns (10.0.0.*), CIDR blocks (10.0.0.0/8) and
	// negations (!10.0.0.5), matched against the client's IP address
	// (hop3 does no reverse DNS, as sshd with UseDNS no). Empty: anywhere.
	From []string
	// Expires is expiry-time="YYYYMMDD[HHMM[SS]][Z]": the key does not log
	// in from then on. Zero: never.
	Expires time.Time
}

// String gives the options in authorized_keys form, empty when none.
func (o KeyOptions) String() string {
	var parts []string
	if len(o.From) > 0 {
		parts = append(parts, `from="`+strings.Join(o.From, ",")+`"`)
	}
	if !o.Expires.IsZero() {
		parts = append(parts, `expiry-time="`+o.Expires.UTC().Format("20060102150405")+`Z"`)
	}
	return strings.Join(parts, ",")
}

// Allow says why a key with these options may not log in from remote at
// now, or returns nil.
func (o KeyOptions) Allow(remote net.Addr, now time.Time) error {
	if !o.Expires.IsZero() && !now.Before(o.Expires) {
		return fmt.Errorf("key expired at %s", o.Expires.UTC().Format(time.RFC3339))
	}
	if len(o.From) == 0 {
		return nil
	}
	var ip net.IP
	switch a := remote.(type) {
	case *net.TCPAddr:
		ip = a.IP
	default:
		if host, _, err := net.SplitHostPort(remote.String()); err == nil {
			ip = net.ParseIP(host)
		}
	}
	if ip == nil || !MatchFrom(o.From, ip) {
		return fmt.Errorf("key may not log in from %s (from=%q)", remote, strings.Join(o.From, ","))
	}
	return nil
}

// MatchFrom reports whether ip matches an OpenSSH from= pattern list: it
// must match some pattern and no negated one ("!pattern"); a negated match
// refuses whatever else matches, as in OpenSSH's match_host_and_ip.
func MatchFrom(patterns []string, ip net.IP) bool {
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	addr := ip.String()
	found := false
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		neg := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(p, "!")
		var ok bool
		if strings.Contains(p, "/") {
			_, block, err := net.ParseCIDR(p)
			ok = err == nil && block.Contains(ip)
		} else {
			// OpenSSH's wildcards are * and ?, as path.Match has them; a
			// bracket or backslash is not special to OpenSSH and can not
			// be in an address, so such a pattern matches nothing.
			if !strings.ContainsAny(p, "[]\\") {
				ok, _ = path.Match(strings.ToLower(p), addr)
			}
		}
		if ok && neg {
			return false
		}
		found = found || ok
	}
	return found
}

// ParseKeyOptions reads options in authorized_keys form, as String writes
// them and as they appear before a key on an authorized_keys line. Only
// from= and expiry-time= are accepted; any other is refused by name, and
// command= (which piku writes before every key it imports) with a hint.
func ParseKeyOptions(s string) (KeyOptions, error) {
	var o KeyOptions
	opts, err := splitOptions(s)
	if err != nil {
		return o, err
	}
	for _, opt := range opts {
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if hasValue {
			if value, err = unquote(value); err != nil {
				return o, fmt.Errorf("option %s: %v", name, err)
			}
		}
		switch {
		case name == "from" && hasValue:
			if len(o.From) > 0 {
				return o, fmt.Errorf("option from= given twice")
			}
			if o.From, err = parseFrom(value); err != nil {
				return o, err
			}
		case name == "expiry-time" && hasValue:
			if !o.Expires.IsZero() {
				return o, fmt.Errorf("option expiry-time= given twice")
			}
			if o.Expires, err = parseExpiry(value); err != nil {
				return o, err
			}
		case name == "command":
			return o, fmt.Errorf(`option command="..." is not supported: hop3 runs its own commands for every key; strip the command="..." prefix (piku writes one before each key) and add the key again`)
		default:
			return o, fmt.Errorf("option %s is not supported: hop3 honours from= and expiry-time= only; remove it and add the key again", name)
		}
	}
	return o, nil
}

// ParseAuthorizedKey reads one authorized_keys line: options, key type,
// key and comment. Its options are read by ParseKeyOptions.
func ParseAuthorizedKey(line string) (gossh.PublicKey, string, KeyOptions, error) {
	pub, comment, opts, _, err := gossh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return nil, "", KeyOptions{}, fmt.Errorf("not a public key in authorized_keys form (%v)", err)
	}
	o, err := ParseKeyOptions(strings.Join(opts, ","))
	if err != nil {
		return nil, "", KeyOptions{}, err
	}
	return pub, comment, o, nil
}

// splitOptions splits "a,b=\"x,y\",c" on the commas outside quotes.
func splitOptions(s string) ([]string, error) {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if quoted {
		return nil, fmt.Errorf("options %q: unterminated quote", s)
	}
	if strings.TrimSpace(s) != "" {
		out = append(out, s[start:])
	}
	for _, o := range out {
		if o == "" {
			return nil, fmt.Errorf("options %q: an empty option", s)
		}
	}
	return out, nil
}

// unquote reads an option's value: "..." with \" inside, as OpenSSH writes it.
func unquote(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", fmt.Errorf("the value must be in double quotes")
	}
	return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), nil
}

func parseFrom(v string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		bare := strings.TrimPrefix(p, "!")
		if bare == "" {
			return nil, fmt.Errorf("option from=%q: an empty pattern", v)
		}
		if strings.Contains(bare, "/") {
			if _, _, err := net.ParseCIDR(bare); err != nil {
				return nil, fmt.Errorf("option from=%q: %q is not an address block such as 10.0.0.0/8", v, bare)
			}
		} else if strings.ContainsAny(bare, " \"'[]\\") {
			return nil, fmt.Errorf("option from=%q: %q is not an address pattern", v, bare)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseExpiry reads expiry-time's YYYYMMDD[HHMM[SS]], in the server's time
// zone unless it ends in Z (UTC), as OpenSSH does.
func parseExpiry(v string) (time.Time, error) {
	loc := time.Local
	s := v
	if t, ok := strings.CutSuffix(s, "Z"); ok {
		s, loc = t, time.UTC
	}
	layouts := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}
	layout, ok := layouts[len(s)]
	if ok {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("option expiry-time=%q: use YYYYMMDD[HHMM[SS]][Z]", v)
}
