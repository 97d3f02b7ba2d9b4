package buildpacks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A build's output is kept in the environment store too, as "build-<hash>",
// named by everything that went into the build: the source tree (names,
// modes, contents), every config var and .env value (any of them may be
// baked into a front end, NEXT_PUBLIC_* for one), the PATH, the detected
// buildpacks, and each toolchain's location and version (Node.js and npm,
// the Python interpreter and uv, Go), and this package's version. A push
// whose inputs all match an earlier build's, an empty commit for one, copies
// that build's output into the new release instead of building.
//
// The output is what the build changed in the release directory:
// node_modules (a link to the shared environment), what `npm run build`
// wrote (dist/, .next/, ...), Go's bin/. A Python app is reused this way
// only with a Node.js front end: its virtualenv is an environment of its
// own, reused whenever its inputs match, and a Python build writes nothing
// into the release. Files the build removed are listed and removed again.

// Files inside a build record.
const (
	buildRecordFile = "build.json"
	buildTreeDir    = "tree"
)

// releaseDirMark stands for the release directory in the runtime
// environment a record keeps; no environment value holds a NUL.
const releaseDirMark = "\x00release\x00"

// buildRecord is what build.json holds.
type buildRecord struct {
	Result  Result   `json:"result"`
	Removed []string `json:"removed,omitempty"`
}

// hasBuildStep reports whether any of packs writes build output into the
// release directory, which a later push could reuse. A Python build alone
// writes none (its virtualenv is reused on its own, keyed by its inputs),
// nor does a static or generic app.
func hasBuildStep(packs []string) bool {
	for _, p := range packs {
		if p == PackNode || p == PackGo || p == PackRust || p == PackJava || p == PackPHP {
			return true
		}
	}
	return false
}

// buildKey names the record of a build of the release directory as it is
// now, before anything was built into it. Its errors name the pack.
func (b *builder) buildKey(ctx context.Context, packs []string) (string, error) {
	k := newKeyHash("build")
	k.add(runtime.GOOS, runtime.GOARCH, strconv.FormatBool(b.spec.HasStatic), strconv.FormatBool(b.spec.HasProcfile))
	k.add(packs...)
	tree, err := hashTree(ctx, b.dir, map[string]bool{".git": true})
	if err != nil {
		return "", fmt.Errorf("build %s app: %w", packs[0], err)
	}
	k.add("tree", tree)
	names := make([]string, 0, len(b.spec.Env))
	for name := range b.spec.Env {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		k.add("env", name, b.spec.Env[name])
	}
	k.add("PATH", b.env["PATH"])
	for _, pack := range packs {
		if err := b.addToolchain(ctx, k, pack); err != nil {
			return "", fmt.Errorf("build %s app: %w", pack, err)
		}
	}
	return k.sum("build"), nil
}

// addToolchain adds the location and version of the tools pack builds with
// to k.
func (b *builder) addToolchain(ctx context.Context, k *keyHash, pack string) error {
	switch pack {
	case PackPython:
		in, err := b.pythonInterpreter(ctx)
		if err != nil {
			return err
		}
		k.add("python", in.version, realPath(in.path), DefaultGranianVersion)
		if uv, err := b.tool(b.spec.Tools.UV, "uv"); err == nil {
			v, err := output(ctx, b.cred(), b.env, b.dir, uv, "--version")
			if err != nil {
				return fmt.Errorf("ask uv its version: %w", err)
			}
			k.add("uv", realPath(uv), v)
		}
	case PackNode:
		tc, err := b.nodeToolchain(ctx)
		if err != nil {
			return err
		}
		k.add("node", realPath(tc.node), tc.nodeVersion, realPath(tc.npm), tc.npmVersion)
	case PackGo:
		goTool, _, v, err := b.goToolchain(ctx)
		if err != nil {
			return err
		}
		k.add("go", realPath(goTool), v)
	case PackRust:
		cargo, _, v, err := b.rustToolchain(ctx)
		if err != nil {
			return err
		}
		k.add("cargo", realPath(cargo), v)
	case PackJava:
		tc, err := b.javaToolchain(ctx)
		if err != nil {
			return err
		}
		k.add("java", realPath(tc.javac), realPath(tc.argv[0]), tc.version)
	case PackPHP:
		php, _, v, err := b.phpToolchain(ctx)
		if err != nil {
			return err
		}
		k.add("php", realPath(php), v)
		if composer, err := b.tool("", "composer"); err == nil {
			k.add("composer", realPath(composer))
		}
	}
	return nil
}

