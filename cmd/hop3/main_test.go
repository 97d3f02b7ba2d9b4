package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGlobalFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rest []string
		root string
	}{
		{[]string{"--root", "/r", "import-piku", "/p"}, []string{"import-piku", "/p"}, "/r"},
		{[]string{"--root=/r", "apps"}, []string{"apps"}, "/r"},
		{[]string{"-root", "/r", "keys", "list"}, []string{"keys", "list"}, "/r"},
		{[]string{"apps", "--root", "/r"}, []string{"apps", "--root", "/r"}, ""},
		{nil, nil, ""},
	} {
		rest, root, err := globalFlags(tc.args)
		if err != nil || root != tc.root || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("globalFlags(%q) = %q, %q, %v; want %q, %q", tc.args, rest, root, err, tc.rest, tc.root)
		}
	}
	if _, _, err := globalFlags([]string{"--root"}); err == nil {
		t.Error("--root without a value was accepted")
	}
}

func TestDaemonRoot(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rest []string
		root string
	}{
		{[]string{"apps", "--root", "/r"}, []string{"apps"}, "/r"},
		{[]string{"config:set", "--root=/r", "app", "K=V"}, []string{"config:set", "app", "K=V"}, "/r"},
		{[]string{"logs", "app", "--root", "/r", "-n", "5"}, []string{"logs", "app", "-n", "5"}, "/r"},
		// What follows "--", and run's command, is passed as it is.
		{[]string{"config:set", "app", "--", "--root", "/x"}, []string{"config:set", "app", "--", "--root", "/x"}, ""},
		{[]string{"run", "--root", "/r", "app", "ls", "--root", "/x"}, []string{"run", "app", "ls", "--root", "/x"}, "/r"},
	} {
		rest, root, err := daemonRoot(tc.args)
		if err != nil || root != tc.root || !reflect.DeepEqual(rest, tc.rest) {
			t.Errorf("daemonRoot(%q) = %q, %q, %v; want %q, %q", tc.args, rest, root, err, tc.rest, tc.root)
		}
	}
}

// --root before the command reaches the command: with no daemon on that
// root, each says so, naming it.
func TestRootBeforeOrAfter(t *testing.T) {
	root := t.TempDir()
	for _, args := range [][]string{
		{"--root", root, "import-piku", t.TempDir()},
		{"import-piku", t.TempDir(), "--root", root},
		{"--root", root, "apps"},
		{"apps", "--root", root},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), "not running on "+root) {
			t.Errorf("hop3 %q: exit %d\n%s", args, code, stderr.String())
		}
	}
}

// keys takes --root after its verb: given before the command, it lands there.
// keys without a verb lists, as the daemon's keys command does.
func TestRootBeforeKeys(t *testing.T) {
	for _, verb := range [][]string{{"list"}, nil} {
		root := t.TempDir()
		var stdout, stderr bytes.Buffer
		args := append([]string{"--root", root, "keys"}, verb...)
		if code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("hop3 %q: exit %d: %s", args, code, stderr.String())
		}
		if _, err := os.Stat(filepath.Join(root, "hop3.db")); err != nil {
			t.Errorf("hop3 %q did not use --root: %v", args, err)
		}
	}
}

func TestParseRenames(t *testing.T) {
	got, err := parseRenames([]string{"my_app=my-app", " Shop=shop "})
	if err != nil || !reflect.DeepEqual(got, map[string]string{"my_app": "my-app", "Shop": "shop"}) {
		t.Errorf("parseRenames = %v, %v", got, err)
	}
	for _, bad := range [][]string{{"my_app"}, {"=x"}, {"a=Bad_Name"}, {"a=x", "a=y"}, {"a=x", "b=x"}} {
		if _, err := parseRenames(bad); err == nil {
			t.Errorf("parseRenames(%q) was accepted", bad)
		}
	}
}
