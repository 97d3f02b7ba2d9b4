package procfile

import (
	"os"
	"path/filepath"
)

// names are where an app's Procfile may be, relative to its tree, in the
// order hop3 looks: hop3/Procfile lets an app keep a Procfile for another
// platform at its top.
var names = [...]string{"hop3/Procfile", "Procfile"}

// StaticSite is the Procfile of a tree that has none but an index.html at
// its top: a static site served from the top (Caddy's file server hides
// dotfiles such as .env and .git).
const StaticSite = "static: .\n"

// Where says where a tree's Procfile is. name is the first of hop3/Procfile
// and Procfile that isFile reports, slash-separated and relative to the
// tree; when there is neither, static tells whether an index.html at the
// tree's top makes it a static site (see StaticSite). isFile reports
// whether a regular file is at a slash-separated path of the tree, so that
// a tree held elsewhere than in a directory (a git branch) is read alike.
func Where(isFile func(name string) bool) (name string, static bool) {
	for _, n := range names {
		if isFile(n) {
			return n, false
		}
	}
	return "", isFile("index.html")
}

// Find is Where for the tree in the directory dir.
func Find(dir string) (name string, static bool) {
	return Where(func(name string) bool {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name)))
		return err == nil && info.Mode().IsRegular()
	})
}
