package buildpacks

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestChoosePM(t *testing.T) {
	berry := "__metadata:\n  version: 8\n"
	classic := "# yarn lockfile v1\n"
	tests := []struct {
		name    string
		pm      string
		files   map[string]string
		want    nodePM
		wantErr string
	}{
		{name: "nothing", want: nodePM{name: "npm"}},
		{name: "npm's lockfile first", files: map[string]string{npmLock: "{}", pnpmLock: "lockfileVersion: '9.0'\n"},
			want: nodePM{name: "npm", lockfile: npmLock}},
		{name: "shrinkwrap before package-lock", files: map[string]string{npmLock: "{}", npmShrinkwrap: "{}"},
			want: nodePM{name: "npm", lockfile: npmShrinkwrap}},
		{name: "packageManager pnpm", pm: "pnpm@9.15.9+sha512.0123abcd", files: map[string]string{npmLock: "{}", pnpmLock: ""},
			want: nodePM{name: "pnpm", version: "9.15.9", lockfile: pnpmLock}},
		{name: "pnpm lock alone: version from its format", files: map[string]string{pnpmLock: "lockfileVersion: '6.0'\n"},
			want: nodePM{name: "pnpm", version: "8.15.9", lockfile: pnpmLock}},
		{name: "pnpm lock of unknown format", files: map[string]string{pnpmLock: "lockfileVersion: '42.0'\n"},
			wantErr: `lockfileVersion "42.0"`},
		{name: "yarn lock alone", files: map[string]string{yarnLock: classic},
			want: nodePM{name: "yarn", version: "1.22.22", lockfile: yarnLock}},
		{name: "packageManager yarn 1", pm: "yarn@1.22.19", files: map[string]string{yarnLock: classic},
			want: nodePM{name: "yarn", version: "1.22.19", lockfile: yarnLock}},
		{name: "Yarn 2 lock without packageManager", files: map[string]string{yarnLock: berry},
			wantErr: "yarn.lock was written by Yarn 2 or later"},
		{name: "Yarn 4", pm: "yarn@4.5.3", files: map[string]string{yarnLock: berry},
			want: nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true}},
		{name: "Yarn 3", pm: "yarn@3.6.4", files: map[string]string{yarnLock: berry},
			wantErr: "Yarn 3.6.4 is not supported"},
		{name: "Yarn 4 with a Yarn 1 lock", pm: "yarn@4.5.3", files: map[string]string{yarnLock: classic},
			wantErr: "yarn.lock was written by Yarn 1"},
		{name: "packageManager without its lockfile", pm: "pnpm@9.15.9", files: map[string]string{npmLock: "{}"},
			wantErr: "names pnpm@9.15.9 but there is no pnpm-lock.yaml"},
		{name: "packageManager npm", pm: "npm@10.8.2", files: map[string]string{pnpmLock: ""},
			want: nodePM{name: "npm"}},
		{name: "a range is not a version", pm: "pnpm@^9", wantErr: "is not NAME@VERSION"},
		{name: "another tool", pm: "bun@1.1.0", wantErr: "is not NAME@VERSION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has := func(name string) bool { _, ok := tt.files[name]; return ok }
			read := func(name string) ([]byte, error) {
				data, ok := tt.files[name]
				if !ok {
					return nil, os.ErrNotExist
				}
				return []byte(data), nil
			}
			got, _, err := choosePM(tt.pm, has, read)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one holding %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPMInstallArgv(t *testing.T) {
	tests := []struct {
		pm   nodePM
		dev  bool
		want []string
	}{
		{nodePM{name: "npm", lockfile: npmLock}, true, []string{"npm", "ci", "--include=dev"}},
		{nodePM{name: "npm"}, false, []string{"npm", "install", "--omit=dev"}},
		{nodePM{name: "pnpm", version: "9.15.9", lockfile: pnpmLock}, true,
			[]string{"npm", "exec", "--yes", "--package=pnpm@9.15.9", "--", "pnpm", "install", "--frozen-lockfile", "--prod=false"}},
		{nodePM{name: "yarn", version: "1.22.22", lockfile: yarnLock}, false,
			[]string{"npm", "exec", "--yes", "--package=yarn@1.22.22", "--", "yarn", "install", "--frozen-lockfile", "--non-interactive", "--production=true"}},
		{nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true}, true,
			[]string{"npm", "exec", "--yes", "--package=@yarnpkg/cli-dist@4.5.3", "--", "yarn", "install", "--immutable"}},
		{nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true}, false,
			[]string{"npm", "exec", "--yes", "--package=@yarnpkg/cli-dist@4.5.3", "--", "yarn", "workspaces", "focus", "--all", "--production"}},
	}
	for _, tt := range tests {
		if got := tt.pm.installArgv("npm", tt.dev); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%+v dev=%t: %q, want %q", tt.pm, tt.dev, got, tt.want)
		}
	}
}

func TestPMSharedBlocker(t *testing.T) {
	pnpm := nodePM{name: "pnpm", version: "9.15.9", lockfile: pnpmLock}
	yarn := nodePM{name: "yarn", version: "1.22.22", lockfile: yarnLock}
	tests := []struct {
		name  string
		pm    nodePM
		lock  string
		files []string
		want  string // "" when the tree can be shared
	}{
		{"pnpm registry packages", pnpm, "settings:\n  excludeLinksFromLockfile: false\n  ms:\n    version: 2.1.3\n", nil, ""},
		{"pnpm link", pnpm, "  lib:\n    specifier: link:../lib\n    version: link:../lib\n", nil, "names local packages"},
		{"pnpm file", pnpm, "  lib:\n    version: file:lib\n", nil, "names local packages"},
		{"pnpm workspace", pnpm, "", []string{"pnpm-workspace.yaml"}, "workspaces"},
		{"pnpmfile", pnpm, "", []string{".pnpmfile.cjs"}, ".pnpmfile.cjs"},
		{"yarn registry", yarn, "ms@2.1.3:\n  version \"2.1.3\"\n", nil, ""},
		{"yarn file", yarn, "\"lib@file:./lib\":\n  version \"1.0.0\"\n", nil, "names local packages"},
		{"yarn 4 registry", nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true},
			"\"ms@npm:2.1.3\":\n  resolution: \"ms@npm:2.1.3\"\n\"app@workspace:.\":\n  resolution: \"app@workspace:.\"\n", nil, ""},
		{"yarn 4 workspace", nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true},
			"\"lib@workspace:packages/lib\":\n  resolution: \"lib@workspace:packages/lib\"\n", nil, "names local packages"},
		{"yarn 4 plugins", nodePM{name: "yarn", version: "4.5.3", lockfile: yarnLock, berry: true}, "", []string{".yarnrc.yml"}, "plugins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			has := func(name string) bool {
				for _, f := range tt.files {
					if f == name {
						return true
					}
				}
				return false
			}
			read := func(name string) []byte {
				if name == ".yarnrc.yml" && has(name) {
					return []byte("plugins:\n  - path: .yarn/plugins/x.cjs\n")
				}
				return nil
			}
			got := tt.pm.sharedBlocker(packageJSON{}, []byte(tt.lock), has, read)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("sharedBlocker = %q, want %q", got, tt.want)
			}
		})
	}
}
