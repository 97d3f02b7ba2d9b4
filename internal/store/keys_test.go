package store

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRoleString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		role Role
		want string
	}{
		{RoleAdmin, "admin"},
		{RoleDeployer, "deployer"},
		{0, "Role(0)"},
		{7, "Role(7)"},
	}
	for _, tt := range tests {
		if got := tt.role.String(); got != tt.want {
			t.Errorf("Role(%d).String() = %q, want %q", int(tt.role), got, tt.want)
		}
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Role
		wantErr bool
	}{
		{"admin", RoleAdmin, false},
		{"deployer", RoleDeployer, false},
		{"Admin", 0, true},
		{"", 0, true},
		{"root", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseRole(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseRole(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func key(name, fp string, role Role, apps ...string) Key {
	return Key{
		Name:        name,
		Fingerprint: fp,
		PublicKey:   "ssh-ed25519 AAAA" + name + " " + name + "@host",
		Role:        role,
		Apps:        apps,
	}
}

func TestAddKeyAndLookup(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)

	created := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	carol := key("carol", "SHA256:ccc", RoleDeployer, "web", "api", "web")
	carol.CreatedAt = created
	before := time.Now()
	for _, k := range []Key{carol, key("alice", "SHA256:aaa", RoleAdmin), key("bob", "SHA256:bbb", RoleDeployer, "web")} {
		if err := s.AddKey(ctx, k); err != nil {
			t.Fatal(err)
		}
	}

	keys, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.Name)
	}
	if want := []string{"alice", "bob", "carol"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("Keys names = %v, want %v", names, want)
	}
	if keys[0].Apps != nil {
		t.Errorf("alice apps = %#v, want nil", keys[0].Apps)
	}
	if keys[0].CreatedAt.Before(before.Add(-time.Second)) || keys[0].CreatedAt.After(time.Now()) {
		t.Errorf("alice CreatedAt = %v, want about now", keys[0].CreatedAt)
	}

	got, err := s.KeyByFingerprint(ctx, "SHA256:ccc")
	if err != nil {
		t.Fatal(err)
	}
	want := carol
	want.Apps = []string{"api", "web"} // sorted, duplicates collapsed
	if !got.CreatedAt.Equal(created) {
		t.Errorf("CreatedAt = %v, want %v", got.CreatedAt, created)
	}
	got.CreatedAt, want.CreatedAt = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KeyByFingerprint = %+v, want %+v", got, want)
	}

	if _, err := s.KeyByFingerprint(ctx, "SHA256:zzz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("KeyByFingerprint(unknown) = %v, want ErrNotFound", err)
	}
}

func TestAddKeyConflicts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	if err := s.AddKey(ctx, key("alice", "SHA256:aaa", RoleAdmin)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		k       Key
		wantIs  error
		wantMsg []string
	}{
		{"same name", key("alice", "SHA256:other", RoleAdmin), ErrExists, []string{"name"}},
		{"same key", key("bob", "SHA256:aaa", RoleDeployer), ErrExists, []string{"public key", "alice"}},
		{"no role", key("carol", "SHA256:ccc", 0), nil, []string{"role"}},
		{"bad role", key("dave", "SHA256:ddd", 9), nil, []string{"role"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AddKey(ctx, tt.k)
			if err == nil {
				t.Fatal("AddKey succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("err = %q, want it to mention %q", err, m)
				}
			}
		})
	}
	if keys, err := s.Keys(ctx); err != nil || len(keys) != 1 {
		t.Errorf("after conflicts Keys = %v, %v; want only alice", keys, err)
	}
}

func TestSetKeyApps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	if err := s.AddKey(ctx, key("bob", "SHA256:bbb", RoleDeployer, "old")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddKey(ctx, key("carol", "SHA256:ccc", RoleDeployer, "old")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		apps []string
		want []string
	}{
		{[]string{"b", "a", "b"}, []string{"a", "b"}},
		{[]string{"c"}, []string{"c"}},
		{nil, nil},
	}
	for _, tt := range tests {
		if err := s.SetKeyApps(ctx, "bob", tt.apps); err != nil {
			t.Fatal(err)
		}
		k, err := s.KeyByFingerprint(ctx, "SHA256:bbb")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(k.Apps, tt.want) {
			t.Errorf("after SetKeyApps(%v) apps = %#v, want %#v", tt.apps, k.Apps, tt.want)
		}
	}
	// Other keys keep their grants.
	k, err := s.KeyByFingerprint(ctx, "SHA256:ccc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(k.Apps, []string{"old"}) {
		t.Errorf("carol apps = %v, want [old]", k.Apps)
	}
	if err := s.SetKeyApps(ctx, "nobody", []string{"a"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetKeyApps(unknown) = %v, want ErrNotFound", err)
	}
}

func TestRemoveKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newStore(t)
	if err := s.AddKey(ctx, key("bob", "SHA256:bbb", RoleDeployer, "web", "api")); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveKey(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.KeyByFingerprint(ctx, "SHA256:bbb"); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed key still found: %v", err)
	}
	if n := count(t, s, "key_apps"); n != 0 {
		t.Errorf("%d grants left after removing their key", n)
	}
	if err := s.RemoveKey(ctx, "bob"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second RemoveKey = %v, want ErrNotFound", err)
	}
	// The name and key are free again.
	if err := s.AddKey(ctx, key("bob", "SHA256:bbb", RoleAdmin)); err != nil {
		t.Errorf("re-adding a removed key: %v", err)
	}
}

func TestValidKeyName(t *testing.T) {
	good := []string{"alice", "a", "ci-bot", "alice@laptop", "deploy.key_2", "9lives", strings.Repeat("k", 64)}
	bad := []string{"", "-alice", ".hidden", "_x", "@x", "a b", "a\"b", "a\nb", "a/b", "é", strings.Repeat("k", 65)}
	for _, n := range good {
		if !ValidKeyName(n) {
			t.Errorf("ValidKeyName(%q) = false, want true", n)
		}
	}
	for _, n := range bad {
		if ValidKeyName(n) {
			t.Errorf("ValidKeyName(%q) = true, want false", n)
		}
	}
}

// TestKeyNameFrom: a comment becomes a key name's characters, so that a
// prefix of letters makes it a valid name.
func TestKeyNameFrom(t *testing.T) {
	tests := map[string]string{
		"alice@laptop":      "alice@laptop",
		"Alice Smith":       "Alice-Smith",
		"  -.bob's key.-  ": "bob-s-key",
		"ci/deploy (2024)":  "ci-deploy-2024",
		"":                  "",
		"¡¿":                "",
		"a\tb\nc":           "a-b-c",
		"x_y.z-w":           "x_y.z-w",
	}
	for in, want := range tests {
		got := KeyNameFrom(in)
		if got != want {
			t.Errorf("KeyNameFrom(%q) = %q, want %q", in, got, want)
		}
		if got != "" && !ValidKeyName("k-"+got) {
			t.Errorf("KeyNameFrom(%q) = %q, not valid behind a prefix", in, got)
		}
	}
}
