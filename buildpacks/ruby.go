package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"
)

// PackRuby builds a Bundler app (a Gemfile).
const PackRuby = "ruby"

// The files of the app that go into its gem environment, and the directory
// of packaged gems (`bundle cache`) installed from without a gem server.
const (
	gemfile      = "Gemfile"
	gemfileLock  = "Gemfile.lock"
	gemCacheDir  = "vendor/cache"
	bundleConfig = ".bundle/config"
	// bundleDir is where the gems go inside an environment (BUNDLE_PATH).
	bundleDir = "bundle"
)

// defaultBundleWithout leaves out the groups an app does not run with, as
// Heroku does, unless the app sets BUNDLE_WITHOUT itself.
const defaultBundleWithout = "development:test"

// rubyToolchain is the ruby and bundle a build uses.
type rubyToolchain struct {
	ruby, bundle string
	// description is RUBY_DESCRIPTION; abi is RbConfig's ruby_version
	// (3.1.0), the directory Bundler installs gems under.
	description, abi string
	bundlerVersion   string
}

// buildRuby installs the gems of the Gemfile with `bundle install` into an
// environment in the app's store, shared by every release whose Gemfile,
// Gemfile.lock, vendor/cache and ruby are the same. With a Gemfile.lock the
// install is frozen (BUNDLE_DEPLOYMENT): a lock that does not match the
// Gemfile fails with Bundler's message instead of being updated. With a
// vendor/cache it is --local: gems come from there and never from a server.
// The app runs with BUNDLE_GEMFILE, BUNDLE_PATH and GEM_HOME naming the
// environment, so `bundle exec` in its Procfile finds them.
func (b *builder) buildRuby(ctx context.Context) error {
	tc, err := b.rubyToolchain(ctx)
	if err != nil {
		return err
	}
	b.rep.Info("Using " + tc.description + ", Bundler " + tc.bundlerVersion)
	in, err := readRubyInputs(b.dir)
	if err != nil {
		return err
	}
	without := defaultBundleWithout
	if v, ok := b.spec.Env["BUNDLE_WITHOUT"]; ok {
		without = v
	}
	key := in.key(tc, without, b.spec.Env)

	if b.spec.EnvsDir == "" {
		// No store: the gems go into the release, as `bundle install
		// --deployment` would put them.
		gems := filepath.Join(b.dir, "vendor", bundleDir)
		if err := b.bundleInstall(ctx, tc, in, b.dir, gems, without); err != nil {
			return err
		}
		b.setRubyEnv(tc, b.dir, gems, without)
		return nil
	}
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		return err
	}
	store := b.envStore(envsDir)
	path, ok := store.complete(key)
	if ok && !b.spec.NoCache {
		b.rep.Step(fmt.Sprintf("Reusing gems (%s unchanged)", in.lockName()))
		b.hit("ruby-gems")
	} else {
		meta := map[string]string{
			"kind":    "ruby-gems",
			"app":     b.spec.App,
			"ruby":    tc.description,
			"bundler": tc.bundlerVersion,
			"created": time.Now().UTC().Format(time.RFC3339),
		}
		path, err = store.create(key, b.spec.NoCache, meta, func(tmp, final string) error {
			if err := b.writeInputs(ctx, in, tmp); err != nil {
				return err
			}
			// Bundler records no absolute path of the environment in what
			// it installs: the gems work once renamed to final.
			return b.bundleInstall(ctx, tc, in, tmp, filepath.Join(tmp, bundleDir), without)
		}, nil)
		if err != nil {
			return err
		}
	}
	b.res.Envs = append(b.res.Envs, path)
	b.setRubyEnv(tc, path, filepath.Join(path, bundleDir), without)
	b.rep.Info("gems -> " + filepath.Join(path, bundleDir))
	return nil
}

