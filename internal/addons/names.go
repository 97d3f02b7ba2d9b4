// Package addons runs the backing services hop3 gives apps: one PostgreSQL
// cluster per server (a database and a role per add-on) and one Redis
// process per Redis add-on, each on a unix socket only, under hop3's own
// process manager. It also takes and restores their backups.
//
// Layout under the root:
//
//	addons/addons.json              the add-ons (hop3's, 0600; passwords inside)
//	addons/postgres/data            the cluster (the PostgreSQL user's, 0700)
//	addons/postgres/run             its socket directory (the postgres user's, 0700)
//	addons/run/<app>                the app's database socket, served by hop3 (group the app's, 0750)
//	addons/redis/<app>/<name>       a Redis add-on: config, RDB file, socket (the app's, 0700)
//	backups/<app>/<name>-<time>.dump|.rdb   backups (hop3's, 0600)
package addons

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is what an add-on runs.
type Kind string

// The kinds of add-on.
const (
	Postgres Kind = "postgres"
	Redis    Kind = "redis"
)

// ParseKind reads a kind as users type it.
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "postgres", "postgresql", "pg":
		return Postgres, nil
	case "redis":
		return Redis, nil
	}
	return "", fmt.Errorf("unknown add-on kind %q: use postgres or redis", s)
}

// Addon is one add-on of an app.
type Addon struct {
	Name     string    `json:"name"`
	App      string    `json:"app"`
	Kind     Kind      `json:"kind"`
	Password string    `json:"password"`
	Var      string    `json:"var"`                 // the config var holding its URL
	MaxMem   string    `json:"maxmemory,omitempty"` // Redis
	Created  time.Time `json:"created"`
}

// MaxNameLen keeps names usable as PostgreSQL identifiers (63 bytes) and in
// socket paths.
const MaxNameLen = 40

var validName = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)

// ValidateName returns a one-line reason when name is not a valid add-on
// name. Names become database and role names ('-' turned into '_'), so
// '_' is not allowed (two names would meet) and PostgreSQL's own names are
// refused.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("add-on name is empty")
	case len(name) > MaxNameLen:
		return fmt.Errorf("add-on name %q is too long (at most %d characters)", name, MaxNameLen)
	case !validName.MatchString(name):
		return fmt.Errorf("invalid add-on name %q: use lowercase letters, digits and '-', starting with a letter, at least 2 characters", name)
	case strings.HasPrefix(name, "pg-"):
		return fmt.Errorf("invalid add-on name %q: names starting with pg- are PostgreSQL's", name)
	case name == adminRole || name == "postgres" || name == "template0" || name == "template1":
		return fmt.Errorf("add-on name %q is reserved", name)
	}
	return nil
}

// DefaultName is the name an add-on gets when none is given: myapp-db,
// myapp-redis.
func DefaultName(app string, k Kind) string {
	if k == Postgres {
		return app + "-db"
	}
	return app + "-redis"
}

// ident is the database and role name of a PostgreSQL add-on.
func ident(name string) string { return strings.ReplaceAll(name, "-", "_") }

// VarName picks the config var of a new add-on: DATABASE_URL or REDIS_URL
// for the first of its kind in the app, <NAME>_URL after that (or when an
// add-on already holds the default).
func VarName(k Kind, name string, taken []string) string {
	def := "REDIS_URL"
	if k == Postgres {
		def = "DATABASE_URL"
	}
	for _, t := range taken {
		if t == def {
			return strings.ToUpper(ident(name)) + "_URL"
		}
	}
	return def
}

// newPassword is 32 hex digits: URL-safe, with 128 bits of randomness.
func newPassword() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return hex.EncodeToString(b)
}

// pctEncode percent-encodes everything but unreserved characters, so a
// socket directory can be a URL's host.
func pctEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// PostgresURL is a database URL on a unix socket directory, with the
// directory percent-encoded as the host: libpq (psycopg) and
// dj-database-url both read it so.
func PostgresURL(role, password, db, sockDir string) string {
	return "postgresql://" + role + ":" + password + "@" + pctEncode(sockDir) + "/" + db
}

// RedisURL is a Redis URL on a unix socket, as redis-py reads it.
func RedisURL(password, sock string) string {
	return "unix://:" + password + "@" + sock
}

// Mask hides the password of a URL built here.
func Mask(u, password string) string {
	if password == "" {
		return u
	}
	return strings.Replace(u, ":"+password+"@", ":****@", 1)
}