func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

// reuseBuild copies the output of the build named key into the release
// directory. It reports false, having changed nothing, when there is no such
// build or an environment it used is gone.
func (b *builder) reuseBuild(ctx context.Context, key string) (Result, bool, error) {
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		return Result{}, false, err
	}
	path, ok := envStore{dir: envsDir}.complete(key)
	if !ok {
		return Result{}, false, nil
	}
	data, err := os.ReadFile(filepath.Join(path, buildRecordFile))
	if err != nil {
		return Result{}, false, nil
	}
	var rec buildRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return Result{}, false, nil
	}
	for _, env := range rec.Result.Envs {
		if _, ok := (envStore{dir: filepath.Dir(env)}).complete(filepath.Base(env)); !ok {
			return Result{}, false, nil
		}
	}
	if rec.Result.Venv != "" && !isExecutable(filepath.Join(rec.Result.Venv, "bin", "granian")) {
		return Result{}, false, nil
	}
	b.rep.Step("Reusing the build of an unchanged tree (same source, config and toolchains)")
	start := time.Now()
	// Removals first: once the output is in place, a path may lead
	// through a link (node_modules) into a shared environment.
	tree := filepath.Join(path, buildTreeDir)
	if b.cred() != nil {
		// The release is the app's: its user changes it, so that no link
		// it put there is followed with hop3's rights.
		if len(rec.Removed) > 0 {
			if err := b.run(ctx, command{label: "remove what the build removed", dir: b.dir, env: b.env,
				argv: append([]string{"rm", "-rf", "--"}, rec.Removed...)}); err != nil {
				return Result{}, false, err
			}
		}
		if err := b.run(ctx, command{label: "copy build output", dir: b.dir, env: b.env,
			argv: []string{"cp", "-R", "--no-dereference", "--preserve=mode,timestamps,links", "--", tree + "/.", "."}}); err != nil {
			return Result{}, false, err
		}
	} else {
		for _, rel := range rec.Removed {
			if err := os.RemoveAll(filepath.Join(b.dir, rel)); err != nil {
				return Result{}, false, fmt.Errorf("copy build output: %w", err)
			}
		}
		if err := overlayTree(ctx, tree, b.dir); err != nil {
			return Result{}, false, fmt.Errorf("copy build output: %w", err)
		}
	}
	b.rep.Info("Build output copied in " + since(start))
	res := rec.Result
	for k, v := range res.Env {
		res.Env[k] = strings.ReplaceAll(v, releaseDirMark, b.dir)
	}
	res.Envs = append(res.Envs, path)
	res.CacheHits = append(res.CacheHits, "build")
	return res, true, nil
}

