package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"hop3/internal/addons"
	"hop3/internal/doctor"
	"hop3/internal/layout"
)

// doctorCmd checks the server hop3 runs on, with the settings hop3 serve
// would use (flags, HOP3_* variables, /etc/hop3/hop3.env), and exits 1 when
// a check fails.
func doctorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	defHTTP := ":8080"
	if os.Geteuid() == 0 {
		defHTTP = ":80"
	}
	var cfg doctor.Config
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Root, "root", envDefault("root", defaultRoot()), "state directory (HOP3_ROOT)")
	fs.StringVar(&cfg.Domain, "domain", envDefault("domain", "localhost"), "apps' domain (HOP3_DOMAIN)")
	fs.StringVar(&cfg.TLS, "tls", envDefault("tls", "off"), "off, internal or acme (HOP3_TLS)")
	fs.StringVar(&cfg.SSHAddr, "ssh-addr", envDefault("ssh-addr", ":2222"), "SSH address (HOP3_SSH_ADDR)")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", envDefault("http-addr", defHTTP), "HTTP address (HOP3_HTTP_ADDR)")
	fs.StringVar(&cfg.HTTPSAddr, "https-addr", envDefault("https-addr", ":443"), "HTTPS address (HOP3_HTTPS_ADDR)")
	fs.StringVar(&cfg.CaddyBin, "caddy-bin", envDefault("caddy-bin", ""), "Caddy binary (HOP3_CADDY_BIN)")
	fs.StringVar(&cfg.UV, "uv", envDefault("uv", ""), "uv binary (HOP3_UV)")
	fs.StringVar(&cfg.Isolation, "isolation", envDefault("isolation", "auto"), "auto or off (HOP3_ISOLATION)")
	fs.StringVar(&cfg.ACMEDNS, "acme-dns", envDefault("acme-dns", ""), "Caddy DNS provider module --caddy-bin must have (HOP3_ACME_DNS)")
	fs.StringVar(&cfg.Sandbox, "sandbox", envDefault("sandbox", "auto"), "auto or off, as hop3 serve --sandbox (HOP3_SANDBOX)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("doctor takes no arguments")
	}
	if cfg.CaddyBin == "" {
		cfg.CaddyBin = findTool("caddy")
	}
	if cfg.UV == "" {
		cfg.UV = findTool("uv")
	}
	cfg.PIDDir = layout.New(cfg.Root).PIDs()
	results := doctor.Run(ctx, cfg, doctor.DefaultSystem())
	results = append(results, addonChecks(cfg.Root)...)
	results = append(results, doctor.ListToolchains(ctx, doctor.DefaultSystem(), map[string]string{"uv": cfg.UV})...)
	if err := doctor.Write(stdout, results); err != nil {
		return err
	}
	if doctor.Failed(results) {
		n := 0
		for _, r := range results {
			if r.Verdict == doctor.Fail {
				n++
			}
		}
		return &exitError{code: 1, msg: fmt.Sprintf("%d check(s) failed", n)}
	}
	return nil
}

// addonChecks reports the add-on servers: installed, and each add-on
// answering on its sockets (a stopped hop3 shows them all down).
func addonChecks(root string) []doctor.Result {
	list, err := addons.Check(root)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return []doctor.Result{{Name: "addons", Verdict: doctor.Warn, Detail: err.Error(), Fix: "run hop3 doctor as hop3's user"}}
	case err != nil:
		return []doctor.Result{{Name: "addons", Verdict: doctor.Fail, Detail: err.Error(), Fix: "restore addons/addons.json from a backup of the root"}}
	}
	var out []doctor.Result
	if err := addons.Servers(); err != nil {
		v := doctor.Warn
		if len(list) > 0 {
			v = doctor.Fail
		}
		out = append(out, doctor.Result{Name: "addon-servers", Verdict: v, Detail: err.Error(), Fix: "run scripts/setup.sh (apt-get install postgresql-15 redis-server)"})
	} else {
		out = append(out, doctor.Result{Name: "addon-servers", Verdict: doctor.OK, Detail: "PostgreSQL 15 and Redis installed"})
	}
	for _, h := range list {
		r := doctor.Result{Name: "addon:" + h.Name, Verdict: doctor.OK, Detail: fmt.Sprintf("%s of %s answers", h.Kind, h.App)}
		if h.Err != nil {
			r.Verdict, r.Detail, r.Fix = doctor.Warn, fmt.Sprintf("%s of %s: %v", h.Kind, h.App, h.Err), "see `ps "+h.App+"` and <root>/logs/addons/"
		}
		out = append(out, r)
	}
	return out
}
