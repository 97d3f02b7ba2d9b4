package addons

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// KeepBackups is how many backups of each add-on are kept; taking one more
// removes the oldest.
const KeepBackups = 10

// backupTime names backups; it sorts as text in time order.
const backupTime = "20060102T150405.000Z"

// Backup is one backup file of an add-on.
type Backup struct {
	Name string    `json:"name"` // the file name, what addons:restore takes
	Size int64     `json:"size"`
	Time time.Time `json:"time"`
}

var backupFile = regexp.MustCompile(`^(.+)-(\d{8}T\d{6}\.\d{3}Z)\.(dump|rdb)$`)

// backupName is the file name of a backup of add-on name of kind k taken at t.
func backupName(name string, k Kind, t time.Time) string {
	ext := "rdb"
	if k == Postgres {
		ext = "dump"
	}
	return name + "-" + t.UTC().Format(backupTime) + "." + ext
}

// parseBackup tells whether file is a backup of add-on name, and when it was
// taken.
func parseBackup(file, name string) (time.Time, bool) {
	m := backupFile.FindStringSubmatch(file)
	if m == nil || m[1] != name {
		return time.Time{}, false
	}
	t, err := time.Parse(backupTime, m[2])
	return t, err == nil
}

// listBackups lists the complete backups of add-on name in dir, oldest first.
// Files being written have a temporary name that does not match.
func listBackups(dir, name string) ([]Backup, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	var out []Backup
	for _, e := range entries {
		t, ok := parseBackup(e.Name(), name)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		out = append(out, Backup{Name: e.Name(), Size: info.Size(), Time: t})
	}
	slices.SortFunc(out, func(a, b Backup) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// prune removes the oldest backups of add-on name beyond keep.
func prune(dir, name string, keep int) error {
	list, err := listBackups(dir, name)
	if err != nil {
		return err
	}
	for len(list) > keep {
		if err := os.Remove(filepath.Join(dir, list[0].Name)); err != nil {
			return fmt.Errorf("remove old backup: %w", err)
		}
		list = list[1:]
	}
	return nil
}
