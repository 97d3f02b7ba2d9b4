package app

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"hop3/internal/ui"
)

// A release directory is disposable: the next deploy starts from the
// commit, so whatever an app writes into its working directory (an SQLite
// database, uploads) is gone after it. hop3 does not forbid such writes (a
// release may be writable by its app, as on Heroku); it records the files
// a release holds when its build is done, and the next deploy names the
// files that appeared since, pointing to DATA_DIR.

// stateShown bounds the files named; the rest are counted.
const stateShown = 5

// writeManifest records the files below dir (NUL-separated relative paths).
func writeManifest(dir, path string) error {
	files, err := releaseFiles(dir)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, f := range files {
		b.WriteString(f)
		b.WriteByte(0)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// releaseFiles lists the regular files and symbolic links below dir,
// leaving out what runtimes write by themselves as a cache (Python's
// bytecode) and dependency trees (node_modules), which are never state.
func releaseFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "__pycache__", "node_modules", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".pyc") || !(d.Type().IsRegular() || d.Type()&fs.ModeSymlink != 0) {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(files)
	return files, err
}

// newFiles lists the files below dir that the manifest at path does not.
func newFiles(dir, path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	known := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		if i := bytes.IndexByte(data, 0); i >= 0 {
			return i + 1, data[:i], nil
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		known[sc.Text()] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	files, err := releaseFiles(dir)
	if err != nil {
		return nil, err
	}
	var added []string
	for _, f := range files {
		if !known[f] {
			added = append(added, f)
		}
	}
	return added, nil
}

// reportState tells the pusher about files that appeared in the live
// release's directory since it was built: the new release will not have
// them.
func (m *Manager) reportState(app string, live int, out *ui.Writer) {
	added, err := newFiles(m.paths.Release(app, live), m.paths.Manifest(app, live))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("compare the live release with its files", "app", app, "release", live, "err", err)
		}
		return
	}
	if len(added) == 0 {
		return
	}
	shown := added
	more := ""
	if len(added) > stateShown {
		shown = added[:stateShown]
		more = fmt.Sprintf(" and %d more", len(added)-stateShown)
	}
	out.Info(fmt.Sprintf("warning: v%d wrote %d file(s) into its release directory since it was built: %s%s", live, len(added), strings.Join(shown, ", "), more))
	out.Info(fmt.Sprintf("the new release starts from the commit without them: keep state in $DATA_DIR (%s), which every release shares", m.paths.Data(app)))
}
