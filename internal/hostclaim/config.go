package hostclaim

import (
	"slices"
	"strings"
)

// ConfigVars are the config vars that give an app more host names, in the
// order they are read: HOST_NAME, else piku's NGINX_SERVER_NAME.
var ConfigVars = [...]string{"HOST_NAME", "NGINX_SERVER_NAME"}

// Split splits a list of host names as a config var holds it: on commas
// and blanks.
func Split(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// FromConfig lists the host names an app's config vars give, as its route
// reads them: those of the first of ConfigVars that is set, split (Split),
// lowercased and without a trailing dot, each once; "_" (nginx's "any
// host") is no host. key is the variable they come from, "" when neither
// is set. The names are not checked: see Normalize.
func FromConfig(env map[string]string) (key string, hosts []string) {
	for _, k := range ConfigVars {
		if strings.TrimSpace(env[k]) != "" {
			key = k
			break
		}
	}
	if key == "" {
		return "", nil
	}
	for _, h := range Split(strings.ToLower(env[key])) {
		h = strings.TrimSuffix(h, ".")
		if h != "" && h != "_" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return key, hosts
}
