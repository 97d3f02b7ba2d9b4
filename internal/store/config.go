package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
)

// Config returns the app's config vars, values exactly as they were set. It
// returns ErrNotFound when there is no such app.
func (s *Store) Config(ctx context.Context, app string) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT key, value FROM config WHERE app = ?", app)
	if err != nil {
		return nil, fmt.Errorf("get config of app %s: %w", app, err)
	}
	defer rows.Close()
	vars := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("get config of app %s: %w", app, err)
		}
		vars[k] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get config of app %s: %w", app, err)
	}
	if len(vars) == 0 {
		if err := appExists(ctx, s.db, app); err != nil {
			return nil, fmt.Errorf("get config of app %s: %w", app, err)
		}
	}
	return vars, nil
}

// SetConfig sets the given config vars of app, leaving the others alone, in
// one transaction. It returns ErrNotFound when there is no such app.
func (s *Store) SetConfig(ctx context.Context, app string, vars map[string]string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		// Sorted, so that writes happen in a repeatable order.
		for _, k := range slices.Sorted(maps.Keys(vars)) {
			v := vars[k]
			_, err := tx.ExecContext(ctx,
				"INSERT INTO config (app, key, value) VALUES (?, ?, ?) ON CONFLICT (app, key) DO UPDATE SET value = excluded.value",
				app, k, v)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set config of app %s: %w", app, err)
	}
	return nil
}

// UnsetConfig removes the given config vars of app; names that are not set
// are ignored. It returns ErrNotFound when there is no such app.
func (s *Store) UnsetConfig(ctx context.Context, app string, keys []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, "DELETE FROM config WHERE app = ? AND key = ?", app, k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("unset config of app %s: %w", app, err)
	}
	return nil
}

// Scale returns the app's process counts by kind; kinds never scaled are
// absent. It returns ErrNotFound when there is no such app.
func (s *Store) Scale(ctx context.Context, app string) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT kind, count FROM scale WHERE app = ?", app)
	if err != nil {
		return nil, fmt.Errorf("get scale of app %s: %w", app, err)
	}
	defer rows.Close()
	counts := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, fmt.Errorf("get scale of app %s: %w", app, err)
		}
		counts[kind] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("get scale of app %s: %w", app, err)
	}
	if len(counts) == 0 {
		if err := appExists(ctx, s.db, app); err != nil {
			return nil, fmt.Errorf("get scale of app %s: %w", app, err)
		}
	}
	return counts, nil
}

// ScaleAuto, as a count given to SetScale, removes the kind's count: the
// kind is as if never scaled, and a wsgi/asgi entry's workers go back to
// the autoscaler.
const ScaleAuto = -1

// SetScale sets the process counts of the given kinds, leaving other kinds
// alone; ScaleAuto removes a kind's count. Other counts must not be
// negative. It returns ErrNotFound when there is no such app.
func (s *Store) SetScale(ctx context.Context, app string, counts map[string]int) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		// Sorted, so that an error names the same kind every time.
		for _, kind := range slices.Sorted(maps.Keys(counts)) {
			n := counts[kind]
			if n == ScaleAuto {
				if _, err := tx.ExecContext(ctx, "DELETE FROM scale WHERE app = ? AND kind = ?", app, kind); err != nil {
					return err
				}
				continue
			}
			if n < 0 {
				return fmt.Errorf("negative count %d for %s", n, kind)
			}
			_, err := tx.ExecContext(ctx,
				"INSERT INTO scale (app, kind, count) VALUES (?, ?, ?) ON CONFLICT (app, kind) DO UPDATE SET count = excluded.count",
				app, kind, n)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set scale of app %s: %w", app, err)
	}
	return nil
}

// Domains returns the app's extra host names, sorted. It returns
// ErrNotFound when there is no such app.
func (s *Store) Domains(ctx context.Context, app string) ([]string, error) {
	hosts, err := s.strings(ctx, "SELECT host FROM domains WHERE app = ? ORDER BY host", app)
	if err == nil && len(hosts) == 0 {
		err = appExists(ctx, s.db, app)
	}
	if err != nil {
		return nil, fmt.Errorf("list domains of app %s: %w", app, err)
	}
	return hosts, nil
}

// AddDomains gives hosts to app. Hosts the app already has are left as they
// are. When a host belongs to another app nothing is added, and the error
// wraps ErrExists and names that app. It returns ErrNotFound when there is
// no such app.
func (s *Store) AddDomains(ctx context.Context, app string, hosts []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		for _, h := range hosts {
			res, err := tx.ExecContext(ctx,
				"INSERT INTO domains (host, app) VALUES (?, ?) ON CONFLICT (host) DO NOTHING", h, app)
			if err != nil {
				return err
			}
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				continue
			}
			var owner string
			if err := tx.QueryRowContext(ctx, "SELECT app FROM domains WHERE host = ?", h).Scan(&owner); err != nil {
				return err
			}
			if owner != app {
				return fmt.Errorf("host %s belongs to app %s: %w", h, owner, ErrExists)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add domains to app %s: %w", app, err)
	}
	return nil
}

// RemoveDomains takes hosts away from app; hosts the app does not have are
// ignored. It returns ErrNotFound when there is no such app.
func (s *Store) RemoveDomains(ctx context.Context, app string, hosts []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		for _, h := range hosts {
			if _, err := tx.ExecContext(ctx, "DELETE FROM domains WHERE app = ? AND host = ?", app, h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove domains from app %s: %w", app, err)
	}
	return nil
}

// DomainOwner returns the name of the app that has host, or ErrNotFound.
func (s *Store) DomainOwner(ctx context.Context, host string) (string, error) {
	owners, err := s.strings(ctx, "SELECT app FROM domains WHERE host = ?", host)
	if err != nil {
		return "", fmt.Errorf("find owner of host %s: %w", host, err)
	}
	if len(owners) == 0 {
		return "", fmt.Errorf("find owner of host %s: %w", host, ErrNotFound)
	}
	return owners[0], nil
}
