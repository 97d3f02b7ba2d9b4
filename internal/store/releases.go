package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// ReleaseStatus is where a deploy attempt stands.
type ReleaseStatus int

// The zero ReleaseStatus is invalid.
const (
	Building  ReleaseStatus = iota + 1 // the build is running
	Failed                             // the build or its start failed; see Release.Detail
	Succeeded                          // the build finished and may go live
)

// String returns "building", "failed" or "succeeded".
func (rs ReleaseStatus) String() string {
	switch rs {
	case Building:
		return "building"
	case Failed:
		return "failed"
	case Succeeded:
		return "succeeded"
	}
	return fmt.Sprintf("ReleaseStatus(%d)", int(rs))
}

// ParseReleaseStatus is the inverse of ReleaseStatus.String.
func ParseReleaseStatus(s string) (ReleaseStatus, error) {
	switch s {
	case "building":
		return Building, nil
	case "failed":
		return Failed, nil
	case "succeeded":
		return Succeeded, nil
	}
	return 0, fmt.Errorf("parse release status %q: want building, failed or succeeded", s)
}

// Release is one deploy attempt of an app. Every attempt is numbered
// (Attempt); only one that went live keeps a release number (Number), so
// failed attempts use up none.
type Release struct {
	App        string
	Attempt    int           // 1, 2, 3... per app, every deploy attempt
	Number     int           // release number while building and once live; 0 for a failed attempt
	Revision   string        // git commit hash
	Status     ReleaseStatus // Building, then Failed or Succeeded
	Pusher     string        // name of the key that pushed
	Detail     string        // failure reason, one line, or empty
	Build      string        // opaque build metadata (JSON) written by the deployer
	Pruned     bool          // its directory was removed by retention
	CreatedAt  time.Time
	FinishedAt time.Time // zero while building
}

// CreateRelease records a new deploy attempt of app in status Building. It
// gets the next attempt number, and the release number it will keep if it
// goes live: one past the app's highest. The caller runs one attempt of an
// app at a time. It returns ErrNotFound when there is no such app.
func (s *Store) CreateRelease(ctx context.Context, app, revision, pusher string) (Release, error) {
	r := Release{App: app, Revision: revision, Status: Building, Pusher: pusher, CreatedAt: now()}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx,
			"SELECT COALESCE(MAX(attempt), 0) + 1, COALESCE(MAX(number), 0) + 1 FROM releases WHERE app = ?", app).Scan(&r.Attempt, &r.Number)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx,
			"INSERT INTO releases (app, attempt, number, revision, status, pusher, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
			r.App, r.Attempt, r.Number, r.Revision, r.Status.String(), r.Pusher, toDB(r.CreatedAt))
		return err
	})
	if err != nil {
		return Release{}, fmt.Errorf("create release of app %s: %w", app, err)
	}
	return r, nil
}

// FinishRelease records the outcome of deploy attempt of app: status Failed
// (which gives its release number back) or Succeeded, a one-line failure
// detail and the deployer's build metadata. It returns ErrNotFound when
// there is no such attempt.
func (s *Store) FinishRelease(ctx context.Context, app string, attempt int, status ReleaseStatus, detail, build string) error {
	if status != Failed && status != Succeeded {
		return fmt.Errorf("finish attempt %d of app %s: status %v is not an outcome", attempt, app, status)
	}
	res, err := s.db.ExecContext(ctx,
		"UPDATE releases SET status = ?, detail = ?, build = ?, finished_at = ?, number = CASE WHEN ? THEN 0 ELSE number END WHERE app = ? AND attempt = ?",
		status.String(), detail, build, toDB(now()), status == Failed, app, attempt)
	if err != nil {
		return fmt.Errorf("finish attempt %d of app %s: %w", attempt, app, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("finish attempt %d of app %s: %w", attempt, app, err)
	} else if n == 0 {
		return fmt.Errorf("finish attempt %d of app %s: %w", attempt, app, ErrNotFound)
	}
	return nil
}

// MarkPruned records that the directory of release number of app was removed.
func (s *Store) MarkPruned(ctx context.Context, app string, number int) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE releases SET pruned = 1 WHERE app = ? AND number = ? AND number > 0", app, number); err != nil {
		return fmt.Errorf("mark release %d of app %s pruned: %w", number, app, err)
	}
	return nil
}

