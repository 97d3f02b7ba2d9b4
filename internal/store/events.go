package store

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Event is one entry of the append-only log: a deploy, rollback, crash,
// config change and the like. Events outlive the app they are about.
type Event struct {
	ID      int64     // assigned by AddEvent, increasing
	Time    time.Time // set by AddEvent when zero
	App     string    // empty for events about no app
	Kind    string    // e.g. "deploy", "rollback", "crash", "config"
	Actor   string    // key name, or empty for the daemon itself
	Message string
}

// AddEvent appends e to the log. Its ID is ignored and assigned anew.
func (s *Store) AddEvent(ctx context.Context, e Event) error {
	t := e.Time
	if t.IsZero() {
		t = now()
	}
	_, err := s.db.ExecContext(ctx,
		"INSERT INTO events (time, app, kind, actor, message) VALUES (?, ?, ?, ?, ?)",
		toDB(t), e.App, e.Kind, e.Actor, e.Message)
	if err != nil {
		return fmt.Errorf("add event %s: %w", e.Kind, err)
	}
	return nil
}

// Events returns the newest limit events about app, or about every app
// when app is empty, oldest first. A limit of 0 or less means no limit.
func (s *Store) Events(ctx context.Context, app string, limit int) ([]Event, error) {
	if limit <= 0 {
		limit = -1 // SQLite reads a negative LIMIT as none
	}
	query := "SELECT id, time, app, kind, actor, message FROM events"
	args := []any{}
	if app != "" {
		query += " WHERE app = ?"
		args = append(args, app)
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, limit)

	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	defer rows.Close()
	var events []Event
	for rows.Next() {
		var e Event
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.App, &e.Kind, &e.Actor, &e.Message); err != nil {
			return nil, fmt.Errorf("list events: %w", err)
		}
		e.Time = fromDB(t)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list events: %w", err)
	}
	slices.Reverse(events)
	return events, nil
}