// bundleInstall runs `bundle install` in dir, where the Gemfile is, into
// bundlePath.
func (b *builder) bundleInstall(ctx context.Context, tc rubyToolchain, in rubyInputs, dir, bundlePath, without string) error {
	env := withEnv(b.env, map[string]string{
		"BUNDLE_GEMFILE":               filepath.Join(dir, gemfile),
		"BUNDLE_PATH":                  bundlePath,
		"BUNDLE_WITHOUT":               without,
		"BUNDLE_JOBS":                  "4",
		"BUNDLE_DISABLE_VERSION_CHECK": "true",
		// hop3's own builds run as root; an app's user owns what it installs.
		"BUNDLE_SILENCE_ROOT_WARNING": "true",
	})
	// Gems must come from the Gemfile's sources, not whatever a GEM_HOME of
	// the app's config points at.
	delete(env, "GEM_HOME")
	delete(env, "GEM_PATH")
	env["PATH"] = joinPath(filepath.Dir(tc.ruby), env["PATH"])
	argv := []string{tc.bundle, "install"}
	if in.lock != nil {
		env["BUNDLE_DEPLOYMENT"] = "1"
		env["BUNDLE_FROZEN"] = "1"
	}
	if in.hasCache {
		argv = append(argv, "--local")
	}
	if home := env["HOME"]; home != "" {
		// Bundler falls back to a temporary home, with a warning, when HOME
		// does not exist yet.
		if err := b.run(ctx, command{label: "create HOME", env: env, argv: []string{"mkdir", "-p", "--", home}}); err != nil {
			return err
		}
	}
	label := strings.Join(append([]string{"bundle"}, argv[1:]...), " ")
	b.rep.Step(fmt.Sprintf("Installing gems with %s (%s)", label, in.lockName()))
	start := time.Now()
	if err := b.run(ctx, command{label: "bundle install", dir: dir, env: env, argv: argv}); err != nil {
		return err
	}
	b.rep.Info("Gems installed in " + since(start))
	return nil
}

// setRubyEnv points the app's Bundler and RubyGems at the gems installed
// into bundlePath from the Gemfile in root.
func (b *builder) setRubyEnv(tc rubyToolchain, root, bundlePath, without string) {
	gemHome := filepath.Join(bundlePath, "ruby", tc.abi)
	b.setRuntimeEnv("BUNDLE_GEMFILE", filepath.Join(root, gemfile))
	b.setRuntimeEnv("BUNDLE_PATH", bundlePath)
	b.setRuntimeEnv("GEM_HOME", gemHome)
	// The environment is read-only to the app: Bundler must use the lock
	// it has, never write another.
	b.setRuntimeEnv("BUNDLE_FROZEN", "true")
	b.addRuntimeEnv("BUNDLE_WITHOUT", without)
	b.addRuntimeEnv("RACK_ENV", "production")
	b.addRuntimePath(filepath.Join(gemHome, "bin"))
}

// rubyToolchain finds ruby and bundle and asks their versions, once per
// build.
func (b *builder) rubyToolchain(ctx context.Context) (rubyToolchain, error) {
	ruby, err := b.need("", "ruby")
	if err != nil {
		return rubyToolchain{}, err
	}
	bundle, err := b.need("", "bundle")
	if err != nil {
		return rubyToolchain{}, err
	}
	return b.rubyVersions(ctx, ruby, bundle)
}

func (b *builder) rubyVersions(ctx context.Context, ruby, bundle string) (rubyToolchain, error) {
	v, err := output(ctx, b.cred(), b.env, b.dir, ruby, "-e", `print RUBY_DESCRIPTION, "\n", RbConfig::CONFIG["ruby_version"]`)
	if err != nil {
		return rubyToolchain{}, fmt.Errorf("ask ruby its version: %w", err)
	}
	desc, abi, ok := strings.Cut(v, "\n")
	if !ok || abi == "" {
		return rubyToolchain{}, fmt.Errorf("ask ruby its version: unexpected answer %q", v)
	}
	env := withEnv(b.env, nil)
	env["PATH"] = joinPath(filepath.Dir(ruby), env["PATH"])
	bv, err := output(ctx, b.cred(), env, b.dir, bundle, "--version")
	if err != nil {
		return rubyToolchain{}, fmt.Errorf("ask bundler its version: %w", err)
	}
	return rubyToolchain{ruby: ruby, bundle: bundle, description: desc, abi: abi,
		bundlerVersion: strings.TrimPrefix(bv, "Bundler version ")}, nil
}

// rubyInputs is what goes into a gem environment: the Gemfile, its lock,
// Bundler's configuration and the packaged gems, by relative name.
type rubyInputs struct {
	gemfile []byte
	lock    []byte // nil without a Gemfile.lock
	config  []byte // nil without a .bundle/config
	// cache maps the names of the files under vendor/cache to their
	// contents' hashes; hasCache tells whether the directory exists.
	cache    map[string]string
	hasCache bool
}

