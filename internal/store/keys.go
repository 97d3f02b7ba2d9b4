package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Role is what a key may do.
type Role int

// The zero Role is deliberately invalid, so a Key whose role was forgotten
// is rejected rather than stored as an admin.
const (
	RoleAdmin    Role = iota + 1 // everything, on every app
	RoleDeployer                 // push to and manage the apps listed in Key.Apps
)

// String returns "admin" or "deployer".
func (r Role) String() string {
	switch r {
	case RoleAdmin:
		return "admin"
	case RoleDeployer:
		return "deployer"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole is the inverse of Role.String.
func ParseRole(s string) (Role, error) {
	switch s {
	case "admin":
		return RoleAdmin, nil
	case "deployer":
		return RoleDeployer, nil
	}
	return 0, fmt.Errorf("parse role %q: want admin or deployer", s)
}

// keyNameChars are the characters a key name may hold: it shows in logs,
// events and keys:list, so it has no blank, quote or control character.
const keyNameChars = `A-Za-z0-9._@-`

var (
	keyName    = regexp.MustCompile(`^[A-Za-z0-9][` + keyNameChars + `]{0,63}$`)
	notKeyName = regexp.MustCompile(`[^` + keyNameChars + `]+`)
)

// ValidKeyName reports whether name may name a key: letters, digits, '.',
// '_', '@' and '-', starting with a letter or a digit, 64 at most.
func ValidKeyName(name string) bool { return keyName.MatchString(name) }

// KeyNameFrom turns free text, such as a key's comment, into the
// characters of a key name: each run of others becomes '-', and '-' and
// '.' at either end go. The result may still be empty or too long.
func KeyNameFrom(s string) string {
	return strings.Trim(notKeyName.ReplaceAllString(s, "-"), "-.")
}

// Key is an SSH public key allowed to connect.
type Key struct {
	Name        string    // unique, e.g. "alice"
	Fingerprint string    // unique, "SHA256:..." as ssh.FingerprintSHA256 prints it
	PublicKey   string    // authorized_keys form, one line
	Role        Role      // RoleAdmin or RoleDeployer
	Apps        []string  // for deployers, the apps they may use; sorted, nil when none
	Options     string    // authorized_keys options the key is limited by (from=, expiry-time=); "" for none
	CreatedAt   time.Time // set by AddKey when zero
}

// AddKey stores a new key with its app grants. It returns an error wrapping
// ErrExists, and naming whether the name or the public key is taken, when
// either is.
func (s *Store) AddKey(ctx context.Context, k Key) error {
	return s.AddKeys(ctx, []Key{k})
}

// AddKeys stores new keys, all or none, as AddKey does one.
func (s *Store) AddKeys(ctx context.Context, keys []Key) error {
	for _, k := range keys {
		if k.Role != RoleAdmin && k.Role != RoleDeployer {
			return fmt.Errorf("add key %s: invalid role %v", k.Name, k.Role)
		}
	}
	var failed string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if err := addKey(ctx, tx, k); err != nil {
				failed = k.Name
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("add key %s: %w", failed, err)
	}
	return nil
}

func addKey(ctx context.Context, tx *sql.Tx, k Key) error {
	created := k.CreatedAt
	if created.IsZero() {
		created = now()
	}
	var owner string
	err := tx.QueryRowContext(ctx, "SELECT name FROM keys WHERE name = ?", k.Name).Scan(&owner)
	if err == nil {
		return fmt.Errorf("key name %w", ErrExists)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	err = tx.QueryRowContext(ctx, "SELECT name FROM keys WHERE fingerprint = ?", k.Fingerprint).Scan(&owner)
	if err == nil {
		return fmt.Errorf("public key %s %w as %s", k.Fingerprint, ErrExists, owner)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	res, err := tx.ExecContext(ctx,
		"INSERT INTO keys (name, fingerprint, public_key, role, created_at, options) VALUES (?, ?, ?, ?, ?, ?)",
		k.Name, k.Fingerprint, k.PublicKey, k.Role.String(), toDB(created), k.Options)
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	return grant(ctx, tx, id, k.Apps)
}

// grant adds app grants to a key; duplicates collapse into one.
func grant(ctx context.Context, tx *sql.Tx, keyID int64, apps []string) error {
	for _, app := range apps {
		_, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO key_apps (key_id, app) VALUES (?, ?)", keyID, app)
		if err != nil {
			return err
		}
	}
	return nil
}

// RemoveKey deletes the named key and its grants. It returns ErrNotFound
// when there is no such key.
func (s *Store) RemoveKey(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, "DELETE FROM keys WHERE name = ?", name)
	if err != nil {
		return fmt.Errorf("remove key %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("remove key %s: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("remove key %s: %w", name, ErrNotFound)
	}
	return nil
}

// keySelect joins each key to its grants, one row per grant (or one row
// with a NULL app for a key without any), grouped by key.
const keySelect = `SELECT k.name, k.fingerprint, k.public_key, k.role, k.created_at, k.options, ka.app
FROM keys k LEFT JOIN key_apps ka ON ka.key_id = k.id`

// Keys returns every key, ordered by name.
func (s *Store) Keys(ctx context.Context) ([]Key, error) {
	keys, err := s.queryKeys(ctx, keySelect+" ORDER BY k.name, ka.app")
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return keys, nil
}

// KeyByFingerprint returns the key with that fingerprint, or ErrNotFound.
func (s *Store) KeyByFingerprint(ctx context.Context, fp string) (Key, error) {
	keys, err := s.queryKeys(ctx, keySelect+" WHERE k.fingerprint = ? ORDER BY ka.app", fp)
	if err != nil {
		return Key{}, fmt.Errorf("find key %s: %w", fp, err)
	}
	if len(keys) == 0 {
		return Key{}, fmt.Errorf("find key %s: %w", fp, ErrNotFound)
	}
	return keys[0], nil
}

func (s *Store) queryKeys(ctx context.Context, query string, args ...any) ([]Key, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []Key
	for rows.Next() {
		var k Key
		var role string
		var created int64
		var app sql.NullString
		if err := rows.Scan(&k.Name, &k.Fingerprint, &k.PublicKey, &role, &created, &k.Options, &app); err != nil {
			return nil, err
		}
		// Rows arrive grouped by key; a repeated name is another grant.
		if n := len(keys); n > 0 && keys[n-1].Name == k.Name {
			keys[n-1].Apps = append(keys[n-1].Apps, app.String)
			continue
		}
		if k.Role, err = ParseRole(role); err != nil {
			return nil, fmt.Errorf("key %s: %w", k.Name, err)
		}
		k.CreatedAt = fromDB(created)
		if app.Valid {
			k.Apps = []string{app.String}
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// SetKeyApps replaces the apps the named key may use. It returns ErrNotFound
// when there is no such key.
func (s *Store) SetKeyApps(ctx context.Context, name string, apps []string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM keys WHERE name = ?", name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM key_apps WHERE key_id = ?", id); err != nil {
			return err
		}
		return grant(ctx, tx, id, apps)
	})
	if err != nil {
		return fmt.Errorf("set apps of key %s: %w", name, err)
	}
	return nil
}
