package buildpacks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// markerFile is written into an environment last, before it is renamed into
// place: an environment without it is not complete.
const markerFile = ".hop3-complete"

// tmpInfix marks a directory in which an environment is being built.
const tmpInfix = ".tmp-"

// staleTmpAge is how old a temporary build directory must be before
// PruneEnvs takes it for the leftover of a crashed build rather than a build
// in progress.
const staleTmpAge = time.Hour

// envStore is a directory of immutable environments named by content hash.
type envStore struct {
	dir string
	// as, when set, fills environments as the app's user and takes them
	// back before they are marked complete.
	as *BuildUser
	// shared, when its dir is set, receives the environment's shared
	// objects once no app can change them.
	shared sharedStore
}

// complete reports whether the environment named name exists and is
// complete.
func (s envStore) complete(name string) (string, bool) {
	path := filepath.Join(s.dir, name)
	info, err := os.Stat(filepath.Join(path, markerFile))
	return path, err == nil && info.Mode().IsRegular()
}

// create builds a new environment for key. fill receives tmp, an empty
// directory (the app's, when the build runs as the app's user), and final,
// where the environment will live; it fills tmp. seal, when not nil, runs
// after tmp is hop3's again and no app can change it: it may rewrite what
// records its own location (tmp) to final. Then the marker is written and
// tmp is renamed to final in one step, so no reader ever sees a partial
// environment. The environment is named key, or key plus a nonce when fresh
// is set or the name is taken, so an existing environment is never replaced.
// On failure nothing is left behind.
func (s envStore) create(key string, fresh bool, meta any, fill, seal func(tmp, final string) error) (string, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return "", fmt.Errorf("create environment store: %w", err)
	}
	name := key
	if _, err := os.Lstat(filepath.Join(s.dir, key)); fresh || err == nil {
		name = key + "-" + nonce()
	}
	final := filepath.Join(s.dir, name)
	holder, err := os.MkdirTemp(s.dir, name+tmpInfix)
	if err != nil {
		return "", fmt.Errorf("create environment: %w", err)
	}
	defer removeAll(holder)
	tmp := filepath.Join(holder, "env")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", fmt.Errorf("create environment: %w", err)
	}
	if s.as != nil {
		// The app's user reaches tmp through holder, which stays hop3's:
		// what hop3 writes beside tmp can not be swapped for a link.
		if err := os.Chmod(holder, 0o711); err != nil {
			return "", fmt.Errorf("create environment: %w", err)
		}
		if err := s.as.Give(tmp); err != nil {
			return "", err
		}
	}
	if err := fill(tmp, final); err != nil {
		return "", err
	}
	if s.as != nil {
		if err := s.as.Take(tmp); err != nil {
			return "", err
		}
	}
	if seal != nil {
		if err := seal(tmp, final); err != nil {
			return "", err
		}
	}
	// After seal, which may rewrite files in place: a shared copy must
	// never be written.
	s.shared.dedupe(tmp)
	data, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", fmt.Errorf("write environment marker: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, markerFile), append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write environment marker: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// A concurrent build of the same inputs may have won the race; its
		// environment is as good as ours.
		if _, ok := s.complete(name); ok {
			return final, nil
		}
		return "", fmt.Errorf("install environment: %w", err)
	}
	return final, nil
}

