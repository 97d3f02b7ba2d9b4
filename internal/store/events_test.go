package store

import (
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestEvents(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)

	at := time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)
	// web gets events 0, 2, 4, 6, 8; api gets 1, 3, 5, 7, 9.
	for i := range 10 {
		app := "web"
		if i%2 == 1 {
			app = "api"
		}
		e := Event{App: app, Kind: "deploy", Actor: "alice", Message: strconv.Itoa(i), ID: 999}
		if i == 0 {
			e.Time = at
		}
		if err := s.AddEvent(ctx, e); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		app   string
		limit int
		want  []string
	}{
		{"", 0, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"", 3, []string{"7", "8", "9"}},
		{"", -1, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"", 100, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}},
		{"web", 2, []string{"6", "8"}},
		{"api", 0, []string{"1", "3", "5", "7", "9"}},
		{"api", 1, []string{"9"}},
		{"none", 5, nil},
	}
	for _, tt := range tests {
		evs, err := s.Events(ctx, tt.app, tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, e.Message)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Events(%q, %d) = %v, want %v", tt.app, tt.limit, got, tt.want)
		}
	}

	all, err := s.Events(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !all[0].Time.Equal(at) {
		t.Errorf("given time came back as %v, want %v", all[0].Time, at)
	}
	for i, e := range all {
		if e.ID == 999 {
			t.Errorf("event %d kept the caller's ID", i)
		}
		if i > 0 && e.ID <= all[i-1].ID {
			t.Errorf("IDs not increasing: %d after %d", e.ID, all[i-1].ID)
		}
		if i > 0 && time.Since(e.Time) > time.Minute {
			t.Errorf("event %d time = %v, want now", i, e.Time)
		}
		if e.Kind != "deploy" || e.Actor != "alice" {
			t.Errorf("event %d = %+v", i, e)
		}
	}
}
