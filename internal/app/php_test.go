package app

import (
	"strings"
	"testing"
	"time"

	"hop3/procfile"
)

func TestFPMConfigRender(t *testing.T) {
	got := string(fpmConfig{
		socket:      "/var/lib/hop3/run/wiki/php.v3.7.sock",
		dir:         "/var/lib/hop3/apps/wiki/releases/3",
		tmpDir:      "/var/lib/hop3/tmp/wiki",
		maxChildren: 1,
		maxRequests: 0,
		accessLog:   true,
		graceful:    1500 * time.Millisecond,
	}.render())
	want := `; Written by hop3 at every start; edits are lost.
[global]
error_log = /proc/self/fd/2
log_limit = 8192
daemonize = no
process_control_timeout = 2s

[app]
listen = /var/lib/hop3/run/wiki/php.v3.7.sock
listen.mode = 0660
pm = dynamic
pm.max_children = 1
pm.start_servers = 1
pm.min_spare_servers = 1
pm.max_spare_servers = 1
pm.max_requests = 0
chdir = /var/lib/hop3/apps/wiki/releases/3
clear_env = no
catch_workers_output = yes
decorate_workers_output = no
php_admin_value[error_log] = /proc/self/fd/2
php_admin_flag[log_errors] = on
access.log = /proc/self/fd/2
access.format = "%m %{REQUEST_URI}e %s %{mili}dms"
php_admin_value[upload_tmp_dir] = /var/lib/hop3/tmp/wiki
php_admin_value[sys_temp_dir] = /var/lib/hop3/tmp/wiki
php_value[session.save_path] = /var/lib/hop3/tmp/wiki
`
	if got != want {
		t.Errorf("render:\n%s\nwant:\n%s", got, want)
	}
	// The defaults: a few workers ready, room for five.
	def := string(fpmConfig{socket: "/s", dir: "/d", maxChildren: defaultFPMMaxChildren, maxRequests: defaultFPMMaxRequests, graceful: DefaultDrainTimeout}.render())
	for _, line := range []string{"pm.max_children = 5\n", "pm.start_servers = 2\n", "pm.max_spare_servers = 3\n", "pm.max_requests = 500\n", "process_control_timeout = 30s\n"} {
		if !strings.Contains(def, line) {
			t.Errorf("default config lacks %q:\n%s", line, def)
		}
	}
	if strings.Contains(def, "upload_tmp_dir") || strings.Contains(def, "access.log") {
		t.Errorf("a config without TMPDIR names one:\n%s", def)
	}
}

func TestReadPHPSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want phpSettings
		err  string
	}{
		{nil, phpSettings{maxChildren: 5, maxRequests: 500}, ""},
		{map[string]string{"PHP_FPM_MAX_CHILDREN": "12", "PHP_FPM_MAX_REQUESTS": "0", "PHP_DOCUMENT_ROOT": "web/"}, phpSettings{docRoot: "web", maxChildren: 12, maxRequests: 0}, ""},
		{map[string]string{"PHP_FPM_MAX_CHILDREN": "0"}, phpSettings{}, `PHP_FPM_MAX_CHILDREN "0": use a whole number from 1 to 1000`},
		{map[string]string{"PHP_FPM_MAX_CHILDREN": "many"}, phpSettings{}, `PHP_FPM_MAX_CHILDREN "many": use a whole number from 1 to 1000`},
		{map[string]string{"PHP_FPM_MAX_REQUESTS": "-1"}, phpSettings{}, `PHP_FPM_MAX_REQUESTS "-1": use a whole number from 0 to 1073741824`},
		{map[string]string{"PHP_DOCUMENT_ROOT": "/srv/www"}, phpSettings{}, `PHP_DOCUMENT_ROOT path "/srv/www" must be relative to the app directory (for example public or ./dist)`},
		{map[string]string{"PHP_DOCUMENT_ROOT": "public/../../other"}, phpSettings{}, `PHP_DOCUMENT_ROOT path "public/../../other" must stay inside the app directory (no "..")`},
	}
	for _, tt := range tests {
		got, err := readPHPSettings(tt.env)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("readPHPSettings(%v) error = %v, want %q", tt.env, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("readPHPSettings(%v) = %+v, %v; want %+v", tt.env, got, err, tt.want)
		}
	}
	e := procfile.Entry{Name: "php", Kind: procfile.KindPHP, Command: "./public"}
	if got := phpDocRoot(nil, e); got != "public" {
		t.Errorf("phpDocRoot = %q, want the entry's, cleaned", got)
	}
	if got := phpDocRoot(map[string]string{"PHP_DOCUMENT_ROOT": "web"}, e); got != "web" {
		t.Errorf("phpDocRoot = %q, want PHP_DOCUMENT_ROOT's", got)
	}
}