// readRubyInputs reads the inputs from the pushed tree in dir. hop3 reads
// them as itself and hands them to the app's build: a link, which could
// name any file of the server, is refused wherever it is on the way.
func readRubyInputs(dir string) (rubyInputs, error) {
	var in rubyInputs
	var err error
	if in.gemfile, err = readInTree(dir, gemfile); err != nil {
		return in, err
	}
	if in.gemfile == nil {
		return in, errors.New("read Gemfile: not found")
	}
	if in.lock, err = readInTree(dir, gemfileLock); err != nil {
		return in, err
	}
	if in.config, err = readInTree(dir, bundleConfig); err != nil {
		return in, err
	}
	info, err := lstatInTree(dir, gemCacheDir)
	if errors.Is(err, fs.ErrNotExist) {
		return in, nil
	}
	if err != nil {
		return in, fmt.Errorf("read %s: %w", gemCacheDir, err)
	}
	if !info.IsDir() {
		return in, fmt.Errorf("read %s: not a directory", gemCacheDir)
	}
	cache := filepath.Join(dir, filepath.FromSlash(gemCacheDir))
	in.hasCache = true
	in.cache = map[string]string{}
	err = filepath.WalkDir(cache, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(cache, path)
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", rel)
		}
		data, err := readNoFollow(path)
		if err != nil {
			return err
		}
		k := newKeyHash("file")
		k.addBytes(data)
		in.cache[filepath.ToSlash(rel)] = k.sum("")
		return nil
	})
	if err != nil {
		return in, fmt.Errorf("read %s: %w", gemCacheDir, err)
	}
	return in, nil
}

// lstatInTree describes dir/rel (a slash-separated path) without following
// a link anywhere below dir: a link on the way is an error.
func lstatInTree(dir, rel string) (fs.FileInfo, error) {
	path := dir
	var info fs.FileInfo
	for _, part := range strings.Split(rel, "/") {
		path = filepath.Join(path, part)
		var err error
		if info, err = os.Lstat(path); err != nil {
			return nil, err
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a link", strings.TrimPrefix(path, dir+string(filepath.Separator)))
		}
	}
	return info, nil
}

// readInTree reads the regular file dir/rel, nil when it does not exist.
func readInTree(dir, rel string) ([]byte, error) {
	info, err := lstatInTree(dir, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && !info.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	data, err := readNoFollow(filepath.Join(dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rel, err)
	}
	return data, nil
}

func readNoFollow(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func (in rubyInputs) lockName() string {
	if in.lock == nil {
		return gemfile + ", no " + gemfileLock
	}
	return gemfileLock
}

// key names the environment: the ruby and Bundler, the inputs, and the
// app's BUNDLE_* settings, which change what Bundler installs.
func (in rubyInputs) key(tc rubyToolchain, without string, appEnv map[string]string) string {
	k := newKeyHash("ruby-gems")
	k.add(runtime.GOOS, runtime.GOARCH, realPath(tc.ruby), tc.description, realPath(tc.bundle), tc.bundlerVersion, without)
	k.addBytes(in.gemfile)
	k.add(fmt.Sprint(in.lock != nil))
	k.addBytes(in.lock)
	k.addBytes(in.config)
	k.add(fmt.Sprint(in.hasCache))
	names := make([]string, 0, len(in.cache))
	for name := range in.cache {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		k.add(name, in.cache[name])
	}
	var vars []string
	for name := range appEnv {
		if strings.HasPrefix(name, "BUNDLE_") {
			vars = append(vars, name)
		}
	}
	sort.Strings(vars)
	for _, name := range vars {
		k.add(name, appEnv[name])
	}
	return k.sum("ruby")
}

// writeInputs copies the inputs from the release into dir, where Bundler
// installs them, owned by the build's user: without a lock, Bundler writes
// one there, and it may add to vendor/cache.
func (b *builder) writeInputs(ctx context.Context, in rubyInputs, dir string) error {
	files := map[string][]byte{gemfile: in.gemfile, gemfileLock: in.lock, bundleConfig: in.config}
	for name, data := range files {
		if data == nil {
			continue
		}
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := writeNew(path, data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if in.hasCache {
		dst := filepath.Join(dir, filepath.FromSlash(gemCacheDir))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return fmt.Errorf("copy vendor/cache: %w", err)
		}
		if err := copyTree(ctx, filepath.Join(b.dir, filepath.FromSlash(gemCacheDir)), dst); err != nil {
			return fmt.Errorf("copy vendor/cache: %w", err)
		}
	}
	u := b.cred()
	if u == nil {
		return nil
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(u.Uid), int(u.Gid))
	})
}
