package buildpacks

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// buildEnvAllowed names the variables of hop3's own environment a build
// sees: where programs are, the language, the time zone, and how this
// machine reaches the network (trusted certificates, proxies). Nothing
// else of the daemon's environment reaches an app's build.
var buildEnvAllowed = map[string]bool{
	"PATH": true, "LANG": true, "LC_ALL": true, "TZ": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "NODE_EXTRA_CA_CERTS": true,
	"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
	"http_proxy": true, "https_proxy": true, "no_proxy": true,
}

// CleanEnv keeps the allowed variables of environ (KEY=value entries) and
// sets LANG and PATH when they are missing.
func CleanEnv(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && buildEnvAllowed[k] {
			env[k] = v
		}
	}
	if env["PATH"] == "" {
		env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
	}
	if env["LANG"] == "" {
		env["LANG"] = "C.UTF-8"
	}
	return env
}

// reachablePath drops the PATH entries the user cannot search (such as a
// tool directory under root's 0700 home): a tool found there by hop3 would
// fail with "permission denied" once run as the app's user.
func reachablePath(list string, u *syscall.Credential) string {
	var keep []string
	for _, dir := range filepath.SplitList(list) {
		if dir != "" && filepath.IsAbs(dir) && searchable(dir, u) {
			keep = append(keep, dir)
		}
	}
	return strings.Join(keep, string(os.PathListSeparator))
}

// searchable reports whether user u may pass through every directory from
// / down to dir (links followed, as exec does).
func searchable(dir string, u *syscall.Credential) bool {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	for p := real; ; p = filepath.Dir(p) {
		if !mayAccess(p, u, 0o1) {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// mayAccess applies the owner, group and other permission bits (mask given
// as the "other" bits, e.g. 1 for search) for u, without supplementary
// groups, which app users have none of.
func mayAccess(path string, u *syscall.Credential, mask uint32) bool {
	info, err := os.Stat(path)
	if err != nil {
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return false
	}
	mode := st.Mode
	switch {
	case u.Uid == 0:
		return true
	case st.Uid == u.Uid:
		return mode&(mask<<6) != 0
	case st.Gid == u.Gid:
		return mode&(mask<<3) != 0
	}
	return mode&mask != 0
}

// usable reports whether u may run the program at path.
func usable(path string, u *syscall.Credential) bool {
	if u == nil {
		return true
	}
	real, err := filepath.EvalSymlinks(path)
	return err == nil && searchable(filepath.Dir(real), u) && mayAccess(real, u, 0o1)
}
