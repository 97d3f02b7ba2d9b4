package commands

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"hop3/internal/store"
)

// TestKeysAddOptions covers keys:add's options and inputs: from= and
// expiry-time= are stored, every other option is refused by name (command=
// with the hint to strip it), every key on stdin is added (NAME, NAME-2,
// ...) or none, and flags go before or after NAME.
func TestKeysAddOptions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	k1, k2, k3 := testPublicKey(t), testPublicKey(t), testPublicKey(t)
	tests := []struct {
		args  []string
		stdin string
		code  int
		want  string
	}{
		{[]string{"keys:add", "x"}, `command="piku.py shell" ` + k1, exitFail, `strip the command="..." prefix`},
		{[]string{"keys:add", "x"}, `no-pty ` + k1, exitFail, "option no-pty is not supported"},
		{[]string{"keys:add", "x"}, `restrict ` + k1, exitFail, "option restrict is not supported"},
		{[]string{"keys:add", "x"}, `from="10.0.0.0/99" ` + k1, exitFail, "not an address block"},
		{[]string{"keys:add", "x"}, k1 + "\n" + `no-agent-forwarding ` + k2 + "\n", exitFail, "line 2: option no-agent-forwarding"},
		{[]string{"keys:add", "x", "--apps", "a"}, k1, exitUsage, "--apps is for deployer keys (--role deployer)"},
		{[]string{"keys:add", "x", "--role", "admin", "--apps", "a"}, k1, exitUsage, "--apps is for deployer keys"},
		{[]string{"keys:add", "x"}, k1 + "\n" + k1 + "\n", exitFail, "already exists as x"},
	}
	for _, tt := range tests {
		r := e.run(admin, tt.stdin, tt.args...)
		if r.code != tt.code {
			t.Errorf("%q: exit %d, want %d", tt.args, r.code, tt.code)
		}
		oneFailLine(t, r, tt.want)
	}
	if ks, _ := e.st.Keys(context.Background()); len(ks) != 0 {
		t.Fatalf("refused keys:add stored keys: %+v", ks)
	}

	in := "# laptop and CI\n" + `from="10.0.0.0/8,!10.0.0.5",expiry-time="20991231Z" ` + k1 + "\n\n" + k2 + "\n" + k3 + "\n"
	e.run(admin, in, "keys:add", "team", "--role", "deployer", "--apps", "a,b")
	ks, err := e.st.Keys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, k := range ks {
		got = append(got, k.Name+" "+k.Role.String()+" "+strings.Join(k.Apps, ",")+" "+k.Options)
	}
	want := []string{
		`team deployer a,b from="10.0.0.0/8,!10.0.0.5",expiry-time="20991231000000Z"`,
		"team-2 deployer a,b ",
		"team-3 deployer a,b ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAddKeysOneRule runs the exported path `hop3 keys add` uses against a
// store of its own: the same rules as keys:add, flags after the name.
func TestAddKeysOneRule(t *testing.T) {
	t.Parallel()
	st, err := store.Open(filepath.Join(t.TempDir(), "hop3.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := AddKeys(ctx, st, []string{"dee", "--apps", "a"}, strings.NewReader(testPublicKey(t))); err == nil || err.(*Error).Code != exitUsage {
		t.Errorf("--apps without --role deployer: %v", err)
	}
	keys, err := AddKeys(ctx, st, []string{"dee", "--apps", "a", "--role", "deployer"}, strings.NewReader(testPublicKey(t)))
	if err != nil || len(keys) != 1 || keys[0].Role != store.RoleDeployer || !slices.Equal(keys[0].Apps, []string{"a"}) {
		t.Fatalf("AddKeys = %+v, %v", keys, err)
	}
	if keys, err := AddKeys(ctx, st, []string{"--role", "deployer", "--apps", "a", "dee2"}, strings.NewReader(testPublicKey(t))); err != nil || keys[0].Name != "dee2" {
		t.Fatalf("flags before the name: %+v, %v", keys, err)
	}
}

// TestAppsDiskColumn shows each app's measured disk use, "-" (null in
// JSON) before the first measure.
func TestAppsDiskColumn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.app("myapp", "web: x\n")
	e.app("unmeasured", "")
	r := e.ok("apps")
	if !strings.Contains(r.stdout, "DISK") || !strings.Contains(r.stdout, "3.0 MiB") {
		t.Errorf("apps:\n%s", r.stdout)
	}
	var rows []appJSON
	if err := json.Unmarshal([]byte(e.ok("apps", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		switch {
		case row.Name == "myapp" && (row.DiskBytes == nil || *row.DiskBytes != 3<<20):
			t.Errorf("myapp disk_bytes = %v", row.DiskBytes)
		case row.Name == "unmeasured" && row.DiskBytes != nil:
			t.Errorf("unmeasured disk_bytes = %v", *row.DiskBytes)
		}
	}
}
