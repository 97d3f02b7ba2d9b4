package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hop3/buildpacks"
)

// TestLangs pushes one app per language and lockfile flavour through the
// same story (see langCase): first push, unchanged push reusing the build,
// a refused push while the old release serves, a changed push.
func TestLangs(t *testing.T) {
	runLangs(t, []langCase{
		// A Flask app whose poetry.lock pins flask 2.1.3 and setuptools
		// 65.3.0 (which still ships pkg_resources): the locked versions are
		// installed, not the newest ones pyproject.toml would allow, and the
		// dev group is left out. A pyproject.toml naming a dependency the
		// lock lacks fails the push; an unchanged lock reuses the virtualenv.
		{
			name: "PoetryLock", fixture: "poetry-app", app: "poetry",
			first: []string{"Python app detected", "Installing dependencies from poetry.lock"},
			page:  langPage{body: "flask 2.1.3 setuptools 65.3.0\n"},
			refused: &langRefusal{
				edit:     replaceIn("pyproject.toml", `setuptools = "65.3.0"`, "setuptools = \"65.3.0\"\nrequests = \"^2.28\""),
				toolLine: "pyproject.toml changed significantly since poetry.lock was last generated (requests not locked)",
				summary:  "build failed",
			},
			changed: &langPush{
				edit:  replaceIn("app.py", `"flask %s`, `"v2 flask %s`),
				shows: []string{"Reusing virtualenv"}, hides: []string{"Installing dependencies"},
				page: langPage{body: "v2 flask 2.1.3 setuptools 65.3.0\n"},
			},
			extra: poetryLocked,
		},
		// An app locked by pnpm-lock.yaml: pnpm, at the version
		// packageManager names, installs the tree once into a shared
		// environment, the build sees the dev dependencies and the app does
		// not, and node resolves its modules through the link into pnpm's
		// .pnpm directory. A package.json the lockfile does not match fails
		// the push with pnpm's message.
		{
			name: "Pnpm", fixture: "pnpm-app", app: "pnpm",
			first: []string{"Node.js app detected",
				"Installing dependencies with pnpm 9.15.9 install --frozen-lockfile (pnpm-lock.yaml)",
				"Running npm run build", "node_modules -> ", "web.1 ready"},
			page:    langPage{body: "pnpm app: 2m, kleur absent, built with kleur\n"},
			refused: &langRefusal{edit: leftPadUnlocked, toolLine: "ERR_PNPM_OUTDATED_LOCKFILE", summary: "build failed"},
			changed: &langPush{
				edit:  replaceIn("server.js", "pnpm app:", "pnpm app v2:"),
				shows: []string{"Reusing node_modules (pnpm-lock.yaml unchanged)", "Running npm run build"},
				hides: []string{"Installing dependencies"},
				page:  langPage{body: "pnpm app v2: 2m, kleur absent, built with kleur\n"},
			},
		},
		// An app locked by a Yarn 1 yarn.lock: Yarn installs it with
		// --frozen-lockfile into a shared environment; a package.json the
		// lockfile does not match fails the push with Yarn's message.
		{
			name: "Yarn", fixture: "yarn-app", app: "yarn",
			first: []string{"Node.js app detected",
				"Installing dependencies with yarn 1.22.22 install --frozen-lockfile (yarn.lock)", "node_modules -> ", "web.1 ready"},
			page:    langPage{body: "yarn app: 2m\n"},
			refused: &langRefusal{edit: leftPadUnlocked, toolLine: "Your lockfile needs to be updated", summary: "build failed"},
		},
		// An app locked by Yarn 4: `yarn install --immutable` into a
		// node_modules tree (not Plug'n'Play) for the build, `yarn
		// workspaces focus --production` for the app, both shared
		// environments; a package.json the lockfile does not match fails the
		// push with Yarn's message.
		{
			name: "Yarn4", fixture: "yarn4-app", app: "yarn4",
			first: []string{"Installing dependencies with yarn 4.5.3 install --immutable (yarn.lock)",
				"Running npm run build", "node_modules -> ", "web.1 ready"},
			page: langPage{body: "yarn 4 app: 2m, kleur absent, built with kleur\n"},
			refused: &langRefusal{edit: leftPadUnlocked,
				toolLine: "The lockfile would have been modified by this install, which is explicitly forbidden", summary: "build failed"},
		},
		// A Rust web server using a crate from crates.io: cargo build
		// --release --locked builds it into the app's cache and the Procfile
		// runs target/release/rust-app. An unchanged push reuses the build; a
		// changed source builds again, its dependencies kept. Built as
		// hop3's user, so that a rustup toolchain under root's home serves
		// (TestLangsRust has the per-app user's case).
		{
			name: "Rust", fixture: "rust-app", app: "rust",
			needs: func(t *testing.T) { needTools(t, "", "cargo") }, daemon: rustDaemon,
			first: []string{"Rust app detected", "Building with cargo build --release --locked",
				"Built target/release/rust-app", "web.1 ready"},
			page: langPage{re: regexp.MustCompile(`^Hello from a Rust app on hop3, request \d+\n$`)},
			unchanged: &langPush{shows: []string{"Reusing the build of an unchanged tree", "web.1 ready"},
				hides: []string{"cargo build"}},
			changed: &langPush{
				edit:  replaceIn("src/main.rs", "Hello from", "Hi from"),
				shows: []string{"Building with cargo build --release --locked", "Compiling rust-app"},
				hides: []string{"Compiling itoa"},
				page:  langPage{re: regexp.MustCompile(`^Hi from a Rust app on hop3, request \d+\n$`)},
			},
		},
		// A plain index.php with a stylesheet and no Procfile: one php-fpm
		// per app, as the app's user, behind Caddy's php_fastcgi handling
		// (static files through the app's own static file server, every
		// other path through index.php). A syntax error fails the push at
		// php -l.
		{
			name: "PHP", fixture: "php-app", app: "php", needs: needPHP,
			first: []string{"PHP app detected", "Checking PHP syntax with php -l", "1 file without errors", "php.1 ready"},
			page:  langPage{re: regexp.MustCompile(`^Hello from PHP \d+ on hop3 at /\n$`)},
			unchanged: &langPush{shows: []string{"Reusing the build of an unchanged tree", "php.1 ready"},
				hides: []string{"Checking PHP syntax"}},
			refused: &langRefusal{edit: writeFile("index.php", "<?php\necho 'unclosed;\n"),
				toolLine: "Parse error: syntax error", summary: "php -l: Parse error"},
			extra: phpFrontController,
		},
		// A Composer app whose packages are its own classes (no package
		// server), served from public/, where nothing outside the document
		// root is reachable.
		{
			name: "PHPComposer", fixture: "php-composer-app", app: "phpc", needs: needPHP,
			first: []string{"PHP app detected",
				"Installing dependencies with composer install --no-dev --no-interaction --prefer-dist", "php.1 ready"},
			page: langPage{body: "Hello, hop3, from a Composer autoloader\n"},
			unchanged: &langPush{shows: []string{"Reusing the build of an unchanged tree", "php.1 ready"},
				hides: []string{"composer install"}},
			extra: phpDocumentRoot,
		},
		// A Javalin app from Maven Central, packaged by the shade plugin into
		// one runnable jar: mvn -B package -DskipTests builds it as the app's
		// user, with the app's own Maven repository, and the Procfile runs
		// target/java-app.jar (a JVM the sandbox lets start). An unchanged
		// push reuses the build without running Maven; a syntax error fails
		// the push with javac's words through Maven.
		{
			name: "Java", fixture: "java-app", app: "java",
			needs: func(t *testing.T) { needTools(t, "", "mvn", "javac") },
			first: []string{"Java app detected", "Building with mvn -B package -DskipTests",
				"Built target/java-app.jar in ", "web.1 ready"},
			page: langPage{body: "Hello from a Java app on hop3 (Javalin)\n"},
			unchanged: &langPush{
				shows: []string{"Reusing the build of an unchanged tree", "which has stayed up: no settle wait", "web.1 ready"},
				hides: []string{"Building with mvn", "BUILD SUCCESS"}},
			refused: &langRefusal{
				edit:     replaceIn("src/main/java/app/Main.java", ".start(host, port);", ".start(host, port)"),
				toolLine: "COMPILATION ERROR", summary: "mvn package failed"},
			extra: javaTmpdir,
		},
		// A Rack app served by WEBrick, its gems (Debian's rack and webrick,
		// packed into .gem files) in vendor/cache: bundle install --local
		// installs them, frozen by Gemfile.lock and without the development
		// group, as the app's user into a shared environment, and the
		// Procfile's bundle exec finds them through BUNDLE_GEMFILE and
		// BUNDLE_PATH. An unchanged push reuses the gems, and skips the
		// settle wait: v1 stayed up through its settle time before the first
		// push returned, and the same tree, gems and settings need no second
		// wait. A Gemfile the lock does not match fails the push with
		// Bundler's message.
		{
			name: "Ruby", fixture: "ruby-app", app: "ruby",
			needs: func(t *testing.T) { needTools(t, " (apt-get install ruby-bundler)", "ruby", "bundle") },
			prepare: func(t *testing.T, files map[string]string) *strings.Replacer {
				v := debianGems(t, files, "rack", "webrick")
				return strings.NewReplacer("{rack}", v["rack"], "{webrick}", v["webrick"])
			},
			first: []string{"Ruby app detected", "Installing gems with bundle install --local (Gemfile.lock)",
				"Installing rack {rack}", "Gems in the groups 'development' and 'test' were not installed", "web.1 ready"},
			page: langPage{body: "Hello from Rack {rack} on WEBrick {webrick}, minitest absent\n"},
			unchanged: &langPush{
				shows: []string{"Reusing gems (Gemfile.lock unchanged)", "which has stayed up: no settle wait", "web.1 ready"},
				hides: []string{"Installing gems"}},
			refused: &langRefusal{edit: appendTo("Gemfile", "gem \"rake\"\n"),
				toolLine: "The dependencies in your gemfile changed", summary: "build failed"},
			changed: &langPush{
				edit:  replaceIn("config.ru", "Hello from", "Hi from"),
				shows: []string{"Reusing gems (Gemfile.lock unchanged)"},
				page:  langPage{body: "Hi from Rack {rack} on WEBrick {webrick}, minitest absent\n"},
			},
		},
	})
}

