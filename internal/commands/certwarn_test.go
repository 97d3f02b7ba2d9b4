package commands

import (
	"strings"
	"testing"

	"hop3/internal/router"
)

// A failing certificate, told at the end of a push, is told again by each
// command about its app while the failure lasts: one line per app, after
// the command's output, on stderr (stdout stays parseable).
func TestCertFailureRepeated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("web", "web: x\n")
	e.app("api", "web: x\n")
	failing := map[string]bool{"web.localhost": true}
	e.d.cfg.Certs = func(hosts []string) []router.CertStatus {
		out := make([]router.CertStatus, len(hosts))
		for i, h := range hosts {
			out[i] = router.CertStatus{Host: h, State: router.CertValid}
			if failing[h] {
				out[i] = router.CertStatus{Host: h, State: router.CertFailing, LastError: "x509: certificate signed by unknown authority"}
			}
		}
		return out
	}
	const line = " !     certificate failing for web.localhost: x509: certificate signed by unknown authority\n"
	tests := []struct {
		args []string
		want int // times the line appears
	}{
		{[]string{"apps"}, 1},
		{[]string{"apps", "--json"}, 1},
		{[]string{"ps", "web"}, 1},
		{[]string{"config", "web"}, 1},
		{[]string{"domains", "web", "--json"}, 1},
		{[]string{"ps", "api"}, 0},
		{[]string{"help"}, 0},
	}
	for _, tc := range tests {
		r := e.ok(tc.args...)
		if n := strings.Count(r.stderr, line); n != tc.want {
			t.Errorf("%v: warning %d times, want %d; stderr:\n%s", tc.args, n, tc.want, r.stderr)
		}
		if strings.Contains(r.stdout, "certificate failing") {
			t.Errorf("%v: warning on stdout", tc.args)
		}
		if tc.want > 0 && !strings.HasSuffix(r.stderr, line) {
			t.Errorf("%v: warning is not the last line:\n%s", tc.args, r.stderr)
		}
	}
	// A failed command still ends with the warning, after its own error.
	r := e.run(admin, "", "config:get", "web", "NOPE")
	if r.code == 0 || !strings.HasSuffix(r.stderr, line) {
		t.Errorf("failed command: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	// Once the certificate is there, nothing more is said.
	delete(failing, "web.localhost")
	if r := e.ok("ps", "web"); strings.Contains(r.stderr, "certificate") {
		t.Errorf("warning after the failure ended:\n%s", r.stderr)
	}
}
