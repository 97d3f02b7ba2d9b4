package addons

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"hop3/internal/layout"
	"hop3/runtime/supervisor"
)

// DefaultMaxMemory is a Redis add-on's maxmemory.
const DefaultMaxMemory = "64mb"

var memSize = regexp.MustCompile(`^(?i)[1-9][0-9]{0,5}(mb|gb)$`)

// ValidateMemory checks a Redis maxmemory: 1mb to 64gb, in mb or gb.
func ValidateMemory(s string) error {
	if !memSize.MatchString(s) {
		return fmt.Errorf("bad maxmemory %q: use a size such as 64mb or 1gb", s)
	}
	n, _ := strconv.Atoi(s[:len(s)-2])
	if strings.EqualFold(s[len(s)-2:], "gb") {
		n *= 1024
	}
	if n > 64*1024 {
		return fmt.Errorf("bad maxmemory %q: at most 64gb", s)
	}
	return nil
}

func redisAppDir(root, app string) string {
	return filepath.Join(layout.New(root).Addons(), "redis", app)
}
func redisDir(root, app, name string) string {
	return filepath.Join(redisAppDir(root, app), name)
}
func redisSock(root, app, name string) string {
	return filepath.Join(redisDir(root, app, name), "redis.sock")
}
func redisProcess(a Addon) string { return "addons/redis/" + a.Name }

// redisConf is the add-on's configuration: a unix socket only, that only
// its app's user may open, and a password.
func redisConf(dir, password, maxmem string) string {
	return strings.Join([]string{
		"# Written by hop3 at every start.",
		"port 0",
		"unixsocket " + filepath.Join(dir, "redis.sock"),
		"unixsocketperm 660",
		"dir " + dir,
		"dbfilename dump.rdb",
		"requirepass " + password,
		"maxmemory " + maxmem,
		"maxmemory-policy noeviction",
		"daemonize no",
		"logfile \"\"",
		"save 3600 1 300 100 60 10000",
		"",
	}, "\n")
}

// startRedis (re)writes the add-on's config and starts it as its app's
// user, who alone may open its socket.
func (m *Manager) startRedis(ctx context.Context, a Addon) error {
	bin := filepath.Join(m.cfg.RedisBin, "redis-server")
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no Redis on this server (%s missing): run scripts/setup.sh, or apt-get install redis-server", bin)
	}
	u, err := m.cfg.AppUser(ctx, a.App)
	if err != nil {
		return err
	}
	appDir, dir := redisAppDir(m.cfg.Root, a.App), redisDir(m.cfg.Root, a.App, a.Name)
	for _, d := range []string{appDir, dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return err
		}
		if err := chown(d, u); err != nil {
			return err
		}
	}
	// An app destroyed and made again has a new user: its add-on follows.
	for _, f := range []string{"dump.rdb"} {
		if p := filepath.Join(dir, f); fileExists(p) {
			if err := chown(p, u); err != nil {
				return err
			}
		}
	}
	maxmem := a.MaxMem
	if maxmem == "" {
		maxmem = DefaultMaxMemory
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := writeAtomic(conf, []byte(redisConf(dir, a.Password, maxmem))); err != nil {
		return err
	}
	if err := chown(conf, u); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.logPath("x")), 0o700); err != nil {
		return err
	}
	err = m.cfg.Supervisor.Start(ctx, supervisor.Spec{
		Name:        redisProcess(a),
		Labels:      map[string]string{"addon": a.Name, "addon_app": a.App, "uid": uidOf(u)},
		Command:     []string{bin, conf},
		Dir:         dir,
		Env:         procEnv,
		LogPath:     m.logPath(a.Name),
		Socket:      redisSock(m.cfg.Root, a.App, a.Name),
		Restart:     true,
		StopTimeout: 30 * time.Second, // it saves its data on SIGTERM
		User:        u,
	})
	if err != nil && !errors.Is(err, supervisor.ErrAlreadyStarted) {
		return fmt.Errorf("start Redis %s: %w", a.Name, err)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// redisCLI runs redis-cli on the add-on's socket, with the password in its
// environment.
func (m *Manager) redisCLI(ctx context.Context, a Addon, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(m.cfg.RedisBin, "redis-cli"),
		append([]string{"-s", redisSock(m.cfg.Root, a.App, a.Name)}, args...)...)
	cmd.Env = append(append([]string{}, procEnv...), "REDISCLI_AUTH="+a.Password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("redis-cli: %w: %s", err, lastLine(out))
	}
	return out, nil
}

// dumpRedis asks the server for an RDB snapshot (as a replica would get
// one) and writes it to path.
func (m *Manager) dumpRedis(ctx context.Context, a Addon, path string) error {
	if _, err := m.redisCLI(ctx, a, "--rdb", path); err != nil {
		return fmt.Errorf("back up %s: %w", a.Name, err)
	}
	if info, err := os.Stat(path); err != nil || info.Size() == 0 {
		return fmt.Errorf("back up %s: redis-cli wrote no snapshot", a.Name)
	}
	return nil
}

// restoreRedis stops the server (which saves), puts the backup in place of
// its RDB file and starts it again: it loads the backup.
func (m *Manager) restoreRedis(ctx context.Context, a Addon, backup string) error {
	if err := m.cfg.Supervisor.Stop(ctx, redisProcess(a)); err != nil && !errors.Is(err, supervisor.ErrNotFound) {
		return fmt.Errorf("stop %s: %w", a.Name, err)
	}
	dir := redisDir(m.cfg.Root, a.App, a.Name)
	if err := copyFile(backup, filepath.Join(dir, "dump.rdb")); err != nil {
		return fmt.Errorf("restore %s: %w", a.Name, err)
	}
	return m.startRedis(ctx, a)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := to + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(tmp)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, to)
}
