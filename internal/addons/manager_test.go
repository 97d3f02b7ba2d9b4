package addons

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"hop3/runtime/supervisor"
)

// idleSupervisor runs nothing: every add-on server is down.
type idleSupervisor struct{}

func (idleSupervisor) Start(ctx context.Context, spec supervisor.Spec) error { return nil }
func (idleSupervisor) Stop(ctx context.Context, name string) error           { return supervisor.ErrNotFound }
func (idleSupervisor) Status(name string) (supervisor.Status, bool) {
	return supervisor.Status{}, false
}

func TestFailedBackupLeavesNothing(t *testing.T) {
	if _, err := os.Stat("/usr/bin/redis-cli"); err != nil {
		t.Skip("redis-cli is not installed (scripts/setup.sh installs it)")
	}
	root := t.TempDir()
	m, err := New(Config{Root: root, Supervisor: idleSupervisor{}, AppUser: func(context.Context, string) (*supervisor.Credential, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	a := Addon{Name: "shop-redis", App: "shop", Kind: Redis, Password: "pw", Var: "REDIS_URL"}
	if err := m.save([]Addon{a}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Backup(context.Background(), "shop", "shop-redis"); err == nil {
		t.Fatal("a backup of a server that is down succeeded")
	}
	entries, _ := os.ReadDir(filepath.Join(root, "backups", "shop"))
	if len(entries) != 0 {
		t.Errorf("a failed backup left %v", entries)
	}
	if list, err := m.Backups("shop", "shop-redis"); err != nil || len(list) != 0 {
		t.Errorf("backups after a failure: %v, %v", list, err)
	}
	if _, err := m.Backup(context.Background(), "shop", "nope"); err == nil {
		t.Error("backup of an unknown add-on")
	}
	if err := m.RestoreBackup(context.Background(), "shop", "shop-redis", "../../hop3.db"); err == nil {
		t.Error("restore from a path outside the backups")
	}
}

func TestSandboxPaths(t *testing.T) {
	got := SandboxPaths("/r", "shop")
	a := Addon{Name: "shop-redis", App: "shop", Kind: Redis}
	m := &Manager{cfg: Config{Root: "/r"}}
	pg := Addon{Name: "shop-db", App: "shop", Kind: Postgres}
	// Every socket an app's URLs name lies under one of its sandbox paths.
	for _, sock := range []string{redisSock("/r", "shop", a.Name), filepath.Join(appSockDir("/r", "shop"), ".s.PGSQL.5432")} {
		ok := false
		for _, p := range got {
			if strings.HasPrefix(sock, p+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s is outside %v", sock, got)
		}
	}
	if u := m.URL(pg); !strings.Contains(u, "%2Fr%2Faddons%2Frun%2Fshop/") {
		t.Errorf("database URL %s does not name the app's own socket directory", u)
	}
}
