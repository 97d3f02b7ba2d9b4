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

// TestLangsPoetryLock pushes a Flask app whose poetry.lock pins flask 2.1.3
// and setuptools 65.3.0 (which still ships pkg_resources): the locked
// versions are installed, not the newest ones pyproject.toml would allow,
// and the dev group is left out. A pyproject.toml naming a dependency the
// lock lacks fails the push and leaves the app serving; an unchanged lock
// reuses the virtualenv.
func TestLangsPoetryLock(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "poetry.localhost"
	files := testdataApp(t, "poetry-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "poetry")
	wantPushOutput(t, out, "Python app detected", "Installing dependencies from poetry.lock")
	wantBody(t, d, host, "/", "flask 2.1.3 setuptools 65.3.0\n")

	r := d.command(alice, "", "run", "poetry", "--", "python", "-c",
		"import importlib.metadata as m, importlib.util as u; print(m.version('werkzeug'), m.version('click'), u.find_spec('pytest') is None)")
	if r.code != 0 || r.stdout != "2.1.2 8.1.3 True\n" {
		t.Fatalf("run = %d %q %q, want the locked werkzeug and click and no pytest", r.code, r.stdout, r.stderr)
	}

	project := strings.Replace(files["pyproject.toml"], `setuptools = "65.3.0"`, "setuptools = \"65.3.0\"\nrequests = \"^2.28\"", 1)
	w.commit("stale lock", map[string]string{"pyproject.toml": project})
	wantBuildFails(t, d, alice, w, "poetry",
		"pyproject.toml changed significantly since poetry.lock was last generated (requests not locked)", "build failed")
	wantBody(t, d, host, "/", "flask 2.1.3 setuptools 65.3.0\n")

	app := strings.Replace(files["app.py"], `"flask %s`, `"v2 flask %s`, 1)
	w.commit("v2", map[string]string{"app.py": app})
	out = w.mustPush(d, alice, "poetry")
	wantPushOutput(t, out, "Reusing virtualenv")
	wantNoPushOutput(t, out, "Installing dependencies")
	wantBody(t, d, host, "/", "v2 flask 2.1.3 setuptools 65.3.0\n")
}

// TestLangsPnpm pushes an app locked by pnpm-lock.yaml: pnpm, at the
// version packageManager names, installs the tree once into a shared
// environment, the build sees the dev dependencies and the app does not,
// and node resolves its modules through the link into pnpm's .pnpm
// directory. A package.json the lockfile does not match fails the push with
// pnpm's message and leaves the app serving.
func TestLangsPnpm(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "pnpm.localhost"
	files := testdataApp(t, "pnpm-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "pnpm")
	wantPushOutput(t, out, "Node.js app detected",
		"Installing dependencies with pnpm 9.15.9 install --frozen-lockfile (pnpm-lock.yaml)",
		"Running npm run build", "node_modules -> ", "web.1 ready")
	want := "pnpm app: 2m, kleur absent, built with kleur\n"
	wantBody(t, d, host, "/", want)

	pkg := strings.Replace(files["package.json"], `"ms": "2.1.3"`, `"ms": "2.1.3", "left-pad": "1.3.0"`, 1)
	w.commit("lockfile out of date", map[string]string{"package.json": pkg})
	wantBuildFails(t, d, alice, w, "pnpm", "ERR_PNPM_OUTDATED_LOCKFILE", "build failed")
	wantBody(t, d, host, "/", want)

	server := strings.Replace(files["server.js"], "pnpm app:", "pnpm app v2:", 1)
	w.commit("v2", map[string]string{"server.js": server})
	out = w.mustPush(d, alice, "pnpm")
	wantPushOutput(t, out, "Reusing node_modules (pnpm-lock.yaml unchanged)", "Running npm run build")
	wantNoPushOutput(t, out, "Installing dependencies")
	wantBody(t, d, host, "/", "pnpm app v2: 2m, kleur absent, built with kleur\n")
}

// TestLangsYarn pushes an app locked by a Yarn 1 yarn.lock: Yarn installs
// it with --frozen-lockfile into a shared environment; a package.json the
// lockfile does not match fails the push with Yarn's message.
func TestLangsYarn(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "yarn.localhost"
	files := testdataApp(t, "yarn-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "yarn")
	wantPushOutput(t, out, "Node.js app detected",
		"Installing dependencies with yarn 1.22.22 install --frozen-lockfile (yarn.lock)", "node_modules -> ", "web.1 ready")
	wantBody(t, d, host, "/", "yarn app: 2m\n")

	pkg := strings.Replace(files["package.json"], `"ms": "2.1.3"`, `"ms": "2.1.3", "left-pad": "1.3.0"`, 1)
	w.commit("lockfile out of date", map[string]string{"package.json": pkg})
	wantBuildFails(t, d, alice, w, "yarn", "Your lockfile needs to be updated", "build failed")
	wantBody(t, d, host, "/", "yarn app: 2m\n")
}

// TestLangsYarn4 pushes an app locked by Yarn 4: `yarn install
// --immutable` into a node_modules tree (not Plug'n'Play) for the build,
// `yarn workspaces focus --production` for the app, both shared
// environments; a package.json the lockfile does not match fails the push
// with Yarn's message.
func TestLangsYarn4(t *testing.T) {
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "yarn4.localhost"
	files := testdataApp(t, "yarn4-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "yarn4")
	wantPushOutput(t, out, "Installing dependencies with yarn 4.5.3 install --immutable (yarn.lock)",
		"Running npm run build", "node_modules -> ", "web.1 ready")
	want := "yarn 4 app: 2m, kleur absent, built with kleur\n"
	wantBody(t, d, host, "/", want)

	pkg := strings.Replace(files["package.json"], `"ms": "2.1.3"`, `"ms": "2.1.3", "left-pad": "1.3.0"`, 1)
	w.commit("lockfile out of date", map[string]string{"package.json": pkg})
	wantBuildFails(t, d, alice, w, "yarn4", "The lockfile would have been modified by this install, which is explicitly forbidden", "build failed")
	wantBody(t, d, host, "/", want)
}

// TestLangsRust pushes a Rust web server using a crate from crates.io:
// cargo build --release --locked builds it into the app's cache and the
// Procfile runs target/release/rust-app. An unchanged push reuses the
// build; a changed source builds again. With per-app users, a cargo that
// the app's user cannot run (rustup's, under root's home) fails the push
// with one line naming Debian's package.
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

	t.Run("built", func(t *testing.T) {
		t.Parallel()
		// Builds as hop3's user, so that a rustup toolchain under root's
		// home serves.
		d := startDaemonEnv(t, shortTemp(t), "127.0.0.1:0", []string{"HOP3_ISOLATION=off",
			"PATH=" + filepath.Dir(cargo) + ":/usr/local/bin:/usr/bin:/bin"})
		alice := newUser(t, "alice")
		d.register(alice)
		host := "rust.localhost"
		w := newWorkdir(t, files)
		out := w.mustPush(d, alice, "rust")
		wantPushOutput(t, out, "Rust app detected", "Building with cargo build --release --locked",
			"Built target/release/rust-app", "web.1 ready")
		hello := regexp.MustCompile(`^Hello from a Rust app on hop3, request \d+\n$`)
		if code, body := get(t, d, host, "/"); code != 200 || !hello.MatchString(body) {
			t.Fatalf("GET = %d %q", code, body)
		}

		w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
		out = w.mustPush(d, alice, "rust")
		wantPushOutput(t, out, "Reusing the build of an unchanged tree", "web.1 ready")
		wantNoPushOutput(t, out, "cargo build")
		if code, body := get(t, d, host, "/"); code != 200 || !hello.MatchString(body) {
			t.Fatalf("reused build: GET = %d %q", code, body)
		}

		w.commit("v2", map[string]string{"src/main.rs": strings.Replace(files["src/main.rs"], "Hello from", "Hi from", 1)})
		out = w.mustPush(d, alice, "rust")
		wantPushOutput(t, out, "Building with cargo build --release --locked", "Compiling rust-app")
		wantNoPushOutput(t, out, "Compiling itoa")
		if code, body := get(t, d, host, "/"); code != 200 || !strings.HasPrefix(body, "Hi from a Rust app on hop3") {
			t.Fatalf("v2: GET = %d %q", code, body)
		}
	})

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

// TestLangsPHP pushes PHP apps with no Procfile: one php-fpm per app, as
// the app's user, behind Caddy's php_fastcgi handling (static files through
// the app's own static file server, every other path through index.php).
// A plain index.php with a stylesheet; a Composer app whose packages are its
// own classes (no package server) served from public/, where nothing outside
// the document root is reachable. An unchanged push reuses the build; a
// syntax error fails the push and the old release keeps serving.
func TestLangsPHP(t *testing.T) {
	for _, tool := range []string{"php", "composer"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found on PATH (scripts/setup.sh installs it)", tool)
		}
	}
	if _, err := buildpacks.FindPHPFPM("", os.Getenv("PATH")); err != nil {
		t.Skip(err)
	}
	t.Parallel()
	d, alice := startBuildpackDaemon(t)

	t.Run("index.php", func(t *testing.T) {
		host := "php.localhost"
		files := testdataApp(t, "php-app")
		w := newWorkdir(t, files)
		out := w.mustPush(d, alice, "php")
		wantPushOutput(t, out, "PHP app detected", "Checking PHP syntax with php -l", "1 file without errors", "php.1 ready")
		hello := regexp.MustCompile(`^Hello from PHP \d+ on hop3 at /\n$`)
		if code, body := get(t, d, host, "/"); code != 200 || !hello.MatchString(body) {
			t.Fatalf("GET / = %d %q", code, body)
		}
		wantBody(t, d, host, "/style.css", files["style.css"])
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

		w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
		out = w.mustPush(d, alice, "php")
		wantPushOutput(t, out, "Reusing the build of an unchanged tree", "php.1 ready")
		wantNoPushOutput(t, out, "Checking PHP syntax")
		if code, body := get(t, d, host, "/"); code != 200 || !strings.HasPrefix(body, "Hello from PHP") {
			t.Fatalf("reused build: GET / = %d %q", code, body)
		}

		// The app's config reaches PHP; php-fpm logs requests on demand.
		d.mustCmd(alice, "config:set", "php", "GREETING=Howdy", "ACCESS_LOG=1")
		if code, body := get(t, d, host, "/logged/7?x=1"); code != 200 || !strings.HasPrefix(body, "Howdy from PHP") {
			t.Fatalf("after config:set: GET = %d %q", code, body)
		}
		eventually(t, 20*time.Second, func() error {
			if r := d.mustCmd(alice, "logs", "php"); !strings.Contains(r.stdout, "GET /logged/7?x=1 200 ") {
				return fmt.Errorf("no request in logs:\n%s", r.stdout)
			}
			return nil
		})

		w.commit("syntax error", map[string]string{"index.php": "<?php\necho 'unclosed;\n"})
		wantBuildFails(t, d, alice, w, "php", "Parse error: syntax error", "php -l: Parse error")
		if code, body := get(t, d, host, "/"); code != 200 || !strings.HasPrefix(body, "Howdy from PHP") {
			t.Fatalf("after a failed push: GET / = %d %q", code, body)
		}
	})

	// A replaced php-fpm lets its workers finish: a request in flight
	// across a restart is answered in full, where SIGTERM would cut it.
	t.Run("drain", func(t *testing.T) {
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

	t.Run("composer", func(t *testing.T) {
		host := "phpc.localhost"
		files := testdataApp(t, "php-composer-app")
		w := newWorkdir(t, files)
		out := w.mustPush(d, alice, "phpc")
		wantPushOutput(t, out, "PHP app detected",
			"Installing dependencies with composer install --no-dev --no-interaction --prefer-dist", "php.1 ready")
		want := "Hello, hop3, from a Composer autoloader\n"
		wantBody(t, d, host, "/", want)
		wantBody(t, d, host, "/app.js", files["public/app.js"])
		// Outside public/, nothing is served or run: the front controller
		// answers.
		for _, path := range []string{"/composer.json", "/src/Greeter.php", "/../src/Greeter.php", "/vendor/autoload.php"} {
			wantBody(t, d, host, path, want)
		}

		w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
		out = w.mustPush(d, alice, "phpc")
		wantPushOutput(t, out, "Reusing the build of an unchanged tree", "php.1 ready")
		wantNoPushOutput(t, out, "composer install")
		wantBody(t, d, host, "/", want)
	})
}

// TestLangsJava pushes a Javalin app from Maven Central, packaged by the
// shade plugin into one runnable jar: mvn -B package -DskipTests builds it
// as the app's user, with the app's own Maven repository, and the Procfile
// runs target/java-app.jar, its temporary files in the app's TMPDIR. An unchanged push reuses the build without
// running Maven; a syntax error fails the push with javac's words through
// Maven, and the running release keeps serving.
func TestLangsJava(t *testing.T) {
	for _, tool := range []string{"mvn", "javac"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found on PATH", tool)
		}
	}
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "java.localhost"
	files := testdataApp(t, "java-app")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "java")
	wantPushOutput(t, out, "Java app detected", "Building with mvn -B package -DskipTests",
		"Built target/java-app.jar in ", "web.1 ready")
	want := "Hello from a Java app on hop3 (Javalin)\n"
	wantBody(t, d, host, "/", want)
	// Temporary files go to the app's TMPDIR, the one its sandbox lets it
	// write, not /tmp.
	wantBody(t, d, host, "/tmp", filepath.Join(d.root, "tmp", "java")+"\n")

	w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
	out = w.mustPush(d, alice, "java")
	wantPushOutput(t, out, "Reusing the build of an unchanged tree", "which has stayed up: no settle wait", "web.1 ready")
	wantNoPushOutput(t, out, "Building with mvn", "BUILD SUCCESS")
	wantBody(t, d, host, "/", want)

	src := "src/main/java/app/Main.java"
	w.commit("syntax error", map[string]string{src: strings.Replace(files[src], ".start(host, port);", ".start(host, port)", 1)})
	wantBuildFails(t, d, alice, w, "java", "COMPILATION ERROR", "mvn package failed")
	wantBody(t, d, host, "/", want)
}

// TestLangsRuby pushes a Rack app served by WEBrick, its gems (Debian's
// rack and webrick, packed into .gem files) in vendor/cache: bundle install
// --local installs them, frozen by Gemfile.lock and without the development
// group, as the app's user into a shared environment, and the Procfile's
// bundle exec finds them through BUNDLE_GEMFILE and BUNDLE_PATH. An
// unchanged push reuses the gems; a Gemfile the lock does not match fails
// the push with Bundler's message and leaves the app serving.
func TestLangsRuby(t *testing.T) {
	for _, name := range []string{"ruby", "bundle"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Skipf("%s not found on PATH (apt-get install ruby-bundler)", name)
		}
	}
	t.Parallel()
	d, alice := startBuildpackDaemon(t)
	host := "ruby.localhost"
	files := testdataApp(t, "ruby-app")
	versions := debianGems(t, files, "rack", "webrick")
	w := newWorkdir(t, files)
	out := w.mustPush(d, alice, "ruby")
	wantPushOutput(t, out, "Ruby app detected", "Installing gems with bundle install --local (Gemfile.lock)",
		"Installing rack "+versions["rack"], "Gems in the groups 'development' and 'test' were not installed", "web.1 ready")
	served := "Rack " + versions["rack"] + " on WEBrick " + versions["webrick"] + ", minitest absent\n"
	want := "Hello from " + served
	wantBody(t, d, host, "/", want)

	w.git("commit", "-q", "--allow-empty", "-m", "unchanged")
	out = w.mustPush(d, alice, "ruby")
	// v1 stayed up through its settle time before the first push
	// returned: the same tree, gems and settings need no second wait.
	wantPushOutput(t, out, "Reusing gems (Gemfile.lock unchanged)", "which has stayed up: no settle wait", "web.1 ready")
	wantNoPushOutput(t, out, "Installing gems")
	wantBody(t, d, host, "/", want)

	w.commit("lock out of date", map[string]string{"Gemfile": files["Gemfile"] + "gem \"rake\"\n"})
	wantBuildFails(t, d, alice, w, "ruby", "The dependencies in your gemfile changed", "build failed")
	wantBody(t, d, host, "/", want)

	w.commit("v2", map[string]string{"config.ru": strings.Replace(files["config.ru"], "Hello from", "Hi from", 1)})
	out = w.mustPush(d, alice, "ruby")
	wantPushOutput(t, out, "Reusing gems (Gemfile.lock unchanged)")
	wantBody(t, d, host, "/", "Hi from "+served)
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
