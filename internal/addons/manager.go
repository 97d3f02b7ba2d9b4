package addons

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"hop3/internal/layout"
	"hop3/internal/store"
	"hop3/runtime/supervisor"
)

// Supervisor is what add-ons need from the process manager.
type Supervisor interface {
	Start(ctx context.Context, spec supervisor.Spec) error
	Stop(ctx context.Context, name string) error
	Status(name string) (supervisor.Status, bool)
}

// Config configures a Manager.
type Config struct {
	Root       string
	Supervisor Supervisor
	// AppUser is the credential an app's processes run as (nil: hop3's own
	// user); an error when the app does not exist.
	AppUser func(ctx context.Context, app string) (*supervisor.Credential, error)
	// PostgresUser runs the PostgreSQL cluster; nil runs it as hop3's user,
	// which PostgreSQL refuses when that is root.
	PostgresUser *supervisor.Credential
	// PostgresBin and RedisBin hold the servers' binaries; defaults are
	// Debian's places.
	PostgresBin string
	RedisBin    string
	// BackupSchedule, when set, backs up every add-on on it.
	BackupSchedule supervisor.Schedule
	Logger         *slog.Logger
}

// Manager owns the add-ons of every app.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu sync.Mutex // serialises changes: the registry, the cluster, backups

	pmu     sync.Mutex
	proxies map[string]*proxy // app: its database socket
}

// DefaultPostgresBin is where Debian's postgresql-15 puts its programs.
const DefaultPostgresBin = "/usr/lib/postgresql/15/bin"

// New returns a Manager; nothing starts until Restore or Create.
func New(cfg Config) (*Manager, error) {
	if cfg.Root == "" || cfg.Supervisor == nil || cfg.AppUser == nil {
		return nil, errors.New("addons: root, supervisor and app users are required")
	}
	if cfg.PostgresBin == "" {
		cfg.PostgresBin = DefaultPostgresBin
	}
	if cfg.RedisBin == "" {
		cfg.RedisBin = "/usr/bin"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Manager{cfg: cfg, log: cfg.Logger.With("component", "addons")}
	for _, d := range []string{m.dir(), filepath.Join(m.dir(), "redis"), m.pgBase()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("create add-on directory: %w", err)
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Manager) dir() string                 { return layout.New(m.cfg.Root).Addons() }
func (m *Manager) registry() string            { return filepath.Join(m.dir(), "addons.json") }
func (m *Manager) backupDir(app string) string { return layout.New(m.cfg.Root).Backups(app) }
func (m *Manager) logPath(name string) string  { return layout.New(m.cfg.Root).AddonLog(name) }

// SandboxPaths are the directories an app's processes must be able to reach
// (read and write: connect(2) on a socket) for its add-ons to work: its
// PostgreSQL socket directory and its Redis directory. The one place a
// sandbox learns where add-on sockets live.
func SandboxPaths(root, app string) []string {
	return []string{appSockDir(root, app), redisAppDir(root, app)}
}

func (m *Manager) load() ([]Addon, error) {
	b, err := os.ReadFile(m.registry())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read add-ons: %w", err)
	}
	var list []Addon
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("read add-ons %s: %w", m.registry(), err)
	}
	return list, nil
}

