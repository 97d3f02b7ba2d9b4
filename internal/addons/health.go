package addons

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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

// Stat is one add-on's state and size, for the metrics.
type Stat struct {
	App, Name string
	Kind      Kind
	State     string // the supervisor's state of its server; "stopped" when none
	Size      int64  // database size, or the Redis directory's (RDB file)
}

// Stats returns every add-on's state and size, asking PostgreSQL once.
func (m *Manager) Stats(ctx context.Context) []Stat {
	list, err := m.List("")
	if err != nil {
		return nil
	}
	var sizes map[string]int64
	out := make([]Stat, 0, len(list))
	for _, a := range list {
		s := Stat{App: a.App, Name: a.Name, Kind: a.Kind, State: "stopped"}
		proc := redisProcess(a)
		if a.Kind == Postgres {
			proc = pgProcess
			if sizes == nil {
				sizes = m.databaseSizes(ctx)
			}
			s.Size = sizes[ident(a.Name)]
		} else {
			s.Size = dirSize(redisDir(m.cfg.Root, a.App, a.Name))
		}
		if st, ok := m.cfg.Supervisor.Status(proc); ok {
			s.State = st.State.String()
		}
		out = append(out, s)
	}
	return out
}

// databaseSizes maps each database to its size; empty when the cluster
// does not answer.
func (m *Manager) databaseSizes(ctx context.Context) map[string]int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sizes := map[string]int64{}
	out, err := m.adminSQL(ctx, "SELECT datname || ' ' || pg_database_size(datname) FROM pg_database;\n")
	if err != nil {
		return sizes
	}
	for _, line := range strings.Split(out, "\n") {
		name, n, ok := strings.Cut(strings.TrimSpace(line), " ")
		if v, err := strconv.ParseInt(n, 10, 64); ok && err == nil {
			sizes[name] = v
		}
	}
	return sizes
}