// PruneEnvs removes the environments in envsDir whose names are not in keep.
// Entries of keep may be names or paths (a Result.Venv or Result.Envs
// entry); only their last element counts. Temporary directories of builds in
// progress are left alone unless they are more than an hour old. Call it
// when no build of the app is running: a build may be copying from an
// environment it removes.
func PruneEnvs(envsDir string, keep []string) error {
	entries, err := os.ReadDir(envsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune environments: %w", err)
	}
	keepSet := make(map[string]bool, len(keep))
	for _, k := range keep {
		keepSet[filepath.Base(filepath.Clean(k))] = true
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if keepSet[name] {
			continue
		}
		if strings.Contains(name, tmpInfix) {
			info, err := e.Info()
			if err != nil || time.Since(info.ModTime()) < staleTmpAge {
				continue
			}
		}
		if err := removeAll(filepath.Join(envsDir, name)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune environments: %w", err)
	}
	return nil
}

// removeAll removes path, first making read-only directories writable (Go's
// module cache and some wheels install read-only trees).
func removeAll(path string) error {
	if err := os.RemoveAll(path); err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}

func nonce() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// keyHash accumulates the inputs of an environment. Every field is length
// prefixed, so that ("ab", "c") and ("a", "bc") differ.
type keyHash struct {
	h hash.Hash
}

func newKeyHash(kind string) *keyHash {
	k := &keyHash{h: sha256.New()}
	k.add("hop3-buildpacks", packVersion, kind)
	return k
}

func (k *keyHash) add(fields ...string) {
	for _, f := range fields {
		k.addBytes([]byte(f))
	}
}

func (k *keyHash) addBytes(b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	k.h.Write(n[:])
	k.h.Write(b)
}

// sum returns the environment name: the kind and 24 hex digits of the hash.
func (k *keyHash) sum(prefix string) string {
	return prefix + "-" + hex.EncodeToString(k.h.Sum(nil))[:24]
}

// skipInTree names directories that are never part of an app's source:
// version control, caches and dependency trees a build creates.
var skipInTree = map[string]bool{
	".git": true, ".hg": true, "node_modules": true, "__pycache__": true,
	".venv": true, ".mypy_cache": true, ".pytest_cache": true, ".ruff_cache": true,
}

// SourceHash hashes the source tree in dir as a build key sees it: names,
// modes and contents, without version control, caches and dependency trees.
func SourceHash(ctx context.Context, dir string) (string, error) {
	return hashTree(ctx, dir, skipInTree)
}

// hashTree hashes the names, modes and contents of the files under dir,
// leaving out the directories whose names skip holds.
func hashTree(ctx context.Context, dir string, skip map[string]bool) (string, error) {
	h := sha256.New()
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir && skip[d.Name()] {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash source tree: %w", err)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := os.Lstat(p)
		if err != nil {
			return "", fmt.Errorf("hash source tree: %w", err)
		}
		fmt.Fprintf(h, "%q %o\n", filepath.ToSlash(rel), info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("hash source tree: %w", err)
			}
			fmt.Fprintf(h, "-> %q\n", target)
		case info.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return "", fmt.Errorf("hash source tree: %w", err)
			}
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("hash source tree: %w", err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// copyTree copies the tree at src to dst, which must not exist. Symbolic
// links are copied as links (node_modules/.bin holds relative ones). On
// Linux the copy uses copy_file_range, which file systems with reflinks
// turn into a cheap clone.
func copyTree(ctx context.Context, src, dst string) error {
	return cloneTree(ctx, src, dst, cloneOpts{})
}

// cloneOpts says how cloneTree recreates a tree.
type cloneOpts struct {
	// hardLink links files to those of the source instead of copying them
	// (a file that cannot be linked, on another file system, is copied).
	// Such a file is the source's too: it must never be written in place.
	hardLink bool
	// skip, when set, leaves out the entries (and what is under them) for
	// which it reports true, given their path relative to the source.
	skip func(rel string) bool
	// dirOwner, when set, owns the directories made: that user may add,
	// remove and replace entries, but not write the linked files, which
	// stay their owner's.
	dirOwner *syscall.Credential
}

// cloneTree recreates the tree at src as dst; dst may exist as an empty
// directory.
func cloneTree(ctx context.Context, src, dst string, o cloneOpts) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if rel != "." && o.skip != nil && o.skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if rel == "." {
			if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
				return chownDir(target, o.dirOwner)
			}
		}
		if err := cloneEntry(p, target, info, o.hardLink); err != nil {
			return err
		}
		if info.IsDir() {
			return chownDir(target, o.dirOwner)
		}
		return nil
	})
}

func chownDir(path string, u *syscall.Credential) error {
	if u == nil {
		return nil
	}
	return os.Lchown(path, int(u.Uid), int(u.Gid))
}

// cloneEntry recreates one directory (empty), symbolic link or file; a
// file is hard linked when link is set and that works, else copied.
// Sockets and pipes have no business in an app's tree and are skipped.
func cloneEntry(src, dst string, info fs.FileInfo, link bool) error {
	switch {
	case info.IsDir():
		// Owner write permission is needed to fill the directory.
		return os.Mkdir(dst, info.Mode().Perm()|0o700)
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case info.Mode().IsRegular():
		if link && os.Link(src, dst) == nil {
			return nil
		}
		return copyFile(src, dst, info.Mode().Perm())
	}
	return nil
}

func copyFile(src, dst string, perm fs.FileMode) error {
	// A link put in the file's place after it was listed is not followed.
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// sameFileSystem reports whether a and b (or their nearest existing
// ancestors) are on the same file system.
func sameFileSystem(a, b string) bool {
	da, okA := device(a)
	db, okB := device(b)
	return okA && okB && da == db
}

// device returns the device number of the file system holding path or its
// nearest existing ancestor.
func device(path string) (uint64, bool) {
	p := filepath.Clean(path)
	for {
		info, err := os.Stat(p)
		if err == nil {
			st, ok := info.Sys().(*syscall.Stat_t)
			if !ok {
				return 0, false
			}
			return uint64(st.Dev), true
		}
		parent := filepath.Dir(p)
		if parent == p {
			return 0, false
		}
		p = parent
	}
}
