package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"hop3/hooks"
)

// initRepo creates the bare repository of an app when it does not exist.
func initRepo(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err == nil {
		return nil
	}
	if _, err := git.PlainInit(dir, true); err != nil {
		return fmt.Errorf("init repository: %w", err)
	}
	return setHead(dir, "main")
}

// setHead points HEAD at branch, so that a clone checks out what is deployed.
func setHead(dir, branch string) error {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	ref := plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch))
	if err := r.Storer.SetReference(ref); err != nil {
		return fmt.Errorf("set HEAD: %w", err)
	}
	return nil
}

// refs lists the repository's refs (name -> revision), HEAD excluded.
func refs(dir string) (map[string]string, error) {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	iter, err := r.References()
	if err != nil {
		return nil, fmt.Errorf("list refs: %w", err)
	}
	out := map[string]string{}
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if ref.Type() == plumbing.HashReference && ref.Name() != plumbing.HEAD {
			out[ref.Name().String()] = ref.Hash().String()
		}
		return nil
	})
	return out, err
}

// resetRef puts a ref back to where it was before a push whose deploy failed,
// so the repository keeps naming what runs.
func resetRef(dir string, u hooks.Update) error {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	name := plumbing.ReferenceName(u.Ref)
	if u.Old == hooks.ZeroRev || u.Old == "" {
		return r.Storer.RemoveReference(name)
	}
	return r.Storer.SetReference(plumbing.NewHashReference(name, plumbing.NewHash(u.Old)))
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

// checkout writes the tree of revision rev into dst (which must not exist).
// Symlinks are kept only when they stay inside dst: a pushed tree must not
// reach another app's files or hop3's own.
func checkout(repoDir, rev, dst string) error {
	r, err := git.PlainOpen(repoDir)
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	commit, err := r.CommitObject(plumbing.NewHash(rev))
	if err != nil {
		return fmt.Errorf("read commit %s: %w", rev, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return fmt.Errorf("read tree: %w", err)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, entry, err := walker.Next()
		if errors.Is(err, io.EOF) {
			// Each link was checked alone; chains of them are checked now.
			return checkLinks(dst)
		}
		if err != nil {
			return fmt.Errorf("walk tree: %w", err)
		}
		if strings.HasPrefix(name, ".git/") || name == ".git" {
			continue
		}
		path := filepath.Join(dst, filepath.FromSlash(name))
		if !within(dst, path) {
			return fmt.Errorf("path %q leaves the app directory", name)
		}
		switch entry.Mode {
		case filemode.Dir:
			if err := os.MkdirAll(path, 0o755); err != nil {
				return err
			}
		case filemode.Submodule:
			continue
		case filemode.Symlink:
			target, err := blobString(r, entry.Hash)
			if err != nil {
				return err
			}
			resolved := target
			if !filepath.IsAbs(target) {
				resolved = filepath.Join(filepath.Dir(path), target)
			}
			if filepath.IsAbs(target) || !within(dst, resolved) {
				return fmt.Errorf("symlink %s points outside the app (%s)", name, target)
			}
			if err := os.Symlink(target, path); err != nil {
				return err
			}
		default:
			mode := os.FileMode(0o644)
			if entry.Mode == filemode.Executable {
				mode = 0o755
			}
			if err := writeBlob(r, entry.Hash, path, mode); err != nil {
				return fmt.Errorf("write %s: %w", name, err)
			}
		}
	}
}

func blobString(r *git.Repository, h plumbing.Hash) (string, error) {
	blob, err := r.BlobObject(h)
	if err != nil {
		return "", err
	}
	rd, err := blob.Reader()
	if err != nil {
		return "", err
	}
	defer rd.Close()
	b, err := io.ReadAll(io.LimitReader(rd, 4096))
	return string(b), err
}

func writeBlob(r *git.Repository, h plumbing.Hash, path string, mode os.FileMode) error {
	blob, err := r.BlobObject(h)
	if err != nil {
		return err
	}
	rd, err := blob.Reader()
	if err != nil {
		return err
	}
	defer rd.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rd); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// within reports whether path is dir or below it, lexically.
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)))
}
