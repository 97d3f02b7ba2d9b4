package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// MinInheritVersion is the first Caddy release that listens on inherited
// sockets ("fd/N" and "fdgram/N" addresses). Older releases (2.7, 2.8) run
// with Caddy binding its addresses itself.
const MinInheritVersion = "v2.9.0"

// CaddyVersion returns the version of the Caddy binary bin, e.g. "v2.11.7":
// from `caddy version`, or, for builds that print "unknown" there (go
// install), from the caddy module in `caddy build-info`.
func CaddyVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("caddy version: %w", err)
	}
	if f := strings.Fields(string(out)); len(f) > 0 && strings.HasPrefix(f[0], "v2.") {
		return f[0], nil
	}
	out, err = exec.CommandContext(ctx, bin, "build-info").Output()
	if err != nil {
		return "", fmt.Errorf("caddy build-info: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == "github.com/caddyserver/caddy/v2" {
			return f[2], nil
		}
	}
	return "", fmt.Errorf("caddy version: %q names no version and build-info lists no caddy module", strings.TrimSpace(string(out)))
}

// InheritsSockets reports whether Caddy version v listens on inherited
// sockets (MinInheritVersion or later). A version it cannot read, such as
// a development build, is taken to be recent.
func InheritsSockets(v string) bool {
	minor, ok := minorVersion(v)
	return !ok || minor >= 9
}

// minorVersion reads the minor number of a "v2.N..." version.
func minorVersion(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, "v2.")
	if !ok {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, ".")
	minor, err := strconv.Atoi(n)
	return minor, err == nil
}
