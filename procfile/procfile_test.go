package procfile

import (
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

// entry is an Entry without its schedule, compared with the schedule's
// String instead.
type entry struct {
	Name, Kind, Command, Cron string
	Line                      int
}

func flatten(p *Procfile) []entry {
	var out []entry
	for _, e := range p.Entries {
		out = append(out, entry{Name: e.Name, Kind: e.Kind.String(), Command: e.Command, Cron: e.Cron.String(), Line: e.Line})
	}
	return out
}

var goodProcfiles = []struct {
	name string
	in   string
	want []entry
}{
	{
		name: "wsgi with worker and cron",
		in:   "wsgi: app:app\nworker: python worker.py\ncron1: */5 * * * * python tick.py\n",
		want: []entry{
			{Name: "wsgi", Kind: "wsgi", Command: "app:app", Line: 1},
			{Name: "worker", Kind: "worker", Command: "python worker.py", Line: 2},
			{Name: "cron1", Kind: "cron", Command: "python tick.py", Cron: "*/5 * * * *", Line: 3},
		},
	},
	{
		name: "comments blank lines and CRLF",
		in:   "# my app\r\n\r\n  web:   gunicorn app:app --bind :$PORT  \r\n\t# hooks\r\nrelease: ./manage.py migrate\r\npreflight: echo hi",
		want: []entry{
			{Name: "web", Kind: "web", Command: "gunicorn app:app --bind :$PORT", Line: 3},
			{Name: "release", Kind: "release", Command: "./manage.py migrate", Line: 5},
			{Name: "preflight", Kind: "preflight", Command: "echo hi", Line: 6},
		},
	},
	{
		name: "split at the first colon",
		in:   "web: python -m http.server --bind 127.0.0.1:$PORT\n",
		want: []entry{{Name: "web", Kind: "web", Command: "python -m http.server --bind 127.0.0.1:$PORT", Line: 1}},
	},
	{
		name: "space before colon",
		in:   "worker : run\n",
		want: []entry{{Name: "worker", Kind: "worker", Command: "run", Line: 1}},
	},
	{
		name: "asgi dotted module",
		in:   "asgi: myproj.asgi:application\n",
		want: []entry{{Name: "asgi", Kind: "asgi", Command: "myproj.asgi:application", Line: 1}},
	},
	{
		name: "wsgi dotted module",
		in:   "wsgi: myproj.wsgi:application",
		want: []entry{{Name: "wsgi", Kind: "wsgi", Command: "myproj.wsgi:application", Line: 1}},
	},
	{
		name: "static dot",
		in:   "static: .\n",
		want: []entry{{Name: "static", Kind: "static", Command: ".", Line: 1}},
	},
	{
		name: "php document root",
		in:   "php: public\nworker: php worker.php\n",
		want: []entry{
			{Name: "php", Kind: "php", Command: "public", Line: 1},
			{Name: "worker", Kind: "worker", Command: "php worker.php", Line: 2},
		},
	},
	{
		name: "static dist",
		in:   "static: ./dist\nworker: make watch\n",
		want: []entry{
			{Name: "static", Kind: "static", Command: "./dist", Line: 1},
			{Name: "worker", Kind: "worker", Command: "make watch", Line: 2},
		},
	},
	{
		name: "static public with dotted file name",
		in:   "static: public/..hidden/x\n",
		want: []entry{{Name: "static", Kind: "static", Command: "public/..hidden/x", Line: 1}},
	},
	{
		name: "cron names and spacing kept in command",
		in:   "cron: 0 3 * * *   ./backup.sh  --all\ncron-backup:\t30\t4 1,15 * mon-fri tar  c .\ncrontab: 0 0 29 2 * leap\n",
		want: []entry{
			{Name: "cron", Kind: "cron", Command: "./backup.sh  --all", Cron: "0 3 * * *", Line: 1},
			{Name: "cron-backup", Kind: "cron", Command: "tar  c .", Cron: "30 4 1,15 * mon-fri", Line: 2},
			{Name: "crontab", Kind: "cron", Command: "leap", Cron: "0 0 29 2 *", Line: 3},
		},
	},
	{
		name: "cron command with colons",
		in:   "cron2: 0 * * * * curl http://localhost:8000/tick\n",
		want: []entry{{Name: "cron2", Kind: "cron", Command: "curl http://localhost:8000/tick", Cron: "0 * * * *", Line: 1}},
	},
	{
		name: "byte order mark",
		in:   "\ufeffweb: ./server\n",
		want: []entry{{Name: "web", Kind: "web", Command: "./server", Line: 1}},
	},
	{
		name: "name rules",
		in:   "a: x\nw_1-b: y\nabcdefghijklmnopqrstuvwxyz0123: z\n",
		want: []entry{
			{Name: "a", Kind: "worker", Command: "x", Line: 1},
			{Name: "w_1-b", Kind: "worker", Command: "y", Line: 2},
			{Name: "abcdefghijklmnopqrstuvwxyz0123", Kind: "worker", Command: "z", Line: 3},
		},
	},
	{
		name: "only hooks",
		in:   "release: ./migrate\n",
		want: []entry{{Name: "release", Kind: "release", Command: "./migrate", Line: 1}},
	},
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	for _, tc := range goodProcfiles {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(strings.NewReader(tc.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := flatten(p)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d entries %+v, want %d %+v", len(got), got, len(tc.want), tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

var badProcfiles = []struct {
	name string
	in   string
	want string
}{
	{"empty", "", "Procfile has no entries"},
	{"only comments", "# web: x\n\n   \n", "Procfile has no entries"},
	{"no colon", "web: x\n\nworker run\n", `Procfile line 3: missing ':' in "worker run"; write "name: command"`},
	{"empty command", "web:\n", "Procfile line 1: web has no command"},
	{"blank command", "worker:   \t\n", "Procfile line 1: worker has no command"},
	{"no name", ": run\n", "Procfile line 1: missing process name before ':'"},
	{"uppercase", "Web: run\n", `Procfile line 1: process name "Web" must be lowercase: write "web"`},
	{"uppercase and space", "My Worker: run\n", `Procfile line 1: process name "My Worker" may contain only lowercase letters, digits, '-' and '_'`},
	{"dot in name", "web.1: run\n", `Procfile line 1: process name "web.1" may contain only lowercase letters, digits, '-' and '_'`},
	{"digit first", "1web: run\n", `Procfile line 1: process name "1web" must start with a letter`},
	{"dash first", "-web: run\n", `Procfile line 1: process name "-web" must start with a letter`},
	{"too long", "abcdefghijklmnopqrstuvwxyz01234: run\n", `Procfile line 1: process name "abcdefghijklmnopqrstuvwxyz01234" is longer than 30 characters`},
	{"duplicate", "web: a\nworker: b\n# c\nweb: c\n", "Procfile line 4: web is already defined on line 1"},
	{"web and wsgi", "web: gunicorn app:app\n\nwsgi: app:app\n", "Procfile: web (line 1) and wsgi (line 3) both serve HTTP; keep one"},
	{"wsgi and web", "wsgi: app:app\nweb: ./run\n", "Procfile: wsgi (line 1) and web (line 2) both serve HTTP; keep one"},
	{"web and asgi", "web: ./run\nasgi: app:app\n", "Procfile: web (line 1) and asgi (line 2) both serve HTTP; keep one"},
	{"wsgi and asgi", "wsgi: app:app\nasgi: app:app\n", "Procfile: wsgi (line 1) and asgi (line 2) both serve HTTP; keep one"},
	{"static and web", "static: public\nweb: ./run\n", "Procfile: static (line 1) and web (line 2) both serve HTTP; keep one"},
	{"wsgi command", "wsgi: gunicorn app:app\n", `Procfile line 1: wsgi value "gunicorn app:app" is not module:callable (for example app:app or myproj.wsgi:application); hop3 runs the server itself, to run your own command use web: instead`},
	{"wsgi module only", "wsgi: app\n", `Procfile line 1: wsgi value "app" is not module:callable (for example app:app or myproj.wsgi:application)`},
	{"asgi two colons", "asgi: app:app:x\n", `Procfile line 1: asgi value "app:app:x" is not module:callable (for example app:app or myproj.asgi:application)`},
	{"wsgi call", "wsgi: app:create_app()\n", `Procfile line 1: wsgi value "app:create_app()" is not module:callable (for example app:app or myproj.wsgi:application)`},
	{"wsgi path", "wsgi: src/app.py:app\n", `Procfile line 1: wsgi value "src/app.py:app" is not module:callable (for example app:app or myproj.wsgi:application)`},
	{"wsgi digit module", "wsgi: 1app:app\n", `Procfile line 1: wsgi value "1app:app" is not module:callable (for example app:app or myproj.wsgi:application)`},
	{"wsgi comment", "wsgi: app:app # main\n", `Procfile line 1: wsgi value "app:app # main" is not module:callable (for example app:app or myproj.wsgi:application); hop3 runs the server itself, to run your own command use web: instead`},
	{"static absolute", "static: /var/www\n", `Procfile line 1: static path "/var/www" must be relative to the app directory (for example public or ./dist)`},
	{"static dotdot", "static: public/../../etc\n", `Procfile line 1: static path "public/../../etc" must stay inside the app directory (no "..")`},
	{"static parent", "static: ..\n", `Procfile line 1: static path ".." must stay inside the app directory (no "..")`},
	{"static spaces", "static: public dist\n", `Procfile line 1: static value "public dist" must be a single directory path, without spaces`},
	{"cron bad minute", "web: x\ncron1: 61 * * * * run\n", `Procfile line 2: cron1: cron minute field "61": out of range 0-59`},
	{"cron no command", "cron: 0 3 * * *\n", `Procfile line 1: cron needs a schedule and a command: "minute hour day-of-month month day-of-week command", as in "0 3 * * * ./backup.sh"`},
	{"cron four fields", "cron: 0 3 * * ./backup.sh\n", `Procfile line 1: cron needs a schedule and a command: "minute hour day-of-month month day-of-week command", as in "0 3 * * * ./backup.sh"`},
	{"cron shortcut", "cron: @daily ./backup.sh\n", `Procfile line 1: cron: shortcuts like @daily are not supported; write the five fields, as in "0 0 * * * command"`},
	{"cron bad name", "cron-x: 0 0 * * funday run\n", `Procfile line 1: cron-x: cron day-of-week field "funday": not a number or day name (sun-sat)`},
	{"cron never", "cron: 0 0 31 4 * run\n", `Procfile line 1: cron: cron day-of-month field "31": no such day in month field "4"; the schedule would never run`},
	{"jwsgi", "jwsgi: app\n", "Procfile line 1: jwsgi is a piku process type hop3 does not support; use web: with a command that listens on $PORT"},
	{"php absolute", "php: /var/www\n", `Procfile line 1: php path "/var/www" must be relative to the app directory (for example public or ./dist)`},
	{"php dotdot", "php: public/../..\n", `Procfile line 1: php path "public/../.." must stay inside the app directory (no "..")`},
	{"php command", "php: php-fpm -F\n", `Procfile line 1: php value "php-fpm -F" must be a single directory path, without spaces`},
	{"php and wsgi", "php: public\nwsgi: app:app\n", "Procfile: php (line 1) and wsgi (line 2) both serve HTTP; keep one"},
	{"prebuild", "prebuild: make\n", "Procfile line 1: prebuild is not a hop3 process type; use preflight: to run a command before the build"},
	{"postbuild", "postbuild: make\n", "Procfile line 1: postbuild is not a hop3 process type; use release: to run a command after the build"},
	{"NUL", "web: a\x00b\n", "Procfile line 1: contains a NUL byte"},
	{"long line", "web: x\nworker: " + strings.Repeat("y", 4089) + "\n", "Procfile line 2: line is longer than 4096 bytes"},
	{"long comment", "# " + strings.Repeat("y", 4095) + "\r\n", "Procfile line 1: line is longer than 4096 bytes"},
	{"too big", strings.Repeat("# padding\n", 7000), "Procfile is larger than 64 KiB"},
	{"too many entries", manyEntries(101), "Procfile line 101: more than 100 entries"},
	{"long input quoted short", "web " + strings.Repeat("x", 100), `Procfile line 1: missing ':' in "web ` + strings.Repeat("x", 56) + `..."; write "name: command"`},
}

func manyEntries(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("w")
		b.WriteString(strings.Repeat("x", i/26))
		b.WriteByte(byte('a' + i%26))
		b.WriteString(": run\n")
	}
	return b.String()
}

func TestParseBad(t *testing.T) {
	t.Parallel()
	for _, tc := range badProcfiles {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := Parse(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error %q", flatten(p), tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error:\n got %s\nwant %s", err, tc.want)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseLimitsExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
	}{
		{"line of 4096 bytes", "worker: " + strings.Repeat("y", 4096-8) + "\r\n"},
		{"100 entries", manyEntries(100)},
		{"64 KiB", "web: x\n" + strings.Repeat("#"+strings.Repeat("-", 1022)+"\n", 63) + "#" + strings.Repeat("-", 1024-7-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse(strings.NewReader(tc.in)); err != nil {
				t.Errorf("Parse: %v", err)
			}
		})
	}
}

func TestParseReadError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	_, err := Parse(iotest.ErrReader(boom))
	if !errors.Is(err, boom) || err.Error() != "reading Procfile: boom" {
		t.Errorf("got %v, want reading Procfile: boom", err)
	}
}

func TestAccessors(t *testing.T) {
	t.Parallel()
	p, err := Parse(strings.NewReader("release: ./migrate\nworker: ./work\ncron: 0 * * * * ./tick\nwsgi: app:app\nstatic-files: ./sync\npreflight: ./check\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := p.Routed(); !ok || e.Name != "wsgi" || e.Kind != KindWSGI {
		t.Errorf("Routed = %+v, %v; want wsgi", e, ok)
	}
	var names []string
	for _, e := range p.Processes() {
		names = append(names, e.Name)
	}
	if got := strings.Join(names, ","); got != "worker,wsgi,static-files" {
		t.Errorf("Processes = %s, want worker,wsgi,static-files", got)
	}
	if e, ok := p.Get("cron"); !ok || e.Kind != KindCron || e.Cron == nil || e.Command != "./tick" || e.Line != 3 {
		t.Errorf("Get(cron) = %+v, %v", e, ok)
	}
	if _, ok := p.Get("web"); ok {
		t.Error("Get(web) found an entry")
	}

	tests := []struct {
		in     string
		routed string
		procs  int
	}{
		{"static: public\nrelease: x\n", "static", 0},
		{"web: ./run\nworker: y\nworker2: z\n", "web", 3},
		{"asgi: a.b:c\n", "asgi", 1},
		{"php: .\nworker: y\n", "php", 2},
		{"worker: y\ncron: * * * * * z\n", "", 1},
	}
	for _, tc := range tests {
		p, err := Parse(strings.NewReader(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		e, ok := p.Routed()
		if ok != (tc.routed != "") || e.Name != tc.routed {
			t.Errorf("%q: Routed = %q, %v; want %q", tc.in, e.Name, ok, tc.routed)
		}
		if got := len(p.Processes()); got != tc.procs {
			t.Errorf("%q: %d processes, want %d", tc.in, got, tc.procs)
		}
	}

	var nilP *Procfile
	if _, ok := nilP.Get("web"); ok {
		t.Error("nil Procfile has entries")
	}
	if _, ok := nilP.Routed(); ok {
		t.Error("nil Procfile has a routed entry")
	}
	if nilP.Processes() != nil {
		t.Error("nil Procfile has processes")
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		k    Kind
		want string
	}{
		{KindWSGI, "wsgi"},
		{KindASGI, "asgi"},
		{KindWeb, "web"},
		{KindStatic, "static"},
		{KindRelease, "release"},
		{KindPreflight, "preflight"},
		{KindCron, "cron"},
		{KindWorker, "worker"},
		{KindPHP, "php"},
		{Kind(0), "Kind(0)"},
		{Kind(99), "Kind(99)"},
	}
	for _, tc := range tests {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(tc.k), got, tc.want)
		}
	}
}
