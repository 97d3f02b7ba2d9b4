package commands

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"hop3/internal/addons"
	"hop3/runtime/supervisor"
)

// fakeAddons keeps add-ons in memory and records what it was asked.
type fakeAddons struct {
	mu    sync.Mutex
	list  []addons.Addon
	calls []string
}

func (f *fakeAddons) record(format string, a ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, a...))
}

func (f *fakeAddons) Describe(ctx context.Context, app string) ([]addons.Info, error) {
	var out []addons.Info
	for _, a := range f.list {
		if a.App == app {
			out = append(out, addons.Info{Name: a.Name, Kind: a.Kind, Var: a.Var, URL: addons.Mask(f.URL(a), a.Password), State: "running"})
		}
	}
	return out, nil
}

func (f *fakeAddons) Create(ctx context.Context, app string, k addons.Kind, o addons.Options) (addons.Addon, error) {
	name := o.Name
	if name == "" {
		name = addons.DefaultName(app, k)
	}
	f.record("Create %s %s %s", app, k, name)
	var taken []string
	for _, a := range f.list {
		if a.Name == name {
			return addons.Addon{}, fmt.Errorf("an add-on named %s already exists", name)
		}
		if a.App == app && a.Kind == k {
			taken = append(taken, a.Var)
		}
	}
	a := addons.Addon{Name: name, App: app, Kind: k, Password: "secret", Var: addons.VarName(k, name, taken)}
	f.list = append(f.list, a)
	return a, nil
}

func (f *fakeAddons) Get(app, name string) (addons.Addon, error) {
	for _, a := range f.list {
		if a.App == app && a.Name == name {
			return a, nil
		}
	}
	return addons.Addon{}, addons.ErrNotFound
}

func (f *fakeAddons) URL(a addons.Addon) string {
	return "postgresql://" + a.Name + ":" + a.Password + "@%2Fsock/" + a.Name
}

func (f *fakeAddons) Destroy(ctx context.Context, app, name string) error {
	f.record("Destroy %s %s", app, name)
	f.list = slices.DeleteFunc(f.list, func(a addons.Addon) bool { return a.App == app && a.Name == name })
	return nil
}

func (f *fakeAddons) Backup(ctx context.Context, app, name string) (addons.Backup, error) {
	f.record("Backup %s %s", app, name)
	return addons.Backup{Name: name + "-20260101T000000.000Z.dump"}, nil
}

func (f *fakeAddons) Backups(app, name string) ([]addons.Backup, error) { return nil, nil }

func (f *fakeAddons) RestoreBackup(ctx context.Context, app, name, backup string) error {
	f.record("Restore %s %s %s", app, name, backup)
	return nil
}

func (f *fakeAddons) PsqlCommand(a addons.Addon) ([]string, error) {
	if a.Kind != addons.Postgres {
		return nil, fmt.Errorf("%s is a %s add-on, not postgres", a.Name, a.Kind)
	}
	return []string{"psql", a.Name}, nil
}

func (f *fakeAddons) AppDestroyed(ctx context.Context, app string, purge bool) ([]string, error) {
	f.record("AppDestroyed %s purge=%v", app, purge)
	return nil, nil
}

func (f *fakeAddons) Attach(ctx context.Context, app string) error { return nil }

func (f *fakeAddons) Processes(app string) []supervisor.Status { return nil }

func addonEnv(t *testing.T) (*env, *fakeAddons) {
	e := newEnv(t)
	fa := &fakeAddons{}
	e.d.cfg.Addons = fa
	return e, fa
}

func TestAddonsCreateSetsURLAndRestarts(t *testing.T) {
	e, fa := addonEnv(t)
	e.app("myapp", "wsgi: app:app\n")
	e.ok("addons:create", "myapp", "postgres")
	e.ok("addons:create", "myapp", "pg", "--name", "second-db")
	e.ok("addons:create", "myapp", "redis")
	vars := e.config("myapp")
	if !strings.HasPrefix(vars["DATABASE_URL"], "postgresql://myapp-db:") || vars["SECOND_DB_URL"] == "" || vars["REDIS_URL"] == "" {
		t.Fatalf("config = %v", vars)
	}
	restarts := 0
	for _, c := range e.be.Calls() {
		if strings.HasPrefix(c, "ApplyConfig myapp") {
			restarts++
		}
	}
	if restarts != 3 {
		t.Errorf("ApplyConfig calls = %d, want 3: %v", restarts, e.be.Calls())
	}
	r := e.ok("addons", "myapp")
	if strings.Contains(r.stdout, "secret") || !strings.Contains(r.stdout, "myapp-db") {
		t.Errorf("addons shows:\n%s", r.stdout)
	}
	if len(fa.list) != 3 {
		t.Errorf("add-ons = %+v", fa.list)
	}
}

