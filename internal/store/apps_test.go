package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAppStateString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		st   AppState
		want string
	}{
		{AppRunning, "running"},
		{AppStopped, "stopped"},
		{0, "AppState(0)"},
	}
	for _, tt := range tests {
		if got := tt.st.String(); got != tt.want {
			t.Errorf("String() = %q, want %q", got, tt.want)
		}
		if tt.st == 0 {
			continue
		}
		if back, err := ParseAppState(tt.want); err != nil || back != tt.st {
			t.Errorf("ParseAppState(%q) = %v, %v", tt.want, back, err)
		}
	}
	if _, err := ParseAppState("paused"); err == nil {
		t.Error("ParseAppState(paused) succeeded")
	}
}

func TestCreateApp(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	before := time.Now().Add(-time.Second)
	a, err := s.CreateApp(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "web" || a.State != AppRunning || a.Release != 0 || a.CreatedAt.Before(before) {
		t.Errorf("CreateApp = %+v", a)
	}
	got, err := s.App(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if got != a {
		t.Errorf("App = %+v, want %+v", got, a)
	}
	if _, err := s.CreateApp(ctx, "web"); !errors.Is(err, ErrExists) {
		t.Errorf("second CreateApp = %v, want ErrExists", err)
	}
	if _, err := s.App(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("App(nope) = %v, want ErrNotFound", err)
	}
}

func TestApps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	apps, err := s.Apps(ctx)
	if err != nil || len(apps) != 0 {
		t.Fatalf("Apps on empty store = %v, %v", apps, err)
	}
	mustApp(t, s, "zeta", "alpha", "mid")
	apps, err = s.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, a := range apps {
		names = append(names, a.Name)
	}
	if want := []string{"alpha", "mid", "zeta"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Apps = %v, want %v", names, want)
	}
}

func TestSetAppState(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other")
	tests := []struct {
		app     string
		st      AppState
		wantErr error
	}{
		{"web", AppStopped, nil},
		{"web", AppStopped, nil}, // unchanged is not "not found"
		{"web", AppRunning, nil},
		{"web", AppStopped, nil},
		{"nope", AppStopped, ErrNotFound},
	}
	for _, tt := range tests {
		err := s.SetAppState(ctx, tt.app, tt.st)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("SetAppState(%s, %v) = %v, want %v", tt.app, tt.st, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		a, err := s.App(ctx, tt.app)
		if err != nil {
			t.Fatal(err)
		}
		if a.State != tt.st {
			t.Errorf("state = %v, want %v", a.State, tt.st)
		}
	}
	if err := s.SetAppState(ctx, "web", 0); err == nil {
		t.Error("SetAppState with the zero state succeeded")
	}
	if a, _ := s.App(ctx, "other"); a.State != AppRunning {
		t.Errorf("other app's state changed to %v", a.State)
	}
}

func TestSetLiveRelease(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "api")
	for range 2 {
		if _, err := s.CreateRelease(ctx, "web", "abc", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		app     string
		number  int
		wantErr error
		want    int
	}{
		{"web", 2, nil, 2},
		{"web", 1, nil, 1},
		{"web", 3, ErrNotFound, 1},
		{"api", 1, ErrNotFound, 0}, // release 1 is web's, not api's
		{"web", 0, nil, 0},
		{"nope", 1, ErrNotFound, 0},
		{"nope", 0, ErrNotFound, 0},
	}
	for _, tt := range tests {
		err := s.SetLiveRelease(ctx, tt.app, tt.number)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("SetLiveRelease(%s, %d) = %v, want %v", tt.app, tt.number, err, tt.wantErr)
		}
		if tt.app == "nope" {
			continue
		}
		a, err := s.App(ctx, tt.app)
		if err != nil {
			t.Fatal(err)
		}
		if a.Release != tt.want {
			t.Errorf("after SetLiveRelease(%s, %d) live = %d, want %d", tt.app, tt.number, a.Release, tt.want)
		}
	}
}

func TestDeleteAppCascades(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "keep")
	for _, app := range []string{"web", "keep"} {
		r, err := s.CreateRelease(ctx, app, "abc", "alice")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetLiveRelease(ctx, app, r.Number); err != nil {
			t.Fatal(err)
		}
		if err := s.SetConfig(ctx, app, map[string]string{"A": "1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.SetScale(ctx, app, map[string]int{"web": 2}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddDomains(ctx, app, []string{app + ".example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddEvent(ctx, Event{App: app, Kind: "deploy"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddKey(ctx, key("bob", "SHA256:bbb", RoleDeployer, "web", "keep")); err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteApp(ctx, "web"); err != nil {
		t.Fatal(err)
	}

	if _, err := s.App(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("App after delete = %v", err)
	}
	// Each table keeps exactly the other app's row.
	for _, table := range []string{"apps", "releases", "config", "scale", "domains", "key_apps"} {
		if n := count(t, s, table); n != 1 {
			t.Errorf("%s has %d rows after delete, want 1 (the other app's)", table, n)
		}
	}
	if _, err := s.DomainOwner(ctx, "web.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted app still owns its domain: %v", err)
	}
	k, err := s.KeyByFingerprint(ctx, "SHA256:bbb")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.Apps, []string{"keep"}) {
		t.Errorf("bob's apps after delete = %v, want [keep]", k.Apps)
	}
	if ev, err := s.Events(ctx, "web", 0); err != nil || len(ev) != 1 {
		t.Errorf("events of a deleted app = %v, %v; want them kept", ev, err)
	}
	if err := s.Check(ctx); err != nil {
		t.Errorf("Check after delete: %v", err)
	}
	if err := s.DeleteApp(ctx, "web"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second DeleteApp = %v, want ErrNotFound", err)
	}

	// A new app of the same name starts clean.
	mustApp(t, s, "web")
	for name, fn := range map[string]func() (int, error){
		"releases": func() (int, error) { r, err := s.Releases(ctx, "web"); return len(r), err },
		"config":   func() (int, error) { c, err := s.Config(ctx, "web"); return len(c), err },
		"scale":    func() (int, error) { c, err := s.Scale(ctx, "web"); return len(c), err },
		"domains":  func() (int, error) { d, err := s.Domains(ctx, "web"); return len(d), err },
	} {
		if n, err := fn(); err != nil || n != 0 {
			t.Errorf("recreated app has %d %s (err %v)", n, name, err)
		}
	}
	r, err := s.CreateRelease(ctx, "web", "def", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if r.Number != 1 {
		t.Errorf("first release of a recreated app is %d, want 1", r.Number)
	}
}

func TestAppNotFoundEverywhere(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	calls := map[string]func() error{
		"CreateRelease": func() error { _, err := s.CreateRelease(ctx, "nope", "abc", "alice"); return err },
		"Releases":      func() error { _, err := s.Releases(ctx, "nope"); return err },
		"Config":        func() error { _, err := s.Config(ctx, "nope"); return err },
		"SetConfig":     func() error { return s.SetConfig(ctx, "nope", map[string]string{"A": "1"}) },
		"UnsetConfig":   func() error { return s.UnsetConfig(ctx, "nope", []string{"A"}) },
		"Scale":         func() error { _, err := s.Scale(ctx, "nope"); return err },
		"SetScale":      func() error { return s.SetScale(ctx, "nope", map[string]int{"web": 1}) },
		"Domains":       func() error { _, err := s.Domains(ctx, "nope"); return err },
		"AddDomains":    func() error { return s.AddDomains(ctx, "nope", []string{"x.example.com"}) },
		"RemoveDomains": func() error { return s.RemoveDomains(ctx, "nope", []string{"x.example.com"}) },
		"Release":       func() error { _, err := s.Release(ctx, "nope", 1); return err },
		"FinishRelease": func() error { return s.FinishRelease(ctx, "nope", 1, Succeeded, "", "") },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s on a missing app = %v, want ErrNotFound", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s error %q does not name the app", name, err)
		}
	}
}

func TestSetAsleep(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other")
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		app     string
		since   time.Time
		wantErr error
	}{
		{"web", at, nil},
		{"web", time.Time{}, nil},
		{"web", at, nil},
		{"nope", at, ErrNotFound},
	}
	for _, tt := range tests {
		err := s.SetAsleep(ctx, tt.app, tt.since)
		if !errors.Is(err, tt.wantErr) {
			t.Fatalf("SetAsleep(%s, %v) = %v, want %v", tt.app, tt.since, err, tt.wantErr)
		}
		if err != nil {
			continue
		}
		a, err := s.App(ctx, tt.app)
		if err != nil {
			t.Fatal(err)
		}
		if !a.Asleep.Equal(tt.since) {
			t.Errorf("asleep = %v, want %v", a.Asleep, tt.since)
		}
		if a.State != AppRunning {
			t.Errorf("state = %v, want running: sleeping is not stopping", a.State)
		}
	}
	if a, _ := s.App(ctx, "other"); !a.Asleep.IsZero() {
		t.Errorf("other app marked asleep at %v", a.Asleep)
	}
}
