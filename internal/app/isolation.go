package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"hop3/buildpacks"
	"hop3/internal/isolation"
	"hop3/runtime/supervisor"
)

// prepareRoot gives hop3's root and its top directories their owners and
// modes. It runs at every start, so a root made by hand, by an older hop3
// or with a loose umask is closed again.
func (m *Manager) prepareRoot() error {
	p, l := m.cfg.Isolation, m.paths
	if err := os.MkdirAll(l.Root(), 0o700); err != nil {
		return fmt.Errorf("create root: %w", err)
	}
	if err := p.Dir(l.Root(), isolation.Traverse, nil); err != nil {
		return err
	}
	for _, d := range []struct {
		path string
		a    isolation.Access
	}{
		{l.ReposDir(), isolation.Private},
		{l.LogsDir(), isolation.Private},
		{l.AppsDir(), isolation.Traverse},
		{l.DataDir(), isolation.Traverse},
		{l.RunDir(), isolation.Traverse},
		{l.PIDs(), isolation.Private},
		{l.TmpDir(), isolation.Traverse},
	} {
		if err := p.Dir(d.path, d.a, nil); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(m.cfg.CacheDir, 0o700); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	// Apps pass through the cache directory to their own caches only.
	// Without isolation a cache directory of the operator's choosing keeps
	// its mode: another hop3 may share it.
	if p.On {
		if err := p.Dir(m.cfg.CacheDir, isolation.Traverse, nil); err != nil {
			return err
		}
	}
	if _, err := os.Stat(l.DB()); err == nil {
		if err := os.Chmod(l.DB(), 0o600); err != nil {
			return fmt.Errorf("close the database to others: %w", err)
		}
	}
	return nil
}

// appUser is the credential app's processes and builds run as; nil when
// isolation is off.
func (m *Manager) appUser(ctx context.Context, app string) (*supervisor.Credential, error) {
	if !m.cfg.Isolation.On {
		return nil, nil
	}
	n, err := m.cfg.Store.AppNumber(ctx, app)
	if err != nil {
		return nil, err
	}
	return m.cfg.Isolation.User(n), nil
}

// prepareApp creates app's directories with their owners and modes and
// returns the app's credential:
//
//	apps/<app>, apps/<app>/releases   hop3's, 0711: the app passes through
//	apps/<app>/envs                   hop3's, group the app's, 0750: read-only environments
//	data/<app> (DATA_DIR)             the app's, 0700
//	tmp/<app> (TMPDIR)                the app's, 0700
//	run/<app> (sockets)               the app's, group Caddy's, 0750
//	logs/<app>                        hop3's, 0700: written from the processes' pipes
//	<cache>/uid-<uid>                 the app's, 0700: its build caches and build HOME
func (m *Manager) prepareApp(ctx context.Context, app string) (*supervisor.Credential, error) {
	u, err := m.appUser(ctx, app)
	if err != nil {
		return nil, err
	}
	p, l := m.cfg.Isolation, m.paths
	if err := p.Dirs(isolation.Traverse, u, l.AppDir(app), l.Releases(app)); err != nil {
		return nil, err
	}
	if err := p.Dir(l.Envs(app), isolation.AppRead, u); err != nil {
		return nil, err
	}
	for _, d := range []string{l.Data(app), l.Tmp(app), m.appCacheDir(u)} {
		if u == nil && d == m.cfg.CacheDir {
			continue
		}
		// A DATA_DIR kept from an earlier app of the same name, or from
		// before isolation, becomes this app's, all of it.
		if _, err := os.Lstat(d); err == nil && u != nil && !isolation.OwnedBy(d, u.UID) {
			if err := p.Give(d, u); err != nil {
				return nil, err
			}
		}
		if err := p.Dir(d, isolation.AppOwn, u); err != nil {
			return nil, err
		}
	}
	if u != nil {
		if err := p.Dir(m.buildHome(u), isolation.AppOwn, u); err != nil {
			return nil, err
		}
	}
	if err := p.Dir(l.Run(app), isolation.AppServe, u); err != nil {
		return nil, err
	}
	if err := p.Dir(l.Logs(app), isolation.Private, nil); err != nil {
		return nil, err
	}
	return u, nil
}

// appCacheDir holds the build caches of the app that runs as u: its own
// when isolated (a cache one app writes must never feed another's build),
// the shared one otherwise. It is named by uid, which no two apps share and
// no later app inherits.
func (m *Manager) appCacheDir(u *supervisor.Credential) string {
	if u == nil {
		return m.cfg.CacheDir
	}
	return filepath.Join(m.cfg.CacheDir, "uid-"+strconv.FormatUint(uint64(u.UID), 10))
}

// buildHome is the HOME of an isolated app's builds.
func (m *Manager) buildHome(u *supervisor.Credential) string {
	return filepath.Join(m.appCacheDir(u), "home")
}

// buildUser tells the buildpacks who builds, or nil with isolation off.
func (m *Manager) buildUser(u *supervisor.Credential) *buildpacks.BuildUser {
	if u == nil {
		return nil
	}
	p := m.cfg.Isolation
	return &buildpacks.BuildUser{
		Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
		Give:       func(path string) error { return p.Give(path, u) },
		Take:       p.Take,
	}
}

// giveRelease makes a freshly checked-out release directory the app's: the
// build and the app may write it; Caddy's group may read it.
func (m *Manager) giveRelease(dir string, u *supervisor.Credential) error {
	if u == nil {
		return nil
	}
	if err := m.cfg.Isolation.Give(dir, u); err != nil {
		return err
	}
	return m.cfg.Isolation.Dir(dir, isolation.AppServe, u)
}

// uidLabel names the user a process runs as, for ps.
func uidLabel(u *supervisor.Credential) string {
	if u == nil {
		return strconv.Itoa(os.Getuid())
	}
	return strconv.FormatUint(uint64(u.UID), 10)
}