// saveBuild keeps what the build changed in the release directory since
// before was taken, for reuse by later builds with the same key. A failure
// costs the next push its shortcut only, so it is reported and not returned.
func (b *builder) saveBuild(ctx context.Context, key string, before treeSnapshot) {
	after, err := snapshotTree(b.dir)
	if err != nil {
		b.rep.Info(fmt.Sprintf("Could not keep the build output for reuse: %v", err))
		return
	}
	changed, removed := before.diff(after)
	rec := buildRecord{Result: b.res, Removed: removed}
	rec.Result.CacheHits = nil
	// Paths into this release (NODE_PATH, bin/ on PATH) must name the
	// release that reuses the record.
	rec.Result.Env = make(map[string]string, len(b.res.Env))
	for k, v := range b.res.Env {
		rec.Result.Env[k] = strings.ReplaceAll(v, b.dir, releaseDirMark)
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		b.rep.Info(fmt.Sprintf("Could not keep the build output for reuse: %v", err))
		return
	}
	envsDir, err := filepath.Abs(b.spec.EnvsDir)
	if err != nil {
		b.rep.Info(fmt.Sprintf("Could not keep the build output for reuse: %v", err))
		return
	}
	meta := map[string]string{
		"kind":    "build",
		"app":     b.spec.App,
		"created": time.Now().UTC().Format(time.RFC3339),
	}
	tops := topmost(changed, before)
	path, err := b.envStore(envsDir).create(key, b.spec.NoCache, meta, func(tmp, final string) error {
		tree := filepath.Join(tmp, buildTreeDir)
		if err := os.Mkdir(tree, 0o755); err != nil {
			return err
		}
		if b.cred() != nil {
			// The release is the app's: its user reads it, so that no link
			// it put there is followed with hop3's rights.
			if err := b.spec.As.Give(tree); err != nil {
				return err
			}
			if len(tops) == 0 {
				return nil
			}
			return b.run(ctx, command{label: "keep the build output", dir: b.dir, env: b.env,
				argv: append([]string{"cp", "-R", "--no-dereference", "--preserve=mode,timestamps,links", "--parents", "--"},
					append(tops, tree)...)})
		}
		for _, rel := range tops {
			src, dst := filepath.Join(b.dir, rel), filepath.Join(tree, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := cloneTree(ctx, src, dst, cloneOpts{}); err != nil {
				return err
			}
		}
		return nil
	}, func(tmp, final string) error {
		return writeNew(filepath.Join(tmp, buildRecordFile), append(data, '\n'))
	})
	if err != nil {
		b.rep.Info(fmt.Sprintf("Could not keep the build output for reuse: %v", err))
		return
	}
	b.res.Envs = append(b.res.Envs, path)
}

// fileStamp tells whether a file changed: a rewrite changes its size or
// modification time, a replacement its inode.
type fileStamp struct {
	mode  fs.FileMode
	size  int64
	mtime int64
	ino   uint64
}

// treeSnapshot maps the paths under a directory, relative to it, to their
// stamps.
type treeSnapshot map[string]fileStamp

func snapshotTree(dir string) (treeSnapshot, error) {
	snap := treeSnapshot{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		st := fileStamp{mode: info.Mode(), size: info.Size(), mtime: info.ModTime().UnixNano()}
		if sys, ok := info.Sys().(*syscall.Stat_t); ok {
			st.ino = uint64(sys.Ino)
		}
		if info.IsDir() {
			// Adding a file changes a directory's size and time; only
			// whether it exists counts.
			st.size, st.mtime, st.ino = 0, 0, 0
		}
		snap[rel] = st
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list release directory: %w", err)
	}
	return snap, nil
}

// topmost drops from changed (sorted, parents first) what lies under a
// directory that is new since before: copying that directory copies them.
func topmost(changed []string, before treeSnapshot) []string {
	var tops []string
	newDir := ""
	for _, rel := range changed {
		if newDir != "" && isWithin(newDir, rel) {
			continue
		}
		tops = append(tops, rel)
		newDir = ""
		if _, existed := before[rel]; !existed {
			newDir = rel
		}
	}
	return tops
}

// diff lists the paths of after that are new or changed since s, parents
// before children, and the paths of s that after lacks, the topmost only.
// A path whose type changed (a directory replaced by a link) is in both:
// removed first, it can be copied in again.
func (s treeSnapshot) diff(after treeSnapshot) (changed, removed []string) {
	for rel, st := range after {
		if old, ok := s[rel]; !ok || old != st {
			changed = append(changed, rel)
		}
	}
	sort.Strings(changed)
	var gone []string
	for rel, st := range s {
		if now, ok := after[rel]; !ok || now.mode.Type() != st.mode.Type() {
			gone = append(gone, rel)
		}
	}
	sort.Strings(gone)
	top := ""
	for _, rel := range gone {
		if top != "" && isWithin(top, rel) {
			continue
		}
		top = rel
		if parent, ok := after[filepath.Dir(rel)]; ok && !parent.mode.IsDir() && s[filepath.Dir(rel)].mode.IsDir() {
			// Its directory became a file or a link (a committed
			// node_modules replaced by the link): replacing that removes
			// it, and a removal through the link would reach the target.
			continue
		}
		removed = append(removed, rel)
	}
	return changed, removed
}

func isWithin(parent, rel string) bool {
	return len(rel) > len(parent) && rel[:len(parent)] == parent && rel[len(parent)] == filepath.Separator
}

// copyEntry copies one file, link or (empty) directory from src to dst,
// making dst's parents as needed.
func copyEntry(src, dst string) error {
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return cloneEntry(src, dst, info, false)
}

// overlayTree copies the tree at src over dst, replacing what is there.
func overlayTree(ctx context.Context, src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if p == src {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if info, err := os.Lstat(target); err == nil && info.IsDir() {
				return nil
			}
		}
		if err := os.RemoveAll(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return copyEntry(p, target)
	})
}
