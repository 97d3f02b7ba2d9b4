package addons

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"myapp-db", true},
		{"a1", true},
		{"cache-2", true},
		{"", false},
		{"a", false},
		{"My-db", false},
		{"my_db", false}, // would meet my-db as a PostgreSQL name
		{"1db", false},
		{"db-", false},
		{"pg-stats", false},
		{"hop3", false},
		{"postgres", false},
		{"template1", false},
		{strings.Repeat("a", MaxNameLen), true},
		{strings.Repeat("a", MaxNameLen+1), false},
		{"a/b", false},
		{"a b", false},
	} {
		if err := ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestParseKind(t *testing.T) {
	for in, want := range map[string]Kind{"postgres": Postgres, "PostgreSQL": Postgres, "pg": Postgres, "redis": Redis} {
		if k, err := ParseKind(in); err != nil || k != want {
			t.Errorf("ParseKind(%q) = %v, %v", in, k, err)
		}
	}
	if _, err := ParseKind("mysql"); err == nil {
		t.Error("mysql accepted")
	}
}

func TestVarName(t *testing.T) {
	for _, tc := range []struct {
		k     Kind
		name  string
		taken []string
		want  string
	}{
		{Postgres, "app-db", nil, "DATABASE_URL"},
		{Postgres, "analytics-db", []string{"DATABASE_URL"}, "ANALYTICS_DB_URL"},
		{Redis, "app-redis", nil, "REDIS_URL"},
		{Redis, "jobs", []string{"REDIS_URL"}, "JOBS_URL"},
		{Redis, "jobs", []string{"DATABASE_URL"}, "REDIS_URL"},
	} {
		if got := VarName(tc.k, tc.name, tc.taken); got != tc.want {
			t.Errorf("VarName(%v, %q, %v) = %q, want %q", tc.k, tc.name, tc.taken, got, tc.want)
		}
	}
	if DefaultName("shop", Postgres) != "shop-db" || DefaultName("shop", Redis) != "shop-redis" {
		t.Error("default names")
	}
}

func TestURLs(t *testing.T) {
	u := PostgresURL("app_db", "0123abcd", "app_db", "/var/lib/hop3/addons/run/app")
	if u != "postgresql://app_db:0123abcd@%2Fvar%2Flib%2Fhop3%2Faddons%2Frun%2Fapp/app_db" {
		t.Fatalf("PostgresURL = %q", u)
	}
	// dj-database-url and libpq unquote the host from the raw netloc: it
	// must come back whole.
	netloc := strings.TrimPrefix(u, "postgresql://")
	netloc = netloc[:strings.Index(netloc, "/")]
	cred, enc, _ := strings.Cut(netloc, "@")
	if h, err := url.PathUnescape(enc); err != nil || h != "/var/lib/hop3/addons/run/app" || cred != "app_db:0123abcd" {
		t.Fatalf("host %q, credentials %q: %v", h, cred, err)
	}
	// Characters a root may hold are encoded.
	if got := pctEncode("/srv/my hop3+x"); got != "%2Fsrv%2Fmy%20hop3%2Bx" {
		t.Errorf("pctEncode = %q", got)
	}
	r := RedisURL("pw", "/root/addons/redis/a/a-redis/redis.sock")
	if r != "unix://:pw@/root/addons/redis/a/a-redis/redis.sock" {
		t.Errorf("RedisURL = %q", r)
	}
	if m := Mask(u, "0123abcd"); strings.Contains(m, "0123abcd") || !strings.Contains(m, "app_db:****@") {
		t.Errorf("Mask = %q", m)
	}
	if m := Mask(r, "pw"); m != "unix://:****@/root/addons/redis/a/a-redis/redis.sock" {
		t.Errorf("Mask = %q", m)
	}
}

func TestBackupRetention(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < KeepBackups+3; i++ {
		for _, name := range []string{"app-db", "app-db-2"} {
			f := filepath.Join(dir, backupName(name, Postgres, start.Add(time.Duration(i)*time.Minute)))
			if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A backup being written, and strangers, are not backups.
	for _, f := range []string{".app-db-20260102T030405.000Z.dump.tmp", "app-db-notes.txt", "app-db-20260102T030405Z.dump"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	if err := prune(dir, "app-db", KeepBackups); err != nil {
		t.Fatal(err)
	}
	list, err := listBackups(dir, "app-db")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != KeepBackups {
		t.Fatalf("kept %d backups, want %d", len(list), KeepBackups)
	}
	if !list[0].Time.Equal(start.Add(3*time.Minute)) || !list[len(list)-1].Time.Equal(start.Add(time.Duration(KeepBackups+2)*time.Minute)) {
		t.Errorf("kept %s .. %s: not the newest", list[0].Name, list[len(list)-1].Name)
	}
	// Another add-on whose name extends this one's is untouched.
	if other, _ := listBackups(dir, "app-db-2"); len(other) != KeepBackups+3 {
		t.Errorf("app-db-2 has %d backups after pruning app-db", len(other))
	}
	if _, err := os.Stat(filepath.Join(dir, ".app-db-20260102T030405.000Z.dump.tmp")); err != nil {
		t.Error("pruning removed a file that is not a backup")
	}
	if _, ok := parseBackup("app-db-20260102T030405.000Z.rdb", "app-db"); !ok {
		t.Error("rdb not parsed")
	}
	if _, ok := parseBackup("../app-db-20260102T030405.000Z.dump", "app-db"); ok {
		t.Error("a path parsed as a backup")
	}
}

// startupMsg builds a protocol 3 startup message.
func startupMsg(params ...string) []byte {
	var body []byte
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	msg := make([]byte, 8, 8+len(body))
	binary.BigEndian.PutUint32(msg, uint32(8+len(body)))
	binary.BigEndian.PutUint32(msg[4:], pgProtocol3)
	return append(msg, body...)
}

func TestProxyStartup(t *testing.T) {
	roles := map[string]bool{"shop_db": true}
	ssl := make([]byte, 8)
	binary.BigEndian.PutUint32(ssl, 8)
	binary.BigEndian.PutUint32(ssl[4:], pgSSLRequest)
	for _, tc := range []struct {
		in   []byte
		want string // "" allowed
	}{
		{startupMsg("user", "shop_db", "database", "shop_db"), ""},
		{startupMsg("user", "shop_db"), ""},
		{append(ssl, startupMsg("user", "shop_db", "database", "shop_db")...), ""},
		{startupMsg("user", "other_db", "database", "other_db"), `role "other_db" is not an add-on of this app`},
		{startupMsg("user", "shop_db", "database", "postgres"), "may connect only to database"},
		{startupMsg("user", "hop3", "database", "postgres"), "not an add-on"},
		{startupMsg("user", "shop_db", "database", "shop_db", "replication", "true"), "replication"},
	} {
		var answer bytes.Buffer
		s, err := readStartup(bufio.NewReader(bytes.NewReader(tc.in)), &answer)
		if err != nil {
			t.Fatalf("readStartup: %v", err)
		}
		err = allowed(s, roles)
		if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && !strings.Contains(got, tc.want)) {
			t.Errorf("params %v: %v, want %q", s.params, err, tc.want)
		}
		if len(tc.in) > len(s.raw) && answer.String() != "N" {
			t.Errorf("SSL request answered %q", answer.String())
		}
		if !bytes.HasSuffix(tc.in, s.raw) {
			t.Errorf("raw message not kept whole")
		}
	}
	// A length out of bounds ends the connection.
	bad := startupMsg("user", "x")
	binary.BigEndian.PutUint32(bad, 1<<30)
	if _, err := readStartup(bufio.NewReader(bytes.NewReader(bad)), &bytes.Buffer{}); err == nil {
		t.Error("huge startup message accepted")
	}
	e := pgError("no")
	if e[0] != 'E' || int(binary.BigEndian.Uint32(e[1:])) != len(e)-1 || !bytes.Contains(e, []byte("Mno\x00")) {
		t.Errorf("pgError = %q", e)
	}
}

func TestValidateMemory(t *testing.T) {
	for s, ok := range map[string]bool{"64mb": true, "1gb": true, "256MB": true, "64gb": true, "65gb": false, "0mb": false, "10": false, "10kb": false, "-1mb": false, "1 gb": false, "": false} {
		if err := ValidateMemory(s); (err == nil) != ok {
			t.Errorf("ValidateMemory(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestRedisConf(t *testing.T) {
	c := redisConf("/r/a/x", "pw", "64mb")
	for _, want := range []string{"port 0\n", "unixsocket /r/a/x/redis.sock\n", "unixsocketperm 660\n", "requirepass pw\n", "maxmemory 64mb\n"} {
		if !strings.Contains(c, want) {
			t.Errorf("redis.conf lacks %q:\n%s", want, c)
		}
	}
}
