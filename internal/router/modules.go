package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// CaddyModules lists the module IDs compiled into the Caddy binary bin,
// standard and not, from `caddy list-modules`. The admin API can not
// tell: a config names only the modules it uses.
func CaddyModules(ctx context.Context, bin string) ([]string, error) {
	out, err := exec.CommandContext(ctx, bin, "list-modules").Output()
	if err != nil {
		return nil, fmt.Errorf("caddy list-modules: %w", err)
	}
	return ParseModules(out), nil
}

// ParseModules reads the output of `caddy list-modules`: one module ID a
// line, in groups closed by a count such as "  Standard modules: 135".
func ParseModules(out []byte) []string {
	var mods []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.ContainsAny(line, " :") {
			continue
		}
		mods = append(mods, line)
	}
	return mods
}

// MissingModule says what is wrong when the Caddy at bin, whose modules are
// mods, lacks the module p needs; "" when it has it.
func (p DNSProvider) MissingModule(bin string, mods []string) string {
	if slices.Contains(mods, p.Module()) {
		return ""
	}
	return fmt.Sprintf("caddy %s has no module %s: use a Caddy built with it (xcaddy build --with github.com/caddy-dns/%s)", bin, p.Module(), p.Name)
}
