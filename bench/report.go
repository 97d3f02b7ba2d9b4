package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

func renderReport(env *benchEnv, m *mainSetup, sections []section, load string, started time.Time, only string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks: hop3 against the stack it replaces\n\n")
	b.WriteString("Written by `make bench` (`go run ./bench`); do not edit by hand. Every server listens on loopback; ")
	b.WriteString("the load generator, the proxy and the app share the same cores, as they would on a small server.\n\n")
	cpus, model, mem := machine()
	fmt.Fprintf(&b, "- Machine: %d CPUs (%s), %s memory. Load average at start %s. Read every ratio as measured under that load, with both sides alternated in the same conditions.\n", cpus, model, mem, load)
	fmt.Fprintf(&b, "- Run: %s, %s in total.\n", started.UTC().Format("2006-01-02 15:04 MST"), time.Since(started).Round(time.Second))
	fmt.Fprintf(&b, "- Reproduce: `make bench` (installs nginx-light and wrk from Debian, uWSGI, Flask and Granian from PyPI into `.cache/bench/venv`, then runs `go run ./bench`). This report: `go run ./bench %s`.", strings.Join(os.Args[1:], " "))
	if only != "" {
		fmt.Fprintf(&b, " This report ran only `-only %s`.", only)
	}
	b.WriteString("\n\n| component | version |\n| --- | --- |\n")
	for _, v := range versions(env) {
		fmt.Fprintf(&b, "| %s | %s |\n", v[0], v[1])
	}
	b.WriteString("\n")
	if m != nil {
		b.WriteString("hop3 runs each app's Granian as (read from the running process):\n\n")
		for _, a := range m.apps {
			fmt.Fprintf(&b, "- %s: `%s`\n", a.name, shortenPaths(strings.Join(a.tmpl.argv, " "), m.d.root))
		}
		b.WriteString("\nand its Caddy with `GOMAXPROCS` and `GOGC` set by `cmd/hop3`; the reverse_proxy handler of an app's route, as `internal/router` built it (read back from Caddy's admin API):\n\n")
		b.WriteString("```json\n" + shortenPaths(proxyJSON(m.caddyCfg, "hello"), m.d.root) + "\n```\n\n")
	}
	b.WriteString(summary(sections))
	for _, s := range sections {
		fmt.Fprintf(&b, "## %s\n\n%s\n", s.title, strings.TrimSpace(s.body))
		b.WriteString("\n")
	}
	return b.String()
}

// summary collects the verdict lines of every section.
func summary(sections []section) string {
	var lines []string
	for _, s := range sections {
		for _, l := range strings.Split(s.body, "\n") {
			if strings.HasPrefix(l, "**hop3 ") || strings.HasPrefix(l, "**Not ") {
				lines = append(lines, "- "+s.title+": "+l)
			}
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "## Summary\n\n" + strings.Join(lines, "\n") + "\n\n"
}

func shortenPaths(s, root string) string {
	return strings.ReplaceAll(s, root, "<root>")
}

// proxyJSON returns the reverse_proxy handler of app's route in a config.
func proxyJSON(cfg []byte, app string) string {
	var m map[string]any
	if err := json.Unmarshal(cfg, &m); err != nil {
		return "?"
	}
	out := "?"
	walkProxies(m, func(h map[string]any) {
		if b, err := json.Marshal(h); err == nil && strings.Contains(string(b), "/run/"+app+"/") {
			out = string(b)
		}
	})
	return out
}
