package addons

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"hop3/internal/layout"
	"hop3/runtime/supervisor"
)

// pgProcess is the supervised name of the cluster.
const pgProcess = "addons/postgres"

// adminRole is the cluster's superuser, used by hop3 alone (its password is
// in a file only hop3 reads).
const adminRole = "hop3"

func (m *Manager) pgBase() string      { return filepath.Join(m.dir(), "postgres") }
func (m *Manager) pgData() string      { return filepath.Join(m.pgBase(), "data") }
func (m *Manager) pgAdminPass() string { return filepath.Join(m.pgBase(), "admin.pass") }
func pgSockDir(root string) string {
	return filepath.Join(layout.New(root).Addons(), "postgres", "run")
}
func (m *Manager) pgBin(name string) string { return filepath.Join(m.cfg.PostgresBin, name) }

// SystemUser is the credential of the cluster when hop3 may switch users:
// Debian's postgres system user, made by the postgresql package. PostgreSQL
// refuses to run as root, and initdb needs a user with a passwd entry, which
// hop3's numeric users have not. Nil when there is no such user (creating
// an add-on then says so).
func SystemUser() *supervisor.Credential {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil
	}
	return &supervisor.Credential{UID: uint32(uid), GID: uint32(gid)}
}

// pgHBA lets hop3's admin role in anywhere, and each add-on's role into the
// database of the same name only, always with a password (SCRAM).
const pgHBA = `# Written by hop3: each role may reach only the database of its own name.
local   all        hop3   scram-sha-256
local   sameuser   all    scram-sha-256
`

// ensureCluster creates the cluster on first use and starts it when it is
// not running.
func (m *Manager) ensureCluster(ctx context.Context) error {
	if _, err := os.Stat(m.pgBin("postgres")); err != nil {
		return fmt.Errorf("no PostgreSQL 15 on this server (%s missing): run scripts/setup.sh, or apt-get install postgresql-15", m.pgBin("postgres"))
	}
	if m.cfg.PostgresUser == nil && os.Geteuid() == 0 {
		return errors.New("no postgres system user to run PostgreSQL as (it refuses root): install postgresql-15")
	}
	if _, err := os.Stat(filepath.Join(m.pgData(), "PG_VERSION")); err != nil {
		if err := m.initCluster(ctx); err != nil {
			return err
		}
	}
	if st, ok := m.cfg.Supervisor.Status(pgProcess); ok && st.State != supervisor.Exited && st.State != supervisor.Crashed {
		return nil
	}
	_ = m.cfg.Supervisor.Stop(ctx, pgProcess)
	u := m.cfg.PostgresUser
	sock := pgSockDir(m.cfg.Root)
	// The postgres user's alone: apps come through their own sockets (see
	// proxy.go); hop3 is root, or the postgres user itself.
	if err := os.MkdirAll(sock, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(sock, 0o700); err != nil {
		return err
	}
	if err := chown(sock, u); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(m.logPath("x")), 0o700); err != nil {
		return err
	}
	err := m.cfg.Supervisor.Start(ctx, supervisor.Spec{
		Name:   pgProcess,
		Labels: map[string]string{"addon": "postgres", "uid": uidOf(u)},
		Command: []string{m.pgBin("postgres"), "-D", m.pgData(),
			"-c", "listen_addresses=",
			"-c", "unix_socket_directories=" + sock,
			"-c", "unix_socket_permissions=0700",
			"-c", "hba_file=" + filepath.Join(m.pgData(), "pg_hba.conf"),
		},
		Dir:          m.pgData(),
		Env:          procEnv,
		LogPath:      m.logPath("postgres"),
		Socket:       filepath.Join(sock, ".s.PGSQL.5432"),
		Restart:      true,
		StartTimeout: 2 * time.Minute, // crash recovery after a kill
		StopTimeout:  30 * time.Second,
		User:         u,
	})
	if err != nil && !errors.Is(err, supervisor.ErrAlreadyStarted) {
		return fmt.Errorf("start PostgreSQL: %w", err)
	}
	return m.awaitQueries(ctx)
}

