package addons

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Health is what `hop3 doctor` finds of one add-on, from outside the
// daemon: whether its sockets accept connections.
type Health struct {
	Name, App string
	Kind      Kind
	Err       error // nil: answering
}

// Servers says whether PostgreSQL 15 and Redis are installed where hop3
// looks for them.
func Servers() error {
	for _, p := range []string{filepath.Join(DefaultPostgresBin, "postgres"), "/usr/bin/redis-server", "/usr/bin/redis-cli"} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s is missing", p)
		}
	}
	return nil
}

// Check reads the add-ons under root and tries their sockets: the cluster's
// and the app's own for PostgreSQL, the server's for Redis.
func Check(root string) ([]Health, error) {
	m := &Manager{cfg: Config{Root: root}}
	list, err := m.load()
	if err != nil {
		return nil, err
	}
	var out []Health
	for _, a := range list {
		h := Health{Name: a.Name, App: a.App, Kind: a.Kind}
		socks := []string{redisSock(root, a.App, a.Name)}
		if a.Kind == Postgres {
			socks = []string{filepath.Join(pgSockDir(root), ".s.PGSQL.5432"), filepath.Join(appSockDir(root, a.App), ".s.PGSQL.5432")}
		}
		for _, s := range socks {
			c, err := net.DialTimeout("unix", s, 2*time.Second)
			if err != nil {
				h.Err = fmt.Errorf("not answering on %s: %w", s, err)
				break
			}
			c.Close()
		}
		out = append(out, h)
	}
	return out, nil
}