// save writes the registry whole, through a temporary file.
func (m *Manager) save(list []Addon) error {
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(m.registry(), b)
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// ErrNotFound: no such add-on for that app.
var ErrNotFound = errors.New("no such add-on")

// List returns the add-ons of app ("" for all), by name.
func (m *Manager) List(app string) ([]Addon, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.list(app)
}

func (m *Manager) list(app string) ([]Addon, error) {
	all, err := m.load()
	if err != nil {
		return nil, err
	}
	var out []Addon
	for _, a := range all {
		if app == "" || a.App == app {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b Addon) int { return cmpString(a.Name, b.Name) })
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Get returns app's add-on name.
func (m *Manager) Get(app, name string) (Addon, error) {
	list, err := m.List(app)
	if err != nil {
		return Addon{}, err
	}
	for _, a := range list {
		if a.Name == name {
			return a, nil
		}
	}
	return Addon{}, fmt.Errorf("%s has no add-on named %s: %w", app, name, ErrNotFound)
}

// Restore starts what the registry holds for apps that exist: the cluster
// when there is a PostgreSQL add-on, the apps' database sockets, every Redis
// add-on, the backup schedules. It runs at hop3's start, before the apps.
func (m *Manager) Restore(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.load()
	if err != nil {
		return err
	}
	var errs []error
	pg := false
	for _, a := range all {
		if _, err := m.cfg.AppUser(ctx, a.App); errors.Is(err, store.ErrNotFound) {
			// Kept when its app was destroyed: its data waits for an app
			// of that name.
			m.log.Info("add-on of a destroyed app left stopped", "addon", a.Name, "app", a.App)
			continue
		}
		if err := m.scheduleBackups(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("schedule backups of %s: %w", a.Name, err))
		}
		switch a.Kind {
		case Postgres:
			pg = true
			if err := m.ensureProxy(ctx, a.App); err != nil {
				errs = append(errs, fmt.Errorf("serve %s's database socket: %w", a.App, err))
			}
		case Redis:
			if err := m.startRedis(ctx, a); err != nil {
				errs = append(errs, fmt.Errorf("start %s: %w", a.Name, err))
			}
		}
	}
	if pg {
		if err := m.ensureCluster(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Attach starts whatever of app's add-ons is not running: those kept when an
// app of the same name was destroyed, which wait for the app to exist again.
func (m *Manager) Attach(ctx context.Context, app string) error {
	list, err := m.List(app)
	if err != nil || len(list) == 0 {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for _, a := range list {
		if err := m.scheduleBackups(ctx, a); err != nil {
			errs = append(errs, err)
		}
		if a.Kind == Redis {
			errs = append(errs, m.startRedis(ctx, a))
			continue
		}
		errs = append(errs, m.ensureCluster(ctx), m.ensureProxy(ctx, app))
	}
	return errors.Join(errs...)
}

// Stop stops PostgreSQL quickly (SIGINT: fast shutdown, which ends open
// sessions; the supervisor's SIGTERM would wait for them) and Redis, at
// hop3's stop.
func (m *Manager) Stop(ctx context.Context) {
	m.pmu.Lock()
	apps := slices.Collect(maps.Keys(m.proxies))
	m.pmu.Unlock()
	for _, app := range apps {
		m.dropProxy(app)
	}
	if st, ok := m.cfg.Supervisor.Status(pgProcess); ok && st.PID > 0 {
		_ = signalPID(st.PID)
	}
	all, _ := m.List("")
	for _, a := range all {
		if a.Kind == Redis {
			_ = m.cfg.Supervisor.Stop(ctx, redisProcess(a))
		}
	}
	_ = m.cfg.Supervisor.Stop(ctx, pgProcess)
}

// Options are the choices made at creation; zero values take defaults.
type Options struct {
	Name      string // default DefaultName
	MaxMemory string // Redis: default DefaultMaxMemory
}

// Create makes an add-on of app and returns it, running. The caller sets
// its URL in the app's config (see URL).
func (m *Manager) Create(ctx context.Context, app string, k Kind, o Options) (Addon, error) {
	name := o.Name
	if name == "" {
		name = DefaultName(app, k)
	}
	if err := ValidateName(name); err != nil {
		return Addon{}, err
	}
	if o.MaxMemory != "" {
		if k != Redis {
			return Addon{}, fmt.Errorf("--maxmemory is for redis add-ons")
		}
		if err := ValidateMemory(o.MaxMemory); err != nil {
			return Addon{}, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.load()
	if err != nil {
		return Addon{}, err
	}
	var taken []string
	for _, a := range all {
		if a.Name == name {
			return Addon{}, fmt.Errorf("an add-on named %s already exists (of %s)", name, a.App)
		}
		if a.App == app && a.Kind == k {
			taken = append(taken, a.Var)
		}
	}
	a := Addon{Name: name, App: app, Kind: k, Password: newPassword(), Var: VarName(k, name, taken), Created: time.Now().UTC()}
	switch k {
	case Postgres:
		if err := m.ensureCluster(ctx); err != nil {
			return Addon{}, err
		}
		if err := m.createDatabase(ctx, a); err != nil {
			return Addon{}, err
		}
	case Redis:
		a.MaxMem = DefaultMaxMemory
		if o.MaxMemory != "" {
			a.MaxMem = strings.ToLower(o.MaxMemory)
		}
		if err := m.startRedis(ctx, a); err != nil {
			_ = os.RemoveAll(redisDir(m.cfg.Root, app, name))
			return Addon{}, err
		}
	}
	if err := m.save(append(all, a)); err != nil {
		return Addon{}, err
	}
	if k == Postgres {
		if err := m.ensureProxy(ctx, app); err != nil {
			return Addon{}, err
		}
	}
	if err := m.scheduleBackups(ctx, a); err != nil {
		m.log.Warn("schedule backups", "addon", a.Name, "err", err)
	}
	return a, nil
}

// Destroy removes app's add-on and its data; backups stay.
func (m *Manager) Destroy(ctx context.Context, app, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.load()
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(a Addon) bool { return a.App == app && a.Name == name })
	if i < 0 {
		return fmt.Errorf("%s has no add-on named %s: %w", app, name, ErrNotFound)
	}
	a := all[i]
	m.unscheduleBackups(ctx, a)
	switch a.Kind {
	case Postgres:
		if err := m.ensureCluster(ctx); err != nil {
			return err
		}
		if err := m.dropDatabase(ctx, a); err != nil {
			return err
		}
	case Redis:
		if err := m.cfg.Supervisor.Stop(ctx, redisProcess(a)); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
			return fmt.Errorf("stop %s: %w", a.Name, err)
		}
		if err := os.RemoveAll(redisDir(m.cfg.Root, app, name)); err != nil {
			return err
		}
	}
	rest := slices.Delete(all, i, i+1)
	if err := m.save(rest); err != nil {
		return err
	}
	if !slices.ContainsFunc(rest, func(b Addon) bool { return b.App == app && b.Kind == Postgres }) {
		m.dropProxy(app)
	}
	return nil
}

// URL is the connection URL of a, which its app's config var holds.
func (m *Manager) URL(a Addon) string {
	if a.Kind == Postgres {
		return PostgresURL(ident(a.Name), a.Password, ident(a.Name), appSockDir(m.cfg.Root, a.App))
	}
	return RedisURL(a.Password, redisSock(m.cfg.Root, a.App, a.Name))
}

// Info is what `addons APP` shows of one add-on.
type Info struct {
	Name    string `json:"name"`
	Kind    Kind   `json:"kind"`
	Version string `json:"version"`
	Var     string `json:"var"`
	URL     string `json:"url"` // password masked
	State   string `json:"state"`
	Size    int64  `json:"size_bytes"`
}

// Describe returns the state of each of app's add-ons.
func (m *Manager) Describe(ctx context.Context, app string) ([]Info, error) {
	list, err := m.List(app)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(list))
	for _, a := range list {
		in := Info{Name: a.Name, Kind: a.Kind, Var: a.Var, URL: Mask(m.URL(a), a.Password), State: "stopped"}
		proc := redisProcess(a)
		if a.Kind == Postgres {
			proc = pgProcess
			in.Version = "15"
			if n, err := m.databaseSize(ctx, a); err == nil {
				in.Size = n
			}
		} else {
			in.Version = "7"
			in.Size = dirSize(redisDir(m.cfg.Root, a.App, a.Name))
		}
		if st, ok := m.cfg.Supervisor.Status(proc); ok {
			in.State = st.State.String()
		}
		out = append(out, in)
	}
	return out, nil
}

// Processes lists the supervised processes behind app's add-ons, labelled
// for `ps` (kind: the add-on's name).
func (m *Manager) Processes(app string) []supervisor.Status {
	list, err := m.List(app)
	if err != nil {
		return nil
	}
	var out []supervisor.Status
	for _, a := range list {
		proc := redisProcess(a)
		if a.Kind == Postgres {
			proc = pgProcess
		}
		st, ok := m.cfg.Supervisor.Status(proc)
		if !ok {
			continue
		}
		lbl := maps.Clone(st.Labels)
		if lbl == nil {
			lbl = map[string]string{}
		}
		lbl["kind"], lbl["index"] = a.Name, "1"
		st.Labels = lbl
		out = append(out, st)
	}
	return out
}

// Backup takes a backup of app's add-on name into <root>/backups/<app>/,
// written under a temporary name and renamed when complete, and prunes
// backups beyond KeepBackups.
func (m *Manager) Backup(ctx context.Context, app, name string) (Backup, error) {
	a, err := m.Get(app, name)
	if err != nil {
		return Backup{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir := m.backupDir(app)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Backup{}, fmt.Errorf("create backup directory: %w", err)
	}
	now := time.Now()
	file := backupName(a.Name, a.Kind, now)
	final := filepath.Join(dir, file)
	tmp := filepath.Join(dir, "."+file+".tmp")
	defer os.Remove(tmp)
	if a.Kind == Postgres {
		err = m.dumpDatabase(ctx, a, tmp)
	} else {
		err = m.dumpRedis(ctx, a, tmp)
	}
	if err != nil {
		return Backup{}, err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return Backup{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return Backup{}, fmt.Errorf("backup %s: %w", a.Name, err)
	}
	if err := prune(dir, a.Name, KeepBackups); err != nil {
		m.log.Warn("prune backups", "addon", a.Name, "err", err)
	}
	info, err := os.Stat(final)
	if err != nil {
		return Backup{}, err
	}
	return Backup{Name: file, Size: info.Size(), Time: now.UTC().Truncate(time.Millisecond)}, nil
}

// Backups lists the backups of app's add-on name, oldest first.
func (m *Manager) Backups(app, name string) ([]Backup, error) {
	if _, err := m.Get(app, name); err != nil {
		return nil, err
	}
	return listBackups(m.backupDir(app), name)
}

// RestoreBackup puts app's add-on name back to the state of a listed backup.
func (m *Manager) RestoreBackup(ctx context.Context, app, name, backup string) error {
	a, err := m.Get(app, name)
	if err != nil {
		return err
	}
	if _, ok := parseBackup(backup, name); !ok || filepath.Base(backup) != backup {
		return fmt.Errorf("%q is not a backup of %s (see addons:backups %s %s)", backup, name, app, name)
	}
	path := filepath.Join(m.backupDir(app), backup)
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no backup %s of %s (see addons:backups %s %s)", backup, name, app, name)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a.Kind == Postgres {
		return m.restoreDatabase(ctx, a, path)
	}
	return m.restoreRedis(ctx, a, path)
}

// AppDestroyed deals with the add-ons of a destroyed app: with purge they
// are destroyed too; without, they are kept (data and registry) and Redis
// processes are stopped, since the app's user is gone. It returns the
// names it destroyed or kept.
func (m *Manager) AppDestroyed(ctx context.Context, app string, purge bool) ([]string, error) {
	list, err := m.List(app)
	if err != nil {
		return nil, err
	}
	var names []string
	var errs []error
	for _, a := range list {
		names = append(names, a.Name)
		m.unscheduleBackups(ctx, a)
		switch {
		case purge:
			errs = append(errs, m.Destroy(ctx, app, a.Name))
		case a.Kind == Postgres:
			m.dropProxy(app)
		case a.Kind == Redis:
			if err := m.cfg.Supervisor.Stop(ctx, redisProcess(a)); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	return names, errors.Join(errs...)
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func uidOf(c *supervisor.Credential) string {
	if c == nil {
		return strconv.Itoa(os.Getuid())
	}
	return strconv.FormatUint(uint64(c.UID), 10)
}

// chown gives path to c; nothing to do when processes run as hop3.
func chown(path string, c *supervisor.Credential) error {
	if c == nil {
		return nil
	}
	if err := os.Lchown(path, int(c.UID), int(c.GID)); err != nil {
		return fmt.Errorf("give %s: %w", path, err)
	}
	return nil
}

// procEnv is the environment of add-on servers and tools: not hop3's own.
var procEnv = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"}
