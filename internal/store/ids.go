package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// AppNumber returns app's identity number (1, 2, ...), allocating the next
// unused one on first use. A number is never given to two apps, nor to a
// later app of the same name. It returns ErrNotFound when there is no such
// app.
func (s *Store) AppNumber(ctx context.Context, app string) (int, error) {
	var n int
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := appExists(ctx, tx, app); err != nil {
			return err
		}
		err := tx.QueryRowContext(ctx, "SELECT n FROM app_ids WHERE app = ?", app).Scan(&n)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO app_ids (app) VALUES (?)", app)
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		n = int(id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("identity of app %s: %w", app, err)
	}
	return n, nil
}

// AppNumbers returns the identity number of every app that has one.
func (s *Store) AppNumbers(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT app, n FROM app_ids WHERE app IS NOT NULL")
	if err != nil {
		return nil, fmt.Errorf("list app identities: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var app string
		var n int
		if err := rows.Scan(&app, &n); err != nil {
			return nil, fmt.Errorf("list app identities: %w", err)
		}
		out[app] = n
	}
	return out, rows.Err()
}