func TestAddonsCommandErrors(t *testing.T) {
	e, fa := addonEnv(t)
	e.app("myapp", "wsgi: app:app\n")
	e.app("theirs", "wsgi: app:app\n")
	e.ok("addons:create", "myapp", "postgres")
	e.ok("addons:create", "theirs", "redis")
	before := e.config("myapp")
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"addons:create", "myapp"}, exitUsage, "missing postgres|redis"},
		{[]string{"addons:create", "myapp", "mysql"}, exitUsage, `unknown add-on kind "mysql"`},
		{[]string{"addons:create", "myapp", "redis", "--name", "Bad_Name"}, exitUsage, "invalid add-on name"},
		{[]string{"addons:create", "myapp", "redis", "--name", "pg-cache"}, exitUsage, "PostgreSQL's"},
		{[]string{"addons:create", "myapp", "postgres"}, exitFail, "already exists"},
		{[]string{"addons:create", "myapp", "redis", "--maxmemory", "lots"}, exitUsage, "bad maxmemory"},
		{[]string{"addons:create", "myapp", "postgres", "--maxmemory", "64mb"}, exitUsage, "--maxmemory is for redis"},
		{[]string{"addons:destroy", "myapp", "myapp-db"}, exitFail, "nothing destroyed: this removes myapp-db"},
		{[]string{"addons:destroy", "myapp", "myapp-db", "--confirm", "myapp"}, exitFail, `nothing destroyed: "myapp" is not myapp-db`},
		{[]string{"addons:destroy", "myapp", "nope-db", "--confirm", "nope-db"}, exitFail, "myapp has no add-on named nope-db"},
		{[]string{"addons:restore", "myapp", "myapp-db", "myapp-db-x.dump"}, exitFail, "nothing restored"},
		{[]string{"addons:restore", "myapp", "myapp-db"}, exitUsage, "missing BACKUP"},
		{[]string{"addons:backup", "myapp", "theirs-redis"}, exitFail, "myapp has no add-on named theirs-redis"},
		{[]string{"addons:psql", "theirs", "theirs-redis"}, exitFail, "not postgres"},
	} {
		r := e.run(admin, "", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want %d with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if got := e.config("myapp"); got["DATABASE_URL"] != before["DATABASE_URL"] {
		t.Errorf("config changed: %v", got)
	}
	for _, c := range fa.calls {
		if strings.HasPrefix(c, "Destroy") || strings.HasPrefix(c, "Restore") {
			t.Errorf("a refused command did something: %s", c)
		}
	}
}

func TestAddonsDeployerOwnAppsOnly(t *testing.T) {
	e, _ := addonEnv(t)
	e.app("mine", "wsgi: app:app\n")
	e.app("theirs", "wsgi: app:app\n")
	e.ok("addons:create", "theirs", "postgres")
	for _, args := range [][]string{
		{"addons", "theirs"},
		{"addons:create", "theirs", "redis"},
		{"addons:backup", "theirs", "theirs-db"},
		{"addons:destroy", "theirs", "theirs-db", "--confirm", "theirs-db"},
	} {
		r := e.run(bob, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, "no app named theirs") {
			t.Errorf("bob %q: %+v", args, r)
		}
	}
	if r := e.run(bob, "", "addons:create", "mine", "redis"); r.code != 0 {
		t.Errorf("bob on his own app: %+v", r)
	}
}

func TestAddonsDestroyUnsetsVar(t *testing.T) {
	e, fa := addonEnv(t)
	e.app("myapp", "wsgi: app:app\n")
	e.ok("addons:create", "myapp", "postgres")
	e.ok("addons:destroy", "myapp", "myapp-db", "--confirm", "myapp-db")
	if _, ok := e.config("myapp")["DATABASE_URL"]; ok || len(fa.list) != 0 {
		t.Errorf("after destroy: config %v, add-ons %v", e.config("myapp"), fa.list)
	}
	r := e.ok("destroy", "myapp", "--confirm", "myapp")
	if !slices.Contains(fa.calls, "AppDestroyed myapp purge=false") {
		t.Errorf("calls %v; stderr %s", fa.calls, r.stderr)
	}
}
