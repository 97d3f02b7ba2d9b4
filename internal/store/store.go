// Package store keeps hop3's state in one SQLite file: SSH keys, apps and
// their releases, config vars, process scale, domains and an event log.
//
// The daemon and the hop3 CLI may open the same file at once, so every
// connection runs in WAL mode with a busy timeout and takes the write lock
// at the start of each transaction. Callers validate names and values; the
// store accepts any string and always passes values as query parameters.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// ErrNotFound reports that the app, key, release or domain asked for does
// not exist.
var ErrNotFound = errors.New("not found")

// ErrExists reports that a key, app or domain would duplicate another.
var ErrExists = errors.New("already exists")

// busyTimeout is how long a connection waits for another writer, possibly in
// another process, before giving up with "database is locked". Transactions
// here last milliseconds, so reaching it means something is stuck.
const busyTimeout = 10 * time.Second

// Store is the state database. It is safe for concurrent use.
type Store struct {
	db *sql.DB
}

// Open opens the database at path, creating it if needed (readable by its
// owner only, since config vars hold secrets), and brings its schema up to
// date.
func Open(path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// SQLite would create the file 0644; create it first so secrets are not
	// world-readable. SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	db, err := sql.Open("sqlite3", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One connection per process serialises this process's goroutines
	// without lock contention; the busy timeout covers other processes.
	db.SetMaxOpenConns(1)
	db.SetConnMaxLifetime(0)

	ctx := context.Background()
	if _, err := migrate(ctx, db, migrations()); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", path, err), db.Close())
	}
	return &Store{db: db}, nil
}

// dsn builds the driver's data source name for an absolute path. A file: URI
// with an escaped path keeps '?', '#' and '%' in file names from being read
// as URI syntax.
func dsn(abs string) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "NORMAL")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	// BEGIN IMMEDIATE takes the write lock up front. A deferred transaction
	// that reads and then writes fails at once with SQLITE_BUSY when
	// another process wrote in between, without waiting on the timeout.
	q.Set("_txlock", "immediate")
	u := url.URL{Path: filepath.ToSlash(abs)}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Check verifies the database file and its foreign keys. It returns nil when
// both are sound, and otherwise an error listing what SQLite found.
func (s *Store) Check(ctx context.Context) error {
	msgs, err := s.strings(ctx, "PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	if len(msgs) != 1 || msgs[0] != "ok" {
		return fmt.Errorf("check store: integrity: %s", strings.Join(msgs, "; "))
	}

	rows, err := s.db.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return fmt.Errorf("check store: %w", err)
		}
		bad = append(bad, fmt.Sprintf("%s row %d has no %s", table, rowid.Int64, parent))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("check store: foreign keys: %s", strings.Join(bad, "; "))
	}
	return nil
}

// strings runs a query whose rows are single strings.
func (s *Store) strings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// inTx runs fn inside a write transaction and commits when fn returns nil.
// fn must use tx, never s.db: the pool holds one connection, which tx owns.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return fmt.Errorf("%w; additionally, rolling back: %v", err, rerr)
		}
		return err
	}
	return tx.Commit()
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// appExists returns ErrNotFound when no app has that name.
func appExists(ctx context.Context, q querier, app string) error {
	var one int
	err := q.QueryRowContext(ctx, "SELECT 1 FROM apps WHERE name = ?", app).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("app %w", ErrNotFound)
	}
	return err
}

// now is the time stored for new rows.
func now() time.Time { return time.Now().UTC() }

// toDB and fromDB convert times to and from the integer Unix nanoseconds
// stored in the database; zero stays zero so that "not yet" survives a
// round trip.
func toDB(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromDB(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
