package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newStore opens a fresh store in a temporary directory.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// mustApp creates apps or fails the test.
func mustApp(t *testing.T, s *Store, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := s.CreateApp(t.Context(), n); err != nil {
			t.Fatal(err)
		}
	}
}

// count returns the number of rows in a table, read behind the API's back.
func count(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.db.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOpenSettings(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hop3.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("database mode = %v, want no group or other access", perm)
	}

	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
	}
	for _, tt := range tests {
		var got string
		if err := s.db.QueryRowContext(ctx, "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %q, want %q", tt.pragma, got, tt.want)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check on a fresh store: %v", err)
	}
}

func TestOpenKeepsExistingMode(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "hop3.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o640 {
		t.Errorf("mode = %v, want the existing 0640", perm)
	}
}

func TestOpenOddPaths(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"a b", "q?x=1", "hash#frag", "pct%41", "colon:x", "uni-é"} {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			d := filepath.Join(t.TempDir(), dir)
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(d, "hop3.db")
			s, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			mustApp(t, s, "web")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The data must land in the file asked for, not one named after
			// a misread URI.
			entries, err := os.ReadDir(d)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), "hop3.db") {
					t.Errorf("stray file %q in %s", e.Name(), d)
				}
			}
			s, err = Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.App(t.Context(), "web"); err != nil {
				t.Errorf("app lost on reopen: %v", err)
			}
		})
	}
}

func TestOpenFails(t *testing.T) {
	t.Parallel()
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "hop3.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
	path := filepath.Join(t.TempDir(), "hop3.db")
	if err := os.WriteFile(path, []byte("this is not a database, only some text that is long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path); err == nil {
		t.Error("Open of a file that is not a database succeeded")
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hop3.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mustApp(t, s, "web")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := count(t, s, "schema_migrations"), len(migrations()); got != want {
		t.Errorf("schema_migrations has %d rows after reopen, want %d", got, want)
	}
	n, err := migrate(ctx, s.db, migrations())
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("migrating an up-to-date database applied %d steps", n)
	}
	if _, err := s.App(ctx, "web"); err != nil {
		t.Errorf("data lost across reopen: %v", err)
	}
}

func TestMigrateSteps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	base := migrations()

	// A failing step leaves neither its tables nor its version behind.
	bad := append(slices.Clone(base), "CREATE TABLE half (x INTEGER); THIS IS NOT SQL;")
	if _, err := migrate(ctx, s.db, bad); err == nil {
		t.Fatal("migrate with a broken step succeeded")
	}
	if got := count(t, s, "schema_migrations"); got != len(base) {
		t.Errorf("versions after failed step = %d, want %d", got, len(base))
	}
	var name string
	err := s.db.QueryRowContext(ctx, "SELECT name FROM sqlite_master WHERE name = 'half'").Scan(&name)
	if !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("table from failed step exists (err %v)", err)
	}

	// A new step applies once.
	next := append(slices.Clone(base), "CREATE TABLE extra (x INTEGER)")
	for i, want := range []int{1, 0} {
		n, err := migrate(ctx, s.db, next)
		if err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("run %d applied %d steps, want %d", i, n, want)
		}
	}

	// An older program refuses a newer database.
	if _, err := migrate(ctx, s.db, base); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("migrate with fewer steps than applied: err = %v, want one saying newer", err)
	}
}

func TestCheckFindsBrokenForeignKeys(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hop3.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	// Another writer with foreign keys off can leave orphans behind.
	raw, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=off&_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(ctx, "INSERT INTO config (app, key, value) VALUES ('ghost', 'K', 'v')"); err != nil {
		t.Fatal(err)
	}
	err = s.Check(ctx)
	if err == nil || !strings.Contains(err.Error(), "config") {
		t.Errorf("Check = %v, want an error naming the config table", err)
	}
}

func TestClosedStore(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apps(t.Context()); err == nil {
		t.Error("Apps on a closed store succeeded")
	}
}

// TestHostileStrings stores values that would break SQL built by string
// concatenation and expects them back unchanged.
func TestHostileStrings(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	names := []string{
		`x'); DROP TABLE apps; --`,
		`" OR 1=1 --`,
		`%_*?`,
		"nul\x00byte",
		"",
	}
	for _, n := range names {
		mustApp(t, s, n)
		if err := s.SetConfig(ctx, n, map[string]string{n: n}); err != nil {
			t.Fatal(err)
		}
	}
	apps, err := s.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != len(names) {
		t.Fatalf("got %d apps, want %d", len(apps), len(names))
	}
	for _, n := range names {
		cfg, err := s.Config(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg) != 1 || cfg[n] != n {
			t.Errorf("config of %q = %q", n, cfg)
		}
	}
	// LIKE wildcards in a name must not match other apps.
	if _, err := s.App(ctx, "%"); !errors.Is(err, ErrNotFound) {
		t.Errorf("App(%%) = %v, want ErrNotFound", err)
	}
}
