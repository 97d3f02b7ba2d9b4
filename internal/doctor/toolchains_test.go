package doctor

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"hop3/buildpacks"
)

func TestListToolchains(t *testing.T) {
	path := map[string]string{
		"python3": "/usr/bin/python3", "node": "/usr/bin/node", "mvn": "/usr/bin/mvn",
		"ruby": "/usr/bin/ruby", "bundle": "/usr/bin/bundle",
		"composer": "/usr/bin/composer", "gradle": "/usr/bin/gradle",
		"java": "/usr/bin/java", // a JRE alone: doctor looks for javac
	}
	outputs := map[string]string{
		"/usr/bin/python3 --version":       "Python 3.11.2\n",
		"/usr/bin/node --version":          "v18.19.0\n",
		"/usr/bin/mvn --version":           "\x1b[1mApache Maven 3.8.7\x1b[m\nMaven home: /usr/share/maven\n",
		"/usr/bin/ruby --version":          "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu]\n",
		"/usr/bin/bundle --version":        "Bundler version 2.3.15\n",
		"/usr/sbin/php-fpm8.2 -v":          "PHP 8.2.36 (fpm-fcgi)\nCopyright (c) The PHP Group\n",
		"/usr/bin/composer --version":      "Do not run Composer as root/super user! See https://getcomposer.org/root for details\nComposer version 2.5.5 2023-03-21 11:50:05\n",
		"/opt/hop3/tools/bin/uv --version": "uv 0.13.9\n",
	}
	found := len(path) - 1 + 1 // not java, but the configured uv
	// php-fpm is where the PHP build finds it, on this machine.
	wantFPM := "not found (apt-get install php-fpm)"
	if fpm, err := buildpacks.FindPHPFPM("", os.Getenv("PATH")); err == nil {
		found++
		outputs[fpm+" -v"] = "PHP 8.2.36 (fpm-fcgi)\nCopyright (c) The PHP Group\n"
		wantFPM = "PHP 8.2.36 (fpm-fcgi) (" + fpm + ")"
	}
	var mu sync.Mutex
	calls := 0
	all := make(chan struct{})
	sys := System{
		LookPath: func(name string) (string, error) {
			if p, ok := path[name]; ok {
				return p, nil
			}
			return "", errors.New("not found")
		},
		Stat: func(p string) (os.FileInfo, error) {
			if p == "/opt/hop3/tools/bin/uv" {
				return fakeFile{mode: 0o755}, nil
			}
			return nil, fs.ErrNotExist
		},
		Exec: func(ctx context.Context, name string, args ...string) (string, error) {
			if d, ok := ctx.Deadline(); !ok || time.Until(d) > toolchainTimeout {
				t.Errorf("%s runs without a short deadline", name)
			}
			// Every query waits until all have started: they run at once,
			// or the test times out.
			mu.Lock()
			calls++
			if calls == found {
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(5 * time.Second):
				t.Errorf("%s: the version queries do not run at once", name)
			}
			key := strings.Join(append([]string{name}, args...), " ")
			if key == "/usr/bin/gradle --version" {
				return "", context.DeadlineExceeded
			}
			return outputs[key], nil
		},
	}
	results := ListToolchains(context.Background(), sys, map[string]string{"uv": "/opt/hop3/tools/bin/uv"})
	if len(results) != len(Toolchains) {
		t.Fatalf("%d results, want one per toolchain (%d)", len(results), len(Toolchains))
	}
	details := map[string]string{}
	for i, r := range results {
		if r.Verdict != Info || r.Name != "toolchain:"+Toolchains[i].Name || r.Fix != "" {
			t.Errorf("result %d = %+v, want the info line of %s", i, r, Toolchains[i].Name)
		}
		details[Toolchains[i].Name] = r.Detail
	}
	tests := []struct{ name, want string }{
		{"python3", "Python 3.11.2 (/usr/bin/python3)"},
		{"uv", "uv 0.13.9 (/opt/hop3/tools/bin/uv)"},
		{"node", "v18.19.0 (/usr/bin/node)"},
		{"npm", "not found (apt-get install npm)"},
		{"cargo", "not found (apt-get install cargo)"},
		// The build needs javac, which Debian's maven (a JRE) does not bring.
		{"javac", "not found (apt-get install default-jdk-headless)"},
		{"mvn", "Apache Maven 3.8.7 (/usr/bin/mvn)"},
		{"gradle", "version unknown: context deadline exceeded (/usr/bin/gradle)"},
		{"ruby", "ruby 3.1.2p20 (2022-04-12 revision 4491bb740a) [x86_64-linux-gnu] (/usr/bin/ruby)"},
		{"bundler", "Bundler version 2.3.15 (/usr/bin/bundle)"},
		{"php-fpm", wantFPM},
		{"composer", "Composer version 2.5.5 2023-03-21 11:50:05 (/usr/bin/composer)"},
	}
	for _, tt := range tests {
		if got := details[tt.name]; got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	if Failed(results) {
		t.Error("a missing toolchain counts as a failure")
	}
	var b strings.Builder
	if err := Write(&b, results[:1]); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(b.String()); len(got) < 2 || got[0] != "info" || got[1] != "toolchain:python3" {
		t.Errorf("Write = %q", b.String())
	}
}
