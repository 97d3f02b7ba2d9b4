package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxLinkHops bounds the links followed to resolve one path, as the
// kernel's ELOOP does.
const maxLinkHops = 40

// checkLinks refuses a checked-out tree in which a symbolic link, followed
// through the links beside it, leads outside dir. Checking each link's own
// text misses chains: with a -> . and b -> a/.. both look inside, but b is
// dir's parent, and c -> b/b2/.. climbs on from there.
func checkLinks(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		if _, err := resolveWithin(dir, rel); err != nil {
			target, _ := os.Readlink(path)
			return fmt.Errorf("symlink %s points outside the app (%s)", filepath.ToSlash(rel), target)
		}
		return nil
	})
}

var errLeaves = errors.New("leaves the directory")

// resolveWithin follows rel (relative to root) one component at a time,
// through every symbolic link on the way, and returns where it leads; it
// fails when the path would go above root, through an absolute link, or
// through too many links. Missing components are taken as plain names.
func resolveWithin(root, rel string) (string, error) {
	var below []string // components under root, all real directories or names
	pending := strings.Split(filepath.ToSlash(rel), "/")
	hops := 0
	for len(pending) > 0 {
		c := pending[0]
		pending = pending[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(below) == 0 {
				return "", errLeaves
			}
			below = below[:len(below)-1]
			continue
		}
		cur := filepath.Join(root, filepath.Join(below...), c)
		fi, err := os.Lstat(cur)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			below = append(below, c)
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", errors.New("too many levels of symbolic links")
		}
		target, err := os.Readlink(cur)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			return "", errLeaves
		}
		// The target is relative to the link's directory, which is below.
		pending = append(strings.Split(filepath.ToSlash(target), "/"), pending...)
	}
	return filepath.Join(root, filepath.Join(below...)), nil
}
