package store

import (
	"context"
	"errors"
	"testing"
)

// An app keeps its number for life, two apps never share one, and a
// number is never handed out again, not even to a new app of the same name.
func TestAppNumber(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if _, err := s.AppNumber(ctx, "ghost"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("number of a missing app: %v, want ErrNotFound", err)
	}
	mustApp(t, s, "a", "b")
	steps := []struct {
		app  string
		want int
	}{{"a", 1}, {"b", 2}, {"a", 1}, {"b", 2}}
	for _, st := range steps {
		got, err := s.AppNumber(ctx, st.app)
		if err != nil || got != st.want {
			t.Fatalf("AppNumber(%s) = %d, %v; want %d", st.app, got, err, st.want)
		}
	}
	if err := s.DeleteApp(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	mustApp(t, s, "a")
	if got, err := s.AppNumber(ctx, "a"); err != nil || got != 3 {
		t.Fatalf("number of a new app a = %d, %v; want 3 (1 is never reused)", got, err)
	}
	all, err := s.AppNumbers(ctx)
	if err != nil || len(all) != 2 || all["a"] != 3 || all["b"] != 2 {
		t.Fatalf("AppNumbers = %v, %v", all, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