// leftPadUnlocked adds a dependency to package.json that its lockfile lacks.
var leftPadUnlocked = replaceIn("package.json", `"ms": "2.1.3"`, `"ms": "2.1.3", "left-pad": "1.3.0"`)

// poetryLocked checks that the locked werkzeug and click are installed and
// the dev group's pytest is not.
func poetryLocked(t *testing.T, r *langRun) {
	res := r.d.command(r.u, "", "run", r.app, "--", "python", "-c",
		"import importlib.metadata as m, importlib.util as u; print(m.version('werkzeug'), m.version('click'), u.find_spec('pytest') is None)")
	if res.code != 0 || res.stdout != "2.1.2 8.1.3 True\n" {
		t.Fatalf("run = %d %q %q, want the locked werkzeug and click and no pytest", res.code, res.stdout, res.stderr)
	}
}

// rustDaemon starts a daemon with no per-app users whose PATH finds cargo.
func rustDaemon(t *testing.T) (*daemon, user) {
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		t.Skip("cargo not found on PATH")
	}
	d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_ISOLATION=off",
		"PATH=" + filepath.Dir(cargo) + ":/usr/local/bin:/usr/bin:/bin"})
	alice := newUser(t, "alice")
	d.register(alice)
	return d, alice
}

// TestLangsRust: with per-app users, a cargo that the app's user cannot run
// (rustup's, under root's home) fails the push with one line naming
// Debian's package.
func TestLangsRust(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the isolated case needs root")
	}
	cargo, err := exec.LookPath("cargo")
	if err != nil {
		t.Skip("cargo not found on PATH")
	}
	t.Parallel()
	files := testdataApp(t, "rust-app")

	t.Run("cargo out of reach", func(t *testing.T) {
		t.Parallel()
		path := filepath.Dir(cargo) + ":/usr/local/bin:/usr/bin:/bin"
		if other, err := lookPathIn("cargo", path, filepath.Dir(cargo)); usableByOthers(cargo) || err == nil && usableByOthers(other) {
			t.Skip("a cargo every user can run is installed here")
		}
		d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"PATH=" + path})
		alice := newUser(t, "alice")
		d.register(alice)
		w := newWorkdir(t, files)
		out, err := w.push(d, alice, "rust")
		if err == nil {
			t.Fatalf("push succeeded:\n%s", out)
		}
		fails := failureLines(out)
		if len(fails) != 1 || !strings.Contains(fails[0], "install Debian's cargo package (apt-get install cargo)") {
			t.Errorf("want one line naming the package, got %q:\n%s", fails, out)
		}
	})
}