// awaitQueries waits until the cluster answers a query: its socket accepts
// connections a moment before it serves them ("the database system is
// starting up"), and longer after a crash.
func (m *Manager) awaitQueries(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, err := m.adminSQL(ctx, "SELECT 1;\n")
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the PostgreSQL cluster does not answer: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// initCluster runs initdb as the cluster's user, with a generated
// superuser password and hop3's pg_hba.conf.
func (m *Manager) initCluster(ctx context.Context) error {
	u := m.cfg.PostgresUser
	data := m.pgData()
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if err := chown(data, u); err != nil {
		return err
	}
	pass := newPassword()
	if err := writeAtomic(m.pgAdminPass(), []byte(pass+"\n")); err != nil {
		return err
	}
	// initdb reads the password from a file its user can read, removed
	// right after.
	pw := filepath.Join(m.pgBase(), "initdb.pw")
	if err := os.WriteFile(pw, []byte(pass+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	if err := chown(pw, u); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, m.pgBin("initdb"), "-D", data, "-U", adminRole, "--pwfile="+pw,
		"--auth-local=scram-sha-256", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8")
	cmd.Env = procEnv
	cmd.Dir = data
	if u != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(data)
		return fmt.Errorf("initdb: %w: %s", err, lastLine(out))
	}
	hba := filepath.Join(data, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(pgHBA), 0o600); err != nil {
		return err
	}
	return chown(hba, u)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// pgClient runs a PostgreSQL client program as hop3, with the password in
// its environment (never on a command line others can read).
func (m *Manager) pgClient(ctx context.Context, password, prog string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, m.pgBin(prog), args...)
	cmd.Env = append(append([]string{}, procEnv...), "PGPASSWORD="+password, "PGHOST="+pgSockDir(m.cfg.Root), "PGCONNECT_TIMEOUT=10")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", prog, err, lastLine(out.Bytes()))
	}
	return out.Bytes(), nil
}

// adminSQL runs statements as the admin role, one by one (CREATE DATABASE
// may not run in a transaction), stopping at the first error. The SQL goes
// on stdin.
func (m *Manager) adminSQL(ctx context.Context, sql string) (string, error) {
	pass, err := os.ReadFile(m.pgAdminPass())
	if err != nil {
		return "", fmt.Errorf("read the cluster's admin password: %w", err)
	}
	cmd := exec.CommandContext(ctx, m.pgBin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-U", adminRole, "-d", "postgres")
	cmd.Env = append(append([]string{}, procEnv...), "PGPASSWORD="+strings.TrimSpace(string(pass)), "PGHOST="+pgSockDir(m.cfg.Root), "PGCONNECT_TIMEOUT=10")
	cmd.Stdin = strings.NewReader(sql)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("psql: %w: %s", err, lastLine(errb.Bytes()))
	}
	return strings.TrimSpace(out.String()), nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// createDatabase makes the add-on's role (no rights beyond its own
// database) and database; connecting is refused to everyone else.
func (m *Manager) createDatabase(ctx context.Context, a Addon) error {
	id := quoteIdent(ident(a.Name))
	sql := fmt.Sprintf(`CREATE ROLE %[1]s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD '%[2]s';
CREATE DATABASE %[1]s OWNER %[1]s;
REVOKE ALL ON DATABASE %[1]s FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE %[1]s TO %[1]s;
`, id, a.Password)
	if _, err := m.adminSQL(ctx, sql); err != nil {
		// A half-made add-on is undone, so the name can be used again.
		_, _ = m.adminSQL(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s;\nDROP ROLE IF EXISTS %[1]s;\n", id))
		return fmt.Errorf("create database %s: %w", a.Name, err)
	}
	return nil
}

func (m *Manager) dropDatabase(ctx context.Context, a Addon) error {
	id := quoteIdent(ident(a.Name))
	if _, err := m.adminSQL(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %[1]s WITH (FORCE);\nDROP ROLE IF EXISTS %[1]s;\n", id)); err != nil {
		return fmt.Errorf("drop database %s: %w", a.Name, err)
	}
	return nil
}

func (m *Manager) databaseSize(ctx context.Context, a Addon) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := m.adminSQL(ctx, fmt.Sprintf("SELECT pg_database_size('%s');\n", ident(a.Name)))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(out, 10, 64)
}

// dumpDatabase writes a custom-format dump, taken as the add-on's own role:
// a consistent snapshot of everything it owns.
func (m *Manager) dumpDatabase(ctx context.Context, a Addon, path string) error {
	_, err := m.pgClient(ctx, a.Password, "pg_dump", "-Fc", "-U", ident(a.Name), "-d", ident(a.Name), "-f", path)
	if err != nil {
		return fmt.Errorf("back up %s: %w", a.Name, err)
	}
	return nil
}

// restoreDatabase replaces the database's objects by the dump's, as the
// add-on's role.
func (m *Manager) restoreDatabase(ctx context.Context, a Addon, path string) error {
	_, err := m.pgClient(ctx, a.Password, "pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction",
		"-U", ident(a.Name), "-d", ident(a.Name), path)
	if err != nil {
		return fmt.Errorf("restore %s: %w", a.Name, err)
	}
	return nil
}

// PsqlCommand is the command line of an interactive psql on the add-on's
// database as its role. The password goes through env, which exec's psql
// so that it does not stay on a command line.
func (m *Manager) PsqlCommand(a Addon) ([]string, error) {
	if a.Kind != Postgres {
		return nil, fmt.Errorf("%s is a %s add-on, not postgres", a.Name, a.Kind)
	}
	return []string{"/usr/bin/env", "PGPASSWORD=" + a.Password, m.pgBin("psql"),
		"-h", appSockDir(m.cfg.Root, a.App), "-U", ident(a.Name), "-d", ident(a.Name)}, nil
}

func signalPID(pid int) error { return syscall.Kill(pid, syscall.SIGINT) }
