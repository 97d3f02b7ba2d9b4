package buildpacks

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Shared objects: apps built from the same requirements each get their own
// copy of the same native libraries (Granian's extension alone is 20 MB), and
// each copy fills its own page-cache pages. A complete environment's *.so
// files are therefore replaced by hard links to one content-addressed copy
// per machine, so that all the processes mapping a library share its pages.
//
// This is safe because the copy is hop3's, read-only to everyone else, and
// made fresh by hop3 from content it hashed: no app ever held it open for
// writing (an app's build could keep a writable descriptor to a file of its
// own environment across Take, so that file itself is never the one shared).
// A hard link only works within one file system; elsewhere, or on any
// error, the environment keeps its own copy.

// sharedLockFile is taken shared by builds while they link and exclusively
// by PruneSharedObjects, so that no copy is removed between a build finding
// it and linking it.
const sharedLockFile = ".lock"

// sharedTmpPrefix names copies being written into the store.
const sharedTmpPrefix = ".tmp-"

// isSharedObject reports whether name is a shared library's: what processes
// map, and so what is worth sharing.
func isSharedObject(name string) bool {
	return strings.HasSuffix(name, ".so") || strings.Contains(name, ".so.")
}

// sharedStore is the machine-wide directory of shared objects.
type sharedStore struct {
	dir string
	log *slog.Logger
}

// usable reports whether the store can be trusted with what apps run: it
// must be hop3's and writable by no one else.
func (s sharedStore) usable() bool {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		s.debug("shared objects: store unavailable", "dir", s.dir, "err", err)
		return false
	}
	info, err := os.Lstat(s.dir)
	if err != nil || !info.IsDir() {
		s.debug("shared objects: store is not a directory", "dir", s.dir)
		return false
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() || info.Mode().Perm()&0o022 != 0 {
		s.debug("shared objects: store is not hop3's alone, left unused", "dir", s.dir)
		return false
	}
	return true
}

func (s sharedStore) debug(msg string, args ...any) {
	if s.log != nil {
		s.log.Debug(msg, args...)
	}
}

// lock takes the store's lock, shared or exclusive; the returned function
// releases it.
func (s sharedStore) lock(how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.dir, sharedLockFile), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// dedupe replaces the shared objects under root, a complete environment no
// app can write any more, by links to the store's copies. It never fails: a
// file that cannot be shared stays as it is. It returns how many files now
// share a copy.
func (s sharedStore) dedupe(root string) int {
	if s.dir == "" || !s.usable() {
		return 0
	}
	if !sameFileSystem(s.dir, root) {
		s.debug("shared objects: environment on another file system, not shared", "env", root)
		return 0
	}
	unlock, err := s.lock(syscall.LOCK_SH)
	if err != nil {
		s.debug("shared objects: lock store", "err", err)
		return 0
	}
	defer unlock()
	n := 0
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !isSharedObject(d.Name()) {
			return nil
		}
		if err := s.share(p); err != nil {
			s.debug("shared objects: kept own copy", "file", p, "err", err)
			return nil
		}
		n++
		return nil
	})
	return n
}

// share replaces the file at p by a link to the store's copy of its content,
// making that copy first when the store has none.
func (s sharedStore) share(p string) error {
	info, err := os.Lstat(p)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || !info.Mode().IsRegular() {
		return errors.New("not a regular file")
	}
	// Only what is hop3's and read-only to others may stand for every app's
	// copy; set-id bits have no business in a library.
	if int(st.Uid) != os.Geteuid() || info.Mode().Perm()&0o022 != 0 || info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
		return errors.New("writable by others or not hop3's")
	}
	sum, err := hashFile(p, nil)
	if err != nil {
		return err
	}
	perm := info.Mode().Perm()
	shared := filepath.Join(s.dir, fmt.Sprintf("%s-%04o", sum, perm))
	if ok, err := s.valid(shared, perm); err != nil {
		return err
	} else if !ok {
		if err := s.add(p, sum, perm, shared); err != nil {
			return err
		}
	}
	sharedInfo, err := os.Lstat(shared)
	if err != nil {
		return err
	}
	if os.SameFile(info, sharedInfo) {
		return nil
	}
	// A link under a temporary name, then renamed over the file: readers
	// of the environment see the old file or the shared one, never none.
	tmp := filepath.Join(filepath.Dir(p), ".hop3-so-"+nonce())
	if err := os.Link(shared, tmp); err != nil {
		return fmt.Errorf("link shared copy: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("link shared copy: %w", err)
	}
	return nil
}

// valid reports whether the store holds a usable copy at path.
func (s sharedStore) valid(path string, perm fs.FileMode) (bool, error) {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok || !info.Mode().IsRegular() || int(st.Uid) != os.Geteuid() || info.Mode().Perm() != perm {
		return false, fmt.Errorf("shared copy %s is not hop3's regular file", filepath.Base(path))
	}
	return true, nil
}

// add writes a fresh copy of p into the store as shared, checking that what
// it copied is what was hashed.
func (s sharedStore) add(p, sum string, perm fs.FileMode, shared string) error {
	out, err := os.CreateTemp(s.dir, sharedTmpPrefix)
	if err != nil {
		return err
	}
	tmp := out.Name()
	defer os.Remove(tmp)
	got, err := hashFile(p, out)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got != sum {
		return errors.New("file changed while it was copied")
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	// Another build may have added the same content meanwhile: its copy
	// is as good.
	if err := os.Link(tmp, shared); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// hashFile returns the hex SHA-256 of the file at path, copying it to w when
// w is not nil. A link put in the file's place is not followed.
func hashFile(path string, w io.Writer) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	dst := io.Writer(h)
	if w != nil {
		dst = io.MultiWriter(h, w)
	}
	if _, err := io.Copy(dst, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// PruneSharedObjects removes the copies in the shared-object store dir that
// no environment links any more (link count 1), and leftovers of copies
// interrupted mid-write. It takes the store's lock exclusively: a build
// holds it shared from finding a copy to linking it, so a copy is never
// removed under a build about to link it. A missing store is not an error.
func PruneSharedObjects(dir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	s := sharedStore{dir: dir}
	unlock, err := s.lock(syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("prune shared objects: %w", err)
	}
	defer unlock()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("prune shared objects: %w", err)
	}
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if name == sharedLockFile || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		// With the lock held no copy is being written: a temporary file
		// is the leftover of a build that died.
		if st.Nlink == 1 {
			if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune shared objects: %w", err)
	}
	return nil
}