// usableByOthers reports whether every directory above path and path
// itself let others in.
func usableByOthers(path string) bool {
	for p := path; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// lookPathIn finds name in the directories of path other than skip.
func lookPathIn(name, path, skip string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == skip {
			continue
		}
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// needPHP skips the test unless php, composer and php-fpm are installed.
func needPHP(t *testing.T) {
	t.Helper()
	needTools(t, " (scripts/setup.sh installs it)", "php", "composer")
	if _, err := buildpacks.FindPHPFPM("", os.Getenv("PATH")); err != nil {
		t.Skip(err)
	}
}

// phpFrontController checks what Caddy's php_fastcgi handling does with
// other paths than /: static files served, routes and forms through
// index.php, which is run, never served; then that the app's config reaches
// PHP and php-fpm logs requests on demand.
func phpFrontController(t *testing.T, r *langRun) {
	d, host := r.d, r.host
	wantBody(t, d, host, "/style.css", r.files["style.css"])
	if code, body := get(t, d, host, "/users/42?tab=posts"); code != 200 || !strings.HasSuffix(body, " at /users/42?tab=posts\n") {
		t.Fatalf("a route through the front controller: GET = %d %q", code, body)
	}
	if code, body := get(t, d, host, "/index.php"); code != 200 || strings.Contains(body, "<?php") {
		t.Fatalf("GET /index.php = %d %q, want it run, not served", code, body)
	}
	// A form posts to the front controller.
	req, _ := http.NewRequest("POST", "http://"+d.httpAddr+"/login", strings.NewReader(url.Values{"user": {"alice"}}.Encode()))
	req.Host = host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasSuffix(string(body), " at /login\n") {
		t.Fatalf("POST /login = %d %q", resp.StatusCode, body)
	}

	d.mustCmd(r.u, "config:set", r.app, "GREETING=Howdy", "ACCESS_LOG=1")
	if code, body := get(t, d, host, "/logged/7?x=1"); code != 200 || !strings.HasPrefix(body, "Howdy from PHP") {
		t.Fatalf("after config:set: GET = %d %q", code, body)
	}
	eventually(t, 20*time.Second, func() error {
		if res := d.mustCmd(r.u, "logs", r.app); !strings.Contains(res.stdout, "GET /logged/7?x=1 200 ") {
			return fmt.Errorf("no request in logs:\n%s", res.stdout)
		}
		return nil
	})
}

// phpDocumentRoot checks that public/'s files are served and that outside
// public/ nothing is served or run: the front controller answers.
func phpDocumentRoot(t *testing.T, r *langRun) {
	wantBody(t, r.d, r.host, "/app.js", r.files["public/app.js"])
	for _, path := range []string{"/composer.json", "/src/Greeter.php", "/../src/Greeter.php", "/vendor/autoload.php"} {
		wantBody(t, r.d, r.host, path, r.page.body)
	}
}

// javaTmpdir checks that the app's temporary files go to its TMPDIR, the
// one its sandbox lets it write, not /tmp.
func javaTmpdir(t *testing.T, r *langRun) {
	wantBody(t, r.d, r.host, "/tmp", filepath.Join(r.d.root, "tmp", r.app)+"\n")
}

// TestLangsPHP: what PHP apps need beyond TestLangs/PHP's story.
func TestLangsPHP(t *testing.T) {
	needPHP(t)
	t.Parallel()

	// A replaced php-fpm lets its workers finish: a request in flight
	// across a restart is answered in full, where SIGTERM would cut it.
	t.Run("drain", func(t *testing.T) {
		d, alice := startBuildpackDaemon(t)
		host := "phpslow.localhost"
		files := testdataApp(t, "php-app")
		files["slow.php"] = "<?php\nusleep(5000000);\necho \"slow done\\n\";\n"
		w := newWorkdir(t, files)
		w.mustPush(d, alice, "phpslow")
		d.mustCmd(alice, "config:set", "phpslow", "SETTLE_TIME=1")
		type answer struct {
			code int
			body string
			err  error
		}
		done := make(chan answer, 1)
		go func() {
			// A POST: Caddy would retry a GET cut short on the new php-fpm.
			req, _ := http.NewRequest("POST", "http://"+d.httpAddr+"/slow.php", strings.NewReader("x=1"))
			req.Host = host
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			done <- answer{resp.StatusCode, string(b), err}
		}()
		time.Sleep(500 * time.Millisecond)
		d.mustCmd(alice, "config:set", "phpslow", "GREETING=Bye")
		select {
		case a := <-done:
			if a.err != nil || a.code != 200 || a.body != "slow done\n" {
				t.Fatalf("a request across the restart: %d %q %v", a.code, a.body, a.err)
			}
		case <-time.After(60 * time.Second):
			t.Fatal("a request across the restart never ended")
		}
		if code, body := get(t, d, host, "/"); code != 200 || !strings.HasPrefix(body, "Bye from PHP") {
			t.Fatalf("after the restart: GET / = %d %q", code, body)
		}
	})

	// hop3 as root with no per-app users: php-fpm runs as root, which it
	// must be told it may.
	t.Run("isolation off", func(t *testing.T) {
		d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_ISOLATION=off"})
		bob := newUser(t, "bob")
		d.register(bob)
		files := testdataApp(t, "php-app")
		w := newWorkdir(t, files)
		out := w.mustPush(d, bob, "phproot")
		wantPushOutput(t, out, "php.1 ready")
		if code, body := get(t, d, "phproot.localhost", "/"); code != 200 || !strings.HasPrefix(body, "Hello from PHP") {
			t.Fatalf("GET / = %d %q", code, body)
		}
		wantBody(t, d, "phproot.localhost", "/style.css", files["style.css"])
	})
}

// debianGems packs the named gems of Debian's packages into .gem files in
// files' vendor/cache, as `bundle cache` would have put them there, sets
// files' Gemfile.lock to their versions, and returns those versions.
func debianGems(t *testing.T, files map[string]string, names ...string) map[string]string {
	t.Helper()
	for _, name := range names {
		if matches, _ := filepath.Glob("/usr/share/rubygems-integration/all/specifications/" + name + "-*.gemspec"); len(matches) == 0 {
			t.Skipf("Debian's ruby-%s is not installed", name)
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Gemfile.lock"), []byte(files["Gemfile.lock"]), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{filepath.Join(repoRoot, "buildpacks", "testdata", "debian-gems.rb"), dir}, names...)
	if out, err := exec.Command("ruby", args...).CombinedOutput(); err != nil {
		t.Fatalf("pack Debian's gems: %v\n%s", err, out)
	}
	lock, err := os.ReadFile(filepath.Join(dir, "Gemfile.lock"))
	if err != nil {
		t.Fatal(err)
	}
	files["Gemfile.lock"] = string(lock)
	entries, err := os.ReadDir(filepath.Join(dir, "vendor", "cache"))
	if err != nil {
		t.Fatal(err)
	}
	versions := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, "vendor", "cache", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files["vendor/cache/"+e.Name()] = string(data)
		gem, version, _ := strings.Cut(strings.TrimSuffix(e.Name(), ".gem"), "-")
		versions[gem] = version
	}
	return versions
}
