package store

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations returns the schema steps in order. Step i (from 0) is schema
// version i+1. Released steps are never edited: a change is a new step.
func migrations() []string {
	return []string{
		// 1: the initial schema. Times are Unix nanoseconds, 0 for "not
		// yet". Enums are stored as their names so the file reads the same
		// in the sqlite3 shell and survives reordering of Go constants.
		`
CREATE TABLE keys (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	fingerprint TEXT NOT NULL UNIQUE,
	public_key  TEXT NOT NULL,
	role        TEXT NOT NULL CHECK (role IN ('admin', 'deployer')),
	created_at  INTEGER NOT NULL
);

-- Grants name apps by text, not by foreign key, so a deployer may be
-- allowed an app before its first push creates it.
CREATE TABLE key_apps (
	key_id INTEGER NOT NULL REFERENCES keys(id) ON DELETE CASCADE,
	app    TEXT NOT NULL,
	PRIMARY KEY (key_id, app)
);
CREATE INDEX key_apps_app ON key_apps(app);

CREATE TABLE apps (
	name       TEXT PRIMARY KEY,
	state      TEXT NOT NULL CHECK (state IN ('running', 'stopped')),
	release    INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
);

CREATE TABLE releases (
	app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	number      INTEGER NOT NULL CHECK (number > 0),
	revision    TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('building', 'failed', 'succeeded')),
	pusher      TEXT NOT NULL,
	detail      TEXT NOT NULL DEFAULT '',
	build       TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (app, number)
);
CREATE INDEX releases_status ON releases(status);

CREATE TABLE config (
	app   TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	key   TEXT NOT NULL,
	value TEXT NOT NULL,
	PRIMARY KEY (app, key)
);

CREATE TABLE scale (
	app   TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	kind  TEXT NOT NULL,
	count INTEGER NOT NULL CHECK (count >= 0),
	PRIMARY KEY (app, kind)
);

CREATE TABLE domains (
	host TEXT PRIMARY KEY,
	app  TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE
);
CREATE INDEX domains_app ON domains(app);

-- Events outlive their app: the log records the deletion too.
CREATE TABLE events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	time    INTEGER NOT NULL,
	app     TEXT NOT NULL,
	kind    TEXT NOT NULL,
	actor   TEXT NOT NULL,
	message TEXT NOT NULL
);
CREATE INDEX events_app ON events(app, id);
`,
		// Each app's number n, from which its uid and gid (a base plus n)
		// are derived. AUTOINCREMENT and SET NULL keep a number from ever
		// going to a second app, even after the first is destroyed: files it
		// left (a kept DATA_DIR, a cache) never belong to a stranger.
		`
CREATE TABLE app_ids (
	n   INTEGER PRIMARY KEY AUTOINCREMENT,
	app TEXT UNIQUE REFERENCES apps(name) ON DELETE SET NULL
);
INSERT INTO app_ids (app) SELECT name FROM apps ORDER BY created_at, name;
`,
		// Every deploy attempt is numbered (attempt), but only one that
		// went live takes a release number: a failed attempt keeps number
		// 0. Rows from before keep their numbers, failed ones included, and
		// their attempt is their number. pruned marks a release whose
		// directory retention removed.
		`
CREATE TABLE releases_attempts (
	app         TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
	attempt     INTEGER NOT NULL CHECK (attempt > 0),
	number      INTEGER NOT NULL DEFAULT 0 CHECK (number >= 0),
	revision    TEXT NOT NULL,
	status      TEXT NOT NULL CHECK (status IN ('building', 'failed', 'succeeded')),
	pusher      TEXT NOT NULL,
	detail      TEXT NOT NULL DEFAULT '',
	build       TEXT NOT NULL DEFAULT '',
	created_at  INTEGER NOT NULL,
	finished_at INTEGER NOT NULL DEFAULT 0,
	pruned      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (app, attempt)
);
INSERT INTO releases_attempts (app, attempt, number, revision, status, pusher, detail, build, created_at, finished_at)
	SELECT app, number, number, revision, status, pusher, detail, build, created_at, finished_at FROM releases;
DROP TABLE releases;
ALTER TABLE releases_attempts RENAME TO releases;
CREATE UNIQUE INDEX releases_number ON releases(app, number) WHERE number > 0;
CREATE INDEX releases_status ON releases(status);
`,
		// A key's authorized_keys options (from=, expiry-time=), in that
		// form; empty for none.
		`ALTER TABLE keys ADD COLUMN options TEXT NOT NULL DEFAULT '';`,
		// When an idle app's processes were put to sleep (SLEEP_AFTER);
		// 0 while it is awake. Apart from state, which is what the owner
		// asked for: a sleeping app is still a running one.
		`ALTER TABLE apps ADD COLUMN asleep_since INTEGER NOT NULL DEFAULT 0;`,
	}
}

// migrate applies the steps db has not seen yet, all in one transaction, and
// returns how many it applied. Because the transaction takes the write lock
// first, two processes opening a fresh file at once apply each step once.
func migrate(ctx context.Context, db *sql.DB, steps []string) (int, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	n, err := migrateTx(ctx, tx, steps)
	if err != nil {
		if rerr := tx.Rollback(); rerr != nil {
			return 0, fmt.Errorf("migrate: %w; additionally, rolling back: %v", err, rerr)
		}
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	return n, nil
}

func migrateTx(ctx context.Context, tx *sql.Tx, steps []string) (int, error) {
	_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`)
	if err != nil {
		return 0, err
	}
	var current int
	err = tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&current)
	if err != nil {
		return 0, err
	}
	if current > len(steps) {
		return 0, fmt.Errorf("database schema version %d is newer than this program's %d", current, len(steps))
	}
	for i := current; i < len(steps); i++ {
		version := i + 1
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return 0, fmt.Errorf("version %d: %w", version, err)
		}
		_, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", version, toDB(now()))
		if err != nil {
			return 0, fmt.Errorf("version %d: %w", version, err)
		}
	}
	return len(steps) - current, nil
}