const releaseSelect = `SELECT app, attempt, number, revision, status, pusher, detail, build, pruned, created_at, finished_at
FROM releases`

// Release returns release number of app, or ErrNotFound.
func (s *Store) Release(ctx context.Context, app string, number int) (Release, error) {
	if number <= 0 {
		return Release{}, fmt.Errorf("get release %d of app %s: %w", number, app, ErrNotFound)
	}
	rs, err := s.queryReleases(ctx, releaseSelect+" WHERE app = ? AND number = ?", app, number)
	if err != nil {
		return Release{}, fmt.Errorf("get release %d of app %s: %w", number, app, err)
	}
	if len(rs) == 0 {
		return Release{}, fmt.Errorf("get release %d of app %s: %w", number, app, ErrNotFound)
	}
	return rs[0], nil
}

// Attempt returns deploy attempt of app, or ErrNotFound.
func (s *Store) Attempt(ctx context.Context, app string, attempt int) (Release, error) {
	rs, err := s.queryReleases(ctx, releaseSelect+" WHERE app = ? AND attempt = ?", app, attempt)
	if err != nil {
		return Release{}, fmt.Errorf("get attempt %d of app %s: %w", attempt, app, err)
	}
	if len(rs) == 0 {
		return Release{}, fmt.Errorf("get attempt %d of app %s: %w", attempt, app, ErrNotFound)
	}
	return rs[0], nil
}

// Releases returns every deploy attempt of app, newest first. It returns
// ErrNotFound when there is no such app.
func (s *Store) Releases(ctx context.Context, app string) ([]Release, error) {
	rs, err := s.queryReleases(ctx, releaseSelect+" WHERE app = ? ORDER BY attempt DESC", app)
	if err == nil && len(rs) == 0 {
		err = appExists(ctx, s.db, app)
	}
	if err != nil {
		return nil, fmt.Errorf("list releases of app %s: %w", app, err)
	}
	return rs, nil
}

// RecordBuild stores the deployer's build metadata of an attempt before it
// is started, so that a release that went live can be started again even if
// its outcome was never recorded.
func (s *Store) RecordBuild(ctx context.Context, app string, attempt int, build string) error {
	if _, err := s.db.ExecContext(ctx, "UPDATE releases SET build = ? WHERE app = ? AND attempt = ?", build, app, attempt); err != nil {
		return fmt.Errorf("record build of attempt %d of app %s: %w", attempt, app, err)
	}
	return nil
}

// FailBuilding settles every attempt still Building and returns how many
// were marked failed. The daemon calls it at start: a build that was
// running when the previous daemon died will never finish. An attempt its
// app names as live went live before the daemon died and is marked
// Succeeded; every other one is marked Failed with the given detail, and
// gives its release number back.
func (s *Store) FailBuilding(ctx context.Context, detail string) (int, error) {
	var n int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx,
			`UPDATE releases SET status = ?, finished_at = ? WHERE status = ?
			AND EXISTS (SELECT 1 FROM apps WHERE apps.name = releases.app AND apps.release = releases.number)`,
			Succeeded.String(), toDB(now()), Building.String())
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx,
			"UPDATE releases SET status = ?, detail = ?, finished_at = ?, number = 0 WHERE status = ?",
			Failed.String(), detail, toDB(now()), Building.String())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("fail unfinished builds: %w", err)
	}
	return int(n), nil
}

func (s *Store) queryReleases(ctx context.Context, query string, args ...any) ([]Release, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var rs []Release
	for rows.Next() {
		var r Release
		var status string
		var created, finished int64
		err := rows.Scan(&r.App, &r.Attempt, &r.Number, &r.Revision, &status, &r.Pusher, &r.Detail, &r.Build, &r.Pruned, &created, &finished)
		if err != nil {
			return nil, err
		}
		if r.Status, err = ParseReleaseStatus(status); err != nil {
			return nil, fmt.Errorf("attempt %d of app %s: %w", r.Attempt, r.App, err)
		}
		r.CreatedAt = fromDB(created)
		r.FinishedAt = fromDB(finished)
		rs = append(rs, r)
	}
	return rs, rows.Err()
}
