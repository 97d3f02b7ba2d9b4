package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"golang.org/x/sys/unix"

	"hop3/bytesize"
	"hop3/gitrepo"
)

// initRepo creates the bare repository of an app when it does not exist.
func initRepo(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return nil
	}
	if _, err := git.PlainInit(dir, true); err != nil {
		return fmt.Errorf("init repository: %w", err)
	}
	return gitrepo.SetHead(dir, gitrepo.DeployBranches[0])
}

// resolveBranch returns the revision a branch points at.
func resolveBranch(dir, branch string) (string, error) {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return "", fmt.Errorf("open repository: %w", err)
	}
	ref, err := r.Reference(plumbing.NewBranchReferenceName(branch), true)
	if err != nil {
		return "", fmt.Errorf("branch %s: %w", branch, err)
	}
	return ref.Hash().String(), nil
}

// gitSource is where a revision's objects are read: an app's repository,
// plus, during a push, git's quarantine variables (the pushed objects are
// only there until the pre-receive hook accepts them).
type gitSource struct {
	repo string
	env  []string // KEY=VALUE added to git's environment
}

func (g gitSource) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir", g.repo}, args...)...)
	cmd.Env = append(append(gitrepo.Env(g.repo), "GIT_CONFIG_NOSYSTEM=1"), g.env...)
	return cmd
}

// treeEntry is one blob or submodule of a tree, as git ls-tree -r -l shows it.
type treeEntry struct {
	mode string // 100644, 100755, 120000 (symlink), 160000 (submodule)
	oid  string
	size int64
	path string // slash-separated, relative to the tree
}

// maxLinkTarget is the longest symlink target checked out (Linux's PATH_MAX).
const maxLinkTarget = 4096

// ErrReleaseTooLarge reports a tree whose files add up to more than the cap.
var ErrReleaseTooLarge = errors.New("release over the size cap")

// checkout writes the tree of revision rev into dst (which must not
// exist) and returns notes for the pusher (submodules skipped). Nothing is
// written before the whole tree has been read and measured against
// maxSize (0: no cap). Directories and files are created one path
// component at a time, never following a symbolic link (O_NOFOLLOW), and
// every symbolic link is created last: a tree whose links point into each
// other (a -> ., b -> a/.., then a directory named like b) cannot lead a
// write out of dst. A link whose target leaves dst, alone or through
// other links, refuses the tree.
func checkout(ctx context.Context, src gitSource, rev, dst string, maxSize int64) ([]string, error) {
	entries, err := lsTree(ctx, src, rev)
	if err != nil {
		return nil, err
	}
	var total int64
	for _, e := range entries {
		total += e.size
	}
	if maxSize > 0 && total > maxSize {
		return nil, fmt.Errorf("%w: its files add up to %s, over the cap of %s (MAX_RELEASE_SIZE, hop3 serve --max-release-size)",
			ErrReleaseTooLarge, bytesize.Format(total), bytesize.Format(maxSize))
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return nil, err
	}
	w, err := openTreeWriter(dst)
	if err != nil {
		return nil, err
	}
	defer w.close()
	cat, err := startCatFile(ctx, src)
	if err != nil {
		return nil, err
	}
	defer cat.close()

	var notes []string
	var links []treeEntry
	for _, e := range entries {
		switch e.mode {
		case "160000":
			notes = append(notes, fmt.Sprintf("submodule %s skipped: hop3 does not fetch submodules", e.path))
		case "120000":
			links = append(links, e)
		default:
			perm := uint32(0o644)
			if e.mode == "100755" {
				perm = 0o755
			}
			if err := w.writeFile(e.path, perm, func(f io.Writer) error { return cat.copy(e.oid, f) }); err != nil {
				return nil, fmt.Errorf("write %s: %w", e.path, err)
			}
		}
	}
	for _, e := range links {
		if e.size > maxLinkTarget {
			return nil, fmt.Errorf("symlink %s has a target of %d bytes, more than a path can hold", e.path, e.size)
		}
		var b strings.Builder
		if err := cat.copy(e.oid, &b); err != nil {
			return nil, fmt.Errorf("read symlink %s: %w", e.path, err)
		}
		target := b.String()
		if target == "" || strings.ContainsRune(target, 0) || filepath.IsAbs(target) ||
			!within(".", filepath.Join(filepath.Dir(filepath.FromSlash(e.path)), target)) {
			return nil, fmt.Errorf("symlink %s points outside the app (%s)", e.path, target)
		}
		if err := w.symlink(e.path, target); err != nil {
			return nil, fmt.Errorf("create symlink %s: %w", e.path, err)
		}
	}
	// Each link was checked alone; chains of them are checked now.
	return notes, checkLinks(dst)
}

