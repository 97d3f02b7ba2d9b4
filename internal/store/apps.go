package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// AppState is the state an app's processes should be in.
type AppState int

// The zero AppState is invalid.
const (
	AppRunning AppState = iota + 1 // run the live release, if any
	AppStopped                     // run nothing until started again
)

// String returns "running" or "stopped".
func (st AppState) String() string {
	switch st {
	case AppRunning:
		return "running"
	case AppStopped:
		return "stopped"
	}
	return fmt.Sprintf("AppState(%d)", int(st))
}

// ParseAppState is the inverse of AppState.String.
func ParseAppState(s string) (AppState, error) {
	switch s {
	case "running":
		return AppRunning, nil
	case "stopped":
		return AppStopped, nil
	}
	return 0, fmt.Errorf("parse app state %q: want running or stopped", s)
}

// App is a deployable application.
type App struct {
	Name      string
	State     AppState // desired state; a new app is AppRunning
	Release   int      // number of the live release, 0 when none
	CreatedAt time.Time
	// Asleep is when the app's processes were stopped for being idle
	// (SLEEP_AFTER); zero while it is awake. A sleeping app stays
	// AppRunning: its first request starts it again.
	Asleep time.Time
}

// CreateApp creates an app in state AppRunning with no live release, so that
// its first successful deploy starts it. It returns ErrExists when the name
// is taken.
func (s *Store) CreateApp(ctx context.Context, name string) (App, error) {
	a := App{Name: name, State: AppRunning, CreatedAt: now()}
	// ON CONFLICT DO NOTHING tells a duplicate from a failure without
	// parsing driver errors or holding a transaction open.
	res, err := s.db.ExecContext(ctx,
		"INSERT INTO apps (name, state, release, created_at) VALUES (?, ?, 0, ?) ON CONFLICT (name) DO NOTHING",
		a.Name, a.State.String(), toDB(a.CreatedAt))
	if err != nil {
		return App{}, fmt.Errorf("create app %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return App{}, fmt.Errorf("create app %s: %w", name, err)
	} else if n == 0 {
		return App{}, fmt.Errorf("create app %s: %w", name, ErrExists)
	}
	return a, nil
}

const appSelect = "SELECT name, state, release, created_at, asleep_since FROM apps"

// App returns the named app, or ErrNotFound.
func (s *Store) App(ctx context.Context, name string) (App, error) {
	apps, err := s.queryApps(ctx, appSelect+" WHERE name = ?", name)
	if err != nil {
		return App{}, fmt.Errorf("get app %s: %w", name, err)
	}
	if len(apps) == 0 {
		return App{}, fmt.Errorf("get app %s: %w", name, ErrNotFound)
	}
	return apps[0], nil
}

// Apps returns every app, ordered by name.
func (s *Store) Apps(ctx context.Context) ([]App, error) {
	apps, err := s.queryApps(ctx, appSelect+" ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("list apps: %w", err)
	}
	return apps, nil
}

func (s *Store) queryApps(ctx context.Context, query string, args ...any) ([]App, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var apps []App
	for rows.Next() {
		var a App
		var state string
		var created, asleep int64
		if err := rows.Scan(&a.Name, &state, &a.Release, &created, &asleep); err != nil {
			return nil, err
		}
		if a.State, err = ParseAppState(state); err != nil {
			return nil, fmt.Errorf("app %s: %w", a.Name, err)
		}
		a.CreatedAt = fromDB(created)
		a.Asleep = fromDB(asleep)
		apps = append(apps, a)
	}
	return apps, rows.Err()
}

// DeleteApp deletes an app with its releases, config, scale and domains.
// Key grants for the app go too, so that a later app of the same name does
// not inherit the old app's deployers. Events stay. It returns ErrNotFound
// when there is no such app.
func (s *Store) DeleteApp(ctx context.Context, name string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "DELETE FROM apps WHERE name = ?", name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		_, err = tx.ExecContext(ctx, "DELETE FROM key_apps WHERE app = ?", name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete app %s: %w", name, err)
	}
	return nil
}

// SetAppState records the state the app's processes should be in. It
// returns ErrNotFound when there is no such app.
func (s *Store) SetAppState(ctx context.Context, name string, st AppState) error {
	if st != AppRunning && st != AppStopped {
		return fmt.Errorf("set state of app %s: invalid state %v", name, st)
	}
	return s.updateApp(ctx, "set state of app "+name, "UPDATE apps SET state = ? WHERE name = ?", st.String(), name)
}

// SetAsleep records that the app's processes were put to sleep at since, or
// with a zero since that it is awake. It returns ErrNotFound when there is
// no such app.
func (s *Store) SetAsleep(ctx context.Context, name string, since time.Time) error {
	return s.updateApp(ctx, "mark app "+name+" asleep", "UPDATE apps SET asleep_since = ? WHERE name = ?", toDB(since), name)
}

// SetLiveRelease records which release of the app is live; 0 means none. It
// returns ErrNotFound when the app, or a release with that number, does not
// exist.
func (s *Store) SetLiveRelease(ctx context.Context, name string, number int) error {
	if number == 0 {
		return s.updateApp(ctx, "set live release of app "+name, "UPDATE apps SET release = 0 WHERE name = ?", name)
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, name); err != nil {
			return err
		}
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM releases WHERE app = ? AND number = ?", name, number).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("release %d: %w", number, ErrNotFound)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE apps SET release = ? WHERE name = ?", number, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("set live release of app %s: %w", name, err)
	}
	return nil
}

// updateApp runs an UPDATE of one app row and maps "no row" to ErrNotFound.
func (s *Store) updateApp(ctx context.Context, verb, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	} else if n == 0 {
		return fmt.Errorf("%s: %w", verb, ErrNotFound)
	}
	return nil
}
