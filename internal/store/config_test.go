package store

import (
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
)

func TestConfigByteExact(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web")
	vars := map[string]string{
		"NEWLINES":  "line1\nline2\r\nline3\n",
		"QUOTES":    `he said "hi" and 'bye' \" \\`,
		"DOLLAR":    "$HOME ${HOME} $(id) `id`",
		"EQUALS":    "a=b=c",
		"UNICODE":   "héllo wörld ✓ 日本語 🚀",
		"EMPTY":     "",
		"SPACES":    "  leading and trailing  ",
		"TABS":      "\tx\t",
		"HASH":      "value # not a comment",
		"BADUTF8":   "\xff\xfe\xfd",
		"SQL":       "'); DROP TABLE config; --",
		"LONG":      strings.Repeat("x", 1<<16),
		"key=with=": "keys too",
	}
	if err := s.SetConfig(ctx, "web", vars); err != nil {
		t.Fatal(err)
	}
	got, err := s.Config(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range vars {
		if g, ok := got[k]; !ok || g != want {
			t.Errorf("%s = %q (present %v), want %q", k, g, ok, want)
		}
	}
	if len(got) != len(vars) {
		t.Errorf("got %d vars, want %d", len(got), len(vars))
	}
}

func TestSetAndUnsetConfig(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other")
	if err := s.SetConfig(ctx, "other", map[string]string{"A": "other"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.Config(ctx, "web")
	if err != nil || cfg == nil || len(cfg) != 0 {
		t.Fatalf("Config of an unconfigured app = %#v, %v; want an empty map", cfg, err)
	}

	want := map[string]string{}
	steps := []struct {
		set   map[string]string
		unset []string
	}{
		{set: map[string]string{"A": "1", "B": "2"}},
		{set: map[string]string{"B": "3", "C": "4"}},
		{set: map[string]string{}},
		{unset: []string{"A", "NEVER"}},
		{unset: nil},
		{set: map[string]string{"A": ""}},
		{unset: []string{"A", "B", "C"}},
	}
	for i, st := range steps {
		if st.set != nil {
			if err := s.SetConfig(ctx, "web", st.set); err != nil {
				t.Fatal(err)
			}
			maps.Copy(want, st.set)
		} else {
			if err := s.UnsetConfig(ctx, "web", st.unset); err != nil {
				t.Fatal(err)
			}
			for _, k := range st.unset {
				delete(want, k)
			}
		}
		got, err := s.Config(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("step %d: config = %v, want %v", i, got, want)
		}
	}
	if got, _ := s.Config(ctx, "other"); !reflect.DeepEqual(got, map[string]string{"A": "other"}) {
		t.Errorf("other app's config = %v", got)
	}
}

func TestScale(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web")
	got, err := s.Scale(ctx, "web")
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Scale of a new app = %#v, %v; want an empty map", got, err)
	}
	steps := []struct {
		set  map[string]int
		want map[string]int
	}{
		{map[string]int{"web": 2, "worker": 1}, map[string]int{"web": 2, "worker": 1}},
		{map[string]int{"web": 3}, map[string]int{"web": 3, "worker": 1}},
		{map[string]int{"worker": 0}, map[string]int{"web": 3, "worker": 0}},
		{map[string]int{}, map[string]int{"web": 3, "worker": 0}},
		// ScaleAuto removes a count, and removing one never set is no error.
		{map[string]int{"worker": ScaleAuto, "never": ScaleAuto}, map[string]int{"web": 3}},
		{map[string]int{"worker": 2, "web": ScaleAuto}, map[string]int{"worker": 2}},
		{map[string]int{"web": 3, "worker": ScaleAuto}, map[string]int{"web": 3}},
	}
	for i, st := range steps {
		if err := s.SetScale(ctx, "web", st.set); err != nil {
			t.Fatal(err)
		}
		got, err := s.Scale(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) {
			t.Errorf("step %d: scale = %v, want %v", i, got, st.want)
		}
	}
	// A negative count is refused and nothing of that call is kept.
	// A negative count other than ScaleAuto is refused and nothing of that
	// call is kept, a removal included.
	if err := s.SetScale(ctx, "web", map[string]int{"a": 5, "web": ScaleAuto, "x": -2}); err == nil {
		t.Error("SetScale with a negative count succeeded")
	}
	got, _ = s.Scale(ctx, "web")
	if want := map[string]int{"web": 3}; !reflect.DeepEqual(got, want) {
		t.Errorf("after refused SetScale scale = %v, want %v", got, want)
	}
}

func TestDomains(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other")

	if err := s.AddDomains(ctx, "web", []string{"b.example.com", "a.example.com"}); err != nil {
		t.Fatal(err)
	}
	// Adding hosts the app already has is a no-op, not a conflict.
	if err := s.AddDomains(ctx, "web", []string{"a.example.com", "c.example.com", "c.example.com"}); err != nil {
		t.Fatalf("re-adding own host: %v", err)
	}
	got, err := s.Domains(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a.example.com", "b.example.com", "c.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Domains = %v, want %v", got, want)
	}

	owner, err := s.DomainOwner(ctx, "b.example.com")
	if err != nil || owner != "web" {
		t.Errorf("DomainOwner = %q, %v; want web", owner, err)
	}
	if _, err := s.DomainOwner(ctx, "z.example.com"); !errors.Is(err, ErrNotFound) {
		t.Errorf("DomainOwner(unknown) = %v, want ErrNotFound", err)
	}
	if got, err := s.Domains(ctx, "other"); err != nil || len(got) != 0 {
		t.Errorf("Domains of app without any = %v, %v", got, err)
	}

	if err := s.RemoveDomains(ctx, "web", []string{"b.example.com", "never.example.com"}); err != nil {
		t.Fatal(err)
	}
	// Another app cannot remove web's host.
	if err := s.RemoveDomains(ctx, "other", []string{"a.example.com"}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Domains(ctx, "web")
	if want := []string{"a.example.com", "c.example.com"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after removal Domains = %v, want %v", got, want)
	}
}

func TestDomainConflictNamesOwner(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	mustApp(t, s, "web", "other")
	if err := s.AddDomains(ctx, "other", []string{"x.example.com"}); err != nil {
		t.Fatal(err)
	}
	err := s.AddDomains(ctx, "web", []string{"new.example.com", "x.example.com"})
	if !errors.Is(err, ErrExists) {
		t.Fatalf("AddDomains of another app's host = %v, want ErrExists", err)
	}
	if want := "host x.example.com belongs to app other"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
	// Nothing of the refused call is kept.
	if got, _ := s.Domains(ctx, "web"); len(got) != 0 {
		t.Errorf("web got %v from a refused call", got)
	}
	if owner, _ := s.DomainOwner(ctx, "x.example.com"); owner != "other" {
		t.Errorf("x.example.com moved to %q", owner)
	}
}
