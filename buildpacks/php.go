package buildpacks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PackPHP builds a PHP app, which php-fpm serves.
const PackPHP = "php"

// PHPFPMMissing is the one line for a server without php-fpm, which the
// app's start needs as much as its build: the toolchain comes from the
// system, Debian's packages.
const PHPFPMMissing = "php-fpm is not installed: install Debian's php-fpm package (apt-get install php-fpm)"

// maxLint bounds how many files `php -l` checks, one process each: a
// large app is still checked where it most often breaks, its own entry
// points first.
const maxLint = 1000

// phpSbin are the directories Debian installs php-fpm into, searched after
// PATH: an app's PATH rarely names them.
var phpSbin = []string{"/usr/local/sbin", "/usr/sbin", "/sbin"}

// DetectPHP tells whether dir holds a PHP app with no Procfile to say so:
// an index.php or a composer.json at its top or in public/. docRoot is
// what Caddy serves: public when that directory exists, else the app's
// top (".").
func DetectPHP(dir string) (docRoot string, ok bool) {
	for _, name := range []string{"index.php", "composer.json", "public/index.php"} {
		if info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err == nil && info.Mode().IsRegular() {
			ok = true
		}
	}
	if !ok {
		return "", false
	}
	if info, err := os.Stat(filepath.Join(dir, "public")); err == nil && info.IsDir() {
		return "public", true
	}
	return ".", true
}

func isPHP(dir string) bool {
	_, ok := DetectPHP(dir)
	return ok
}

// FindPHPFPM finds php-fpm: as configured (a path or a name), else
// php-fpm or Debian's versioned php-fpmX.Y (the newest) on pathList and
// then in the sbin directories. The error is PHPFPMMissing.
func FindPHPFPM(configured, pathList string) (string, error) {
	dirs := slices.Concat(filepath.SplitList(pathList), phpSbin)
	if configured != "" {
		return lookTool(configured, "", strings.Join(dirs, string(os.PathListSeparator)))
	}
	for _, dir := range dirs {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		if p := filepath.Join(dir, "php-fpm"); isExecutable(p) {
			return p, nil
		}
		versioned, _ := filepath.Glob(filepath.Join(dir, "php-fpm[0-9]*"))
		slices.SortFunc(versioned, func(a, b string) int {
			return compareVersions(strings.TrimPrefix(filepath.Base(b), "php-fpm"), strings.TrimPrefix(filepath.Base(a), "php-fpm"))
		})
		for _, p := range versioned {
			if isExecutable(p) {
				return p, nil
			}
		}
	}
	return "", errors.New(PHPFPMMissing)
}

// buildPHP installs the app's Composer packages (composer install
// --no-dev, into vendor/ of the release) and checks every PHP file of the
// app with `php -l`, so a syntax error fails the push instead of the
// first request. Composer's own home and download cache live in
// CacheDir. The whole build is kept by its inputs (see reuse.go): an
// unchanged push reuses vendor/ without running composer.
func (b *builder) buildPHP(ctx context.Context) error {
	php, env, version, err := b.phpToolchain(ctx)
	if err != nil {
		return err
	}
	b.rep.Info("Using " + version)
	if _, err := FindPHPFPM("", b.env["PATH"]); err != nil {
		return err
	}
	if b.has("composer.json") {
		composer, err := b.need("", "composer")
		if err != nil {
			return err
		}
		argv := []string{composer, "install", "--no-dev", "--no-interaction", "--prefer-dist", "--no-progress", "--optimize-autoloader"}
		b.rep.Step("Installing dependencies with " + strings.Join(append([]string{"composer"}, argv[1:]...), " "))
		start := time.Now()
		if err := b.run(ctx, command{label: "composer install", dir: b.dir, env: env, argv: argv}); err != nil {
			return err
		}
		b.rep.Info("Installed in " + since(start))
	}
	return b.lintPHP(ctx, php, env)
}

// lintPHP runs `php -l` on the app's own PHP files (not vendor/'s).
func (b *builder) lintPHP(ctx context.Context, php string, env map[string]string) error {
	files, more, err := phpFiles(b.dir)
	if err != nil {
		return fmt.Errorf("list PHP files: %w", err)
	}
	b.rep.Step("Checking PHP syntax with php -l")
	if more {
		b.rep.Info(fmt.Sprintf("Only the first %d files are checked", maxLint))
	}
	for _, rel := range files {
		var out bytes.Buffer
		err := runCommand(ctx, command{label: "php -l " + rel, dir: b.dir, env: env, as: b.cred(),
			argv:   []string{php, "-d", "display_errors=1", "-d", "log_errors=0", "-l", rel},
			stdout: &out, stderr: &out}, io.Discard)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return err
		}
		io.Copy(b.out, bytes.NewReader(out.Bytes()))
		for line := range strings.Lines(out.String()) {
			if strings.Contains(line, "error") && !strings.HasPrefix(line, "Errors parsing") {
				return fmt.Errorf("php -l: %s", strings.TrimSpace(line))
			}
		}
		return err
	}
	unit := "files"
	if len(files) == 1 {
		unit = "file"
	}
	b.rep.Info(fmt.Sprintf("%d %s without errors", len(files), unit))
	return nil
}

// phpFiles lists the .php files beneath dir, relative to it, top first,
// leaving out what Composer and Node install and version control keeps;
// more tells that there were more than maxLint.
func phpFiles(dir string) (files []string, more bool, err error) {
	skip := map[string]bool{"vendor": true, "node_modules": true, ".git": true}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel != "." && skip[rel] {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.EqualFold(filepath.Ext(p), ".php") {
			if len(files) == maxLint {
				more = true
				return filepath.SkipAll
			}
			files = append(files, rel)
		}
		return nil
	})
	return files, more, err
}

// phpToolchain finds php, the environment to run PHP's tools in, and
// php's version, once per build.
func (b *builder) phpToolchain(ctx context.Context) (string, map[string]string, string, error) {
	php, err := b.need("", "php")
	if err != nil {
		return "", nil, "", err
	}
	env, _, err := b.toolEnv(map[string]string{"COMPOSER_HOME": "composer-home", "COMPOSER_CACHE_DIR": "composer-cache"})
	if err != nil {
		return "", nil, "", err
	}
	if b.cred() == nil && os.Geteuid() == 0 {
		// Composer asks root to confirm; the build has no one to ask.
		env["COMPOSER_ALLOW_SUPERUSER"] = "1"
	}
	if err := b.askVersion(ctx, &b.phpVer, env, "php", php, "-r", "echo 'PHP ', PHP_VERSION;"); err != nil {
		return "", nil, "", err
	}
	return php, env, b.phpVer, nil
}
