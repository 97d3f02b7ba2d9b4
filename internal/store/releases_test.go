package store

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReleaseStatusString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		rs   ReleaseStatus
		want string
	}{
		{Building, "building"},
		{Failed, "failed"},
		{Succeeded, "succeeded"},
		{0, "ReleaseStatus(0)"},
	}
	for _, tt := range tests {
		if got := tt.rs.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		if tt.rs == 0 {
			continue
		}
		if back, err := ParseReleaseStatus(tt.want); err != nil || back != tt.rs {
			t.Errorf("ParseReleaseStatus(%q) = %v, %v", tt.want, back, err)
		}
	}
	if _, err := ParseReleaseStatus("done"); err == nil {
		t.Error("ParseReleaseStatus(done) succeeded")
	}
}

func TestReleaseNumberingPerApp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "a", "b")
	steps := []struct {
		app  string
		want int
	}{
		{"a", 1}, {"a", 2}, {"b", 1}, {"a", 3}, {"b", 2},
	}
	for _, st := range steps {
		r, err := s.CreateRelease(ctx, st.app, "rev", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if r.Number != st.want {
			t.Errorf("release of %s numbered %d, want %d", st.app, r.Number, st.want)
		}
	}
	// A failed attempt gives its release number back, but keeps its
	// attempt number; a success keeps both.
	if err := s.FinishRelease(ctx, "a", 3, Failed, "boom", ""); err != nil {
		t.Fatal(err)
	}
	failed, err := s.Attempt(ctx, "a", 3)
	if err != nil || failed.Number != 0 || failed.Status != Failed {
		t.Fatalf("failed attempt = %+v, %v; want number 0", failed, err)
	}
	if _, err := s.Release(ctx, "a", 3); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release(a, 3) after its attempt failed = %v, want ErrNotFound", err)
	}
	r, err := s.CreateRelease(ctx, "a", "rev", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if r.Number != 3 || r.Attempt != 4 {
		t.Errorf("attempt after a failed one: number %d attempt %d, want 3 and 4", r.Number, r.Attempt)
	}
	if err := s.FinishRelease(ctx, "a", 4, Succeeded, "", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Release(ctx, "a", 3); err != nil || got.Attempt != 4 {
		t.Errorf("Release(a, 3) = %+v, %v; want attempt 4", got, err)
	}
	// An attempt cut short by a stop of hop3 gives its number back too (as
	// do the ones above left building).
	r, err = s.CreateRelease(ctx, "a", "rev", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.FailBuilding(ctx, "interrupted"); err != nil || n != 5 {
		t.Fatalf("FailBuilding = %d, %v", n, err)
	}
	if got, err := s.Attempt(ctx, "a", r.Attempt); err != nil || got.Number != 0 || got.Status != Failed {
		t.Errorf("interrupted attempt = %+v, %v", got, err)
	}
	if got, err := s.CreateRelease(ctx, "a", "rev", "alice"); err != nil || got.Number != 4 {
		t.Errorf("after an interrupted attempt: %+v, %v; want number 4", got, err)
	}
}

func TestMarkPruned(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web")
	for i := 0; i < 2; i++ {
		r, err := s.CreateRelease(ctx, "web", "rev", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.FinishRelease(ctx, "web", r.Attempt, Succeeded, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkPruned(ctx, "web", 1); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		number int
		pruned bool
	}{{1, true}, {2, false}} {
		if r, err := s.Release(ctx, "web", tt.number); err != nil || r.Pruned != tt.pruned {
			t.Errorf("Release(web, %d) = %+v, %v; want pruned %v", tt.number, r, err, tt.pruned)
		}
	}
}

func TestReleaseLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web")
	before := time.Now().Add(-time.Second)
	r, err := s.CreateRelease(ctx, "web", "0123abcd", "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := Release{App: "web", Attempt: 1, Number: 1, Revision: "0123abcd", Status: Building, Pusher: "alice", CreatedAt: r.CreatedAt}
	if r != want || r.CreatedAt.Before(before) {
		t.Errorf("CreateRelease = %+v, want %+v", r, want)
	}
	got, err := s.Release(ctx, "web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got != r {
		t.Errorf("Release = %+v, want %+v", got, r)
	}

	build := `{"venv":"sha256:ff","procs":["web","worker"]}`
	if err := s.FinishRelease(ctx, "web", 1, Succeeded, "", build); err != nil {
		t.Fatal(err)
	}
	got, err = s.Release(ctx, "web", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != Succeeded || got.Build != build || got.Detail != "" {
		t.Errorf("finished release = %+v", got)
	}
	if got.FinishedAt.IsZero() || got.FinishedAt.Before(got.CreatedAt) {
		t.Errorf("FinishedAt = %v, CreatedAt = %v", got.FinishedAt, got.CreatedAt)
	}

	tests := []struct {
		name    string
		app     string
		number  int
		status  ReleaseStatus
		wantErr error
	}{
		{"unknown number", "web", 9, Failed, ErrNotFound},
		{"unknown app", "nope", 1, Failed, ErrNotFound},
		{"not an outcome", "web", 1, Building, nil},
		{"zero status", "web", 1, 0, nil},
	}
	for _, tt := range tests {
		err := s.FinishRelease(ctx, tt.app, tt.number, tt.status, "x", "")
		if err == nil {
			t.Errorf("%s: FinishRelease succeeded", tt.name)
		} else if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if _, err := s.Release(ctx, "web", 2); !errors.Is(err, ErrNotFound) {
		t.Errorf("Release(web, 2) = %v, want ErrNotFound", err)
	}
}

func TestReleasesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other", "empty")
	for _, rev := range []string{"r1", "r2", "r3"} {
		if _, err := s.CreateRelease(ctx, "web", rev, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateRelease(ctx, "other", "x", "bob"); err != nil {
		t.Fatal(err)
	}
	rs, err := s.Releases(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var revs []string
	for _, r := range rs {
		revs = append(revs, r.Revision)
	}
	if len(revs) != 3 || revs[0] != "r3" || revs[1] != "r2" || revs[2] != "r1" {
		t.Errorf("Releases revisions = %v, want [r3 r2 r1]", revs)
	}
	rs, err = s.Releases(ctx, "empty")
	if err != nil || len(rs) != 0 {
		t.Errorf("Releases of an app without any = %v, %v", rs, err)
	}
}

func TestFailBuilding(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "a", "b")
	for _, app := range []string{"a", "a", "a", "b"} {
		if _, err := s.CreateRelease(ctx, app, "rev", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.FinishRelease(ctx, "a", 1, Succeeded, "", "{}"); err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRelease(ctx, "a", 2, Failed, "build failed", ""); err != nil {
		t.Fatal(err)
	}

	n, err := s.FailBuilding(ctx, "interrupted by daemon restart")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("FailBuilding = %d, want 2", n)
	}
	type id struct {
		app     string
		attempt int
	}
	want := map[id]struct {
		status ReleaseStatus
		detail string
	}{
		{"a", 1}: {Succeeded, ""},
		{"a", 2}: {Failed, "build failed"},
		{"a", 3}: {Failed, "interrupted by daemon restart"},
		{"b", 1}: {Failed, "interrupted by daemon restart"},
	}
	for k, w := range want {
		r, err := s.Attempt(ctx, k.app, k.attempt)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == Failed && r.Number != 0 {
			t.Errorf("failed attempt %v kept release number %d", k, r.Number)
		}
		if r.Status != w.status || r.Detail != w.detail || r.FinishedAt.IsZero() {
			t.Errorf("release %v = %v %q finished %v, want %v %q", k, r.Status, r.Detail, r.FinishedAt, w.status, w.detail)
		}
	}
	if n, err := s.FailBuilding(ctx, "again"); err != nil || n != 0 {
		t.Errorf("second FailBuilding = %d, %v; want 0", n, err)
	}
}

// Releases recorded before attempts were numbered apart keep their
// numbers (failed ones included), with their number as their attempt.
func TestMigrateReleaseAttempts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "hop3.db")
	db, err := sql.Open("sqlite3", dsn(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	steps := migrations()
	i := slices.IndexFunc(steps, func(s string) bool { return strings.Contains(s, "releases_attempts") })
	if i < 0 {
		t.Fatal("no step numbers attempts")
	}
	if _, err := migrate(ctx, db, steps[:i]); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO apps (name, state, release, created_at) VALUES ('web', 'running', 3, 1)",
		"INSERT INTO releases (app, number, revision, status, pusher, created_at) VALUES ('web', 1, 'a', 'succeeded', 'alice', 1)",
		"INSERT INTO releases (app, number, revision, status, pusher, created_at) VALUES ('web', 2, 'b', 'failed', 'alice', 2)",
		"INSERT INTO releases (app, number, revision, status, pusher, created_at) VALUES ('web', 3, 'c', 'succeeded', 'alice', 3)",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := migrate(ctx, db, steps); err != nil {
		t.Fatal(err)
	}
	s := &Store{db: db}
	rels, err := s.Releases(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rels {
		got = append(got, fmt.Sprintf("d%d:v%d:%s", r.Attempt, r.Number, r.Status))
	}
	if want := []string{"d3:v3:succeeded", "d2:v2:failed", "d1:v1:succeeded"}; !slices.Equal(got, want) {
		t.Errorf("after the migration: %q, want %q", got, want)
	}
	r, err := s.CreateRelease(ctx, "web", "d", "alice")
	if err != nil || r.Attempt != 4 || r.Number != 4 {
		t.Errorf("next attempt = %+v, %v; want d4, v4", r, err)
	}
}

// An attempt still building whose app names it live went live before the
// daemon died: it stays a release, with its build metadata.
func TestFailBuildingKeepsALiveRelease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web")
	r, err := s.CreateRelease(ctx, "web", "rev", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RecordBuild(ctx, "web", r.Attempt, `{"venv":"x"}`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLiveRelease(ctx, "web", r.Number); err != nil {
		t.Fatal(err)
	}
	if n, err := s.FailBuilding(ctx, "interrupted"); err != nil || n != 0 {
		t.Fatalf("FailBuilding = %d, %v; want 0 failed", n, err)
	}
	got, err := s.Release(ctx, "web", r.Number)
	if err != nil || got.Status != Succeeded || got.Build != `{"venv":"x"}` {
		t.Errorf("live release after FailBuilding = %+v, %v", got, err)
	}
}