// lsTree lists the blobs and submodules of rev's tree and checks that the
// tree can be written: every name a plain one, no path both a file and a
// directory, no path twice. git's fsck refuses such trees on receive; this
// holds for trees stored before it did too.
func lsTree(ctx context.Context, src gitSource, rev string) ([]treeEntry, error) {
	if !isHexRev(rev) {
		return nil, fmt.Errorf("read tree: %q is not a revision", rev)
	}
	var stderr strings.Builder
	cmd := src.command(ctx, "ls-tree", "-r", "-z", "-l", "--full-tree", rev)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s: %v: %s", short(rev), err, strings.TrimSpace(stderr.String()))
	}
	var entries []treeEntry
	files := map[string]bool{}
	dirs := map[string]bool{}
	for _, rec := range strings.Split(string(out), "\x00") {
		if rec == "" {
			continue
		}
		meta, path, ok := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			return nil, fmt.Errorf("read tree of %s: unexpected line %q", short(rev), rec)
		}
		e := treeEntry{mode: f[0], oid: f[2], path: path}
		if f[3] != "-" {
			if e.size, err = strconv.ParseInt(f[3], 10, 64); err != nil {
				return nil, fmt.Errorf("read tree of %s: unexpected size in %q", short(rev), rec)
			}
		}
		switch {
		case e.mode == "160000" && f[1] == "commit":
		case (e.mode == "100644" || e.mode == "100755" || e.mode == "100664" || e.mode == "120000") && f[1] == "blob":
		default:
			return nil, fmt.Errorf("tree entry %s has mode %s (%s), which hop3 does not check out", path, e.mode, f[1])
		}
		parts := strings.Split(path, "/")
		skip := false
		for _, p := range parts {
			if p == "" || p == "." || p == ".." || strings.ContainsRune(p, 0) {
				return nil, fmt.Errorf("malformed tree: path %q", path)
			}
			if strings.EqualFold(p, ".git") {
				skip = true // a repository inside the release is never wanted
			}
		}
		if skip {
			continue
		}
		if files[path] || dirs[path] {
			return nil, fmt.Errorf("malformed tree: %s appears twice", path)
		}
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/")
			if files[d] {
				return nil, fmt.Errorf("malformed tree: %s is both a file and a directory", d)
			}
			dirs[d] = true
		}
		files[path] = true
		entries = append(entries, e)
	}
	return entries, nil
}

func isHexRev(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// catFile reads blobs through one git cat-file --batch.
type catFile struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func startCatFile(ctx context.Context, src gitSource) (*catFile, error) {
	cmd := src.command(ctx, "cat-file", "--batch")
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start git cat-file: %w", err)
	}
	return &catFile{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 64<<10)}, nil
}

// copy writes the content of blob oid to w.
func (c *catFile) copy(oid string, w io.Writer) error {
	if _, err := io.WriteString(c.in, oid+"\n"); err != nil {
		return fmt.Errorf("read object %s: %w", oid, err)
	}
	header, err := c.out.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read object %s: %w", oid, err)
	}
	f := strings.Fields(header)
	if len(f) != 3 || f[1] != "blob" {
		return fmt.Errorf("read object %s: git says %q", oid, strings.TrimSpace(header))
	}
	size, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return fmt.Errorf("read object %s: git says %q", oid, strings.TrimSpace(header))
	}
	if _, err := io.CopyN(w, c.out, size); err != nil {
		return err
	}
	if b, err := c.out.ReadByte(); err != nil || b != '\n' {
		return fmt.Errorf("read object %s: no end of object", oid)
	}
	return nil
}

func (c *catFile) close() {
	c.in.Close()
	io.Copy(io.Discard, c.out)
	c.cmd.Wait()
}

// treeWriter creates files below a root directory, opening each path
// component relative to the one before with O_NOFOLLOW: no write can pass
// through a symbolic link, whatever the tree holds.
type treeWriter struct {
	root    int
	curPath string // the directory whose descriptor is cached
	curFD   int
}

func openTreeWriter(dir string) (*treeWriter, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return &treeWriter{root: fd, curFD: -1}, nil
}

// dir returns a descriptor of directory rel (slash-separated, "" for the
// root), creating what is missing. The caller does not close it.
func (w *treeWriter) dir(rel string) (int, error) {
	if rel == "" {
		return w.root, nil
	}
	if w.curFD >= 0 && w.curPath == rel {
		return w.curFD, nil
	}
	fd := w.root
	for _, name := range strings.Split(rel, "/") {
		if err := unix.Mkdirat(fd, name, 0o755); err != nil && err != unix.EEXIST {
			w.release(fd)
			return -1, fmt.Errorf("create directory %s: %w", rel, err)
		}
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		w.release(fd)
		if err != nil {
			return -1, fmt.Errorf("open directory %s: %w", rel, err)
		}
		fd = next
	}
	if w.curFD >= 0 {
		unix.Close(w.curFD)
	}
	w.curPath, w.curFD = rel, fd
	return fd, nil
}

// release closes fd unless it is the root or the cached directory.
func (w *treeWriter) release(fd int) {
	if fd != w.root && fd != w.curFD {
		unix.Close(fd)
	}
}

func splitPath(rel string) (dir, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

func (w *treeWriter) writeFile(rel string, perm uint32, fill func(io.Writer) error) error {
	dir, name := splitPath(rel)
	dfd, err := w.dir(dir)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), rel)
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	// The umask may have taken the executable bits.
	if err := f.Chmod(os.FileMode(perm)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (w *treeWriter) symlink(rel, target string) error {
	dir, name := splitPath(rel)
	dfd, err := w.dir(dir)
	if err != nil {
		return err
	}
	return unix.Symlinkat(target, dfd, name)
}

func (w *treeWriter) close() {
	if w.curFD >= 0 {
		unix.Close(w.curFD)
	}
	unix.Close(w.root)
}

// within reports whether path is dir or below it, lexically.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}
