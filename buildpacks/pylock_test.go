package buildpacks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// wantExport checks an export against want, or its error against want
// when wantErr is set.
func wantExport(t *testing.T, got []byte, err error, want string, wantErr bool) {
	t.Helper()
	if wantErr {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("err = %v, want one holding %q", err, want)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("export:\n%s\nwant:\n%s", got, want)
	}
}

func TestExportPoetryLock(t *testing.T) {
	fixture := filepath.Join("testdata", "poetry-app")
	read := func(name string) string {
		data, err := os.ReadFile(filepath.Join(fixture, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	lock, project := read("poetry.lock"), read("pyproject.toml")
	tests := []struct {
		name    string
		project string
		lock    string
		want    string // the export, or the error's text
		wantErr bool
	}{
		{
			name:    "fixture: main group pinned, dev left out, markers from the requirement",
			project: project, lock: lock,
			want: `click==8.1.3
colorama==0.4.5 ; platform_system == "Windows"
flask==2.1.3
itsdangerous==2.1.2
jinja2==3.1.2
markupsafe==2.1.2
setuptools==65.3.0
werkzeug==2.1.2
`,
		},
		{
			name:    "a dependency the lock lacks",
			project: strings.Replace(project, `setuptools = "65.3.0"`, "setuptools = \"65.3.0\"\nrequests = \"^2.28\"", 1),
			lock:    lock, wantErr: true,
			want: "pyproject.toml changed significantly since poetry.lock was last generated (requests not locked)",
		},
		{
			name:    "[project] dependencies with extras and markers per group",
			project: "[project]\nname = \"x\"\ndependencies = [\"uvicorn[standard] (>=0.20)\"]\n",
			lock: `[[package]]
name = "uvicorn"
version = "0.20.0"
[package.extras]
standard = ["httptools (>=0.5.0)"]
[[package]]
name = "httptools"
version = "0.5.0"
markers = {main = "sys_platform != \"win32\"", dev = "python_version < \"4\""}
`,
			want: "httptools==0.5.0 ; sys_platform != \"win32\"\nuvicorn==0.20.0\n",
		},
		{
			name:    "optional dependency without its extra is not installed",
			project: "[tool.poetry.dependencies]\npython = \"^3.9\"\na = {version = \"1\", optional = true}\nb = \"1\"\n",
			lock:    "[[package]]\nname = \"a\"\nversion = \"1\"\n[[package]]\nname = \"b\"\nversion = \"1\"\n",
			want:    "b==1\n",
		},
		{
			name:    "a package from git",
			project: "[tool.poetry.dependencies]\nb = {git = \"https://example.org/b.git\"}\n",
			lock:    "[[package]]\nname = \"b\"\nversion = \"1\"\n[package.source]\ntype = \"git\"\nurl = \"https://example.org/b.git\"\n",
			wantErr: true, want: "b comes from a git source",
		},
		{
			name: "not TOML", project: project, lock: "[[package\n",
			wantErr: true, want: "read poetry.lock:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"pyproject.toml": tt.project, "poetry.lock": tt.lock})
			got, err := exportPoetryLock(dir)
			wantExport(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestExportPipfileLock(t *testing.T) {
	lock := `{"_meta": {"hash": {"sha256": "x"}},
 "default": {
  "flask": {"hashes": ["sha256:aa"], "index": "pypi", "version": "==2.1.3"},
  "colorama": {"markers": "platform_system == 'Windows'", "version": "==0.4.5"}
 },
 "develop": {"pytest": {"version": "==7.1.3"}}}`
	tests := []struct {
		name    string
		files   map[string]string
		want    string
		wantErr bool
	}{
		{
			name:  "default section pinned, develop left out",
			files: map[string]string{"Pipfile": "[packages]\nflask = \"*\"\n[dev-packages]\npytest = \"*\"\n", "Pipfile.lock": lock},
			want:  "colorama==0.4.5 ; platform_system == 'Windows'\nflask==2.1.3\n",
		},
		{
			name:  "a package the lock lacks",
			files: map[string]string{"Pipfile": "[packages]\nflask = \"*\"\nrequests = \"*\"\n", "Pipfile.lock": lock},
			want:  "Pipfile.lock is out of date with Pipfile (requests not locked)", wantErr: true,
		},
		{
			name:  "a lock alone",
			files: map[string]string{"Pipfile.lock": lock},
			want:  "colorama==0.4.5 ; platform_system == 'Windows'\nflask==2.1.3\n",
		},
		{
			name:  "an unpinned package",
			files: map[string]string{"Pipfile.lock": `{"default": {"flask": {"version": "*"}}}`},
			want:  "flask has no pinned version", wantErr: true,
		},
		{
			name:  "not JSON",
			files: map[string]string{"Pipfile.lock": `{`},
			want:  "read Pipfile.lock:", wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exportPipfileLock(writeFiles(t, tt.files))
			wantExport(t, got, err, tt.want, tt.wantErr)
		})
	}
}

func TestExportPDMLock(t *testing.T) {
	project := "[project]\nname = \"x\"\ndependencies = [\"flask==2.1.3\"]\n[tool.pdm.dev-dependencies]\ntest = [\"pytest\"]\n"
	grouped := `[metadata]
groups = ["default", "test"]
lock_version = "4.4.1"
content_hash = "sha256:00"

[[package]]
name = "flask"
version = "2.1.3"
groups = ["default"]
dependencies = ["click>=8.0"]

[[package]]
name = "click"
version = "8.1.3"
groups = ["default"]
dependencies = ["colorama; platform_system == \"Windows\""]

[[package]]
name = "colorama"
version = "0.4.5"
groups = ["default", "test"]
marker = "platform_system == \"Windows\""

[[package]]
name = "pytest"
version = "7.1.3"
groups = ["test"]
`
	// A lock of PDM before 2.8: no groups, the walk decides.
	ungrouped := strings.NewReplacer(`groups = ["default"]`+"\n", "", `groups = ["default", "test"]`+"\n", "", `groups = ["test"]`+"\n", "").Replace(grouped)
	want := "click==8.1.3\ncolorama==0.4.5 ; platform_system == \"Windows\"\nflask==2.1.3\n"
	tests := []struct {
		name, project, lock, want string
		wantErr                   bool
	}{
		{"groups", project, grouped, want, false},
		{"no groups", project, ungrouped, want, false},
		{"a dependency the lock lacks", strings.Replace(project, `"flask==2.1.3"`, `"flask==2.1.3", "requests"`, 1), grouped,
			"pdm.lock is not up to date with pyproject.toml (requests not locked)", true},
		{"a local package", project, grouped + "\n[[package]]\nname = \"lib\"\nversion = \"1\"\ngroups = [\"default\"]\npath = \"./lib\"\n",
			"lib is not from a package index", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := exportPDMLock(writeFiles(t, map[string]string{"pyproject.toml": tt.project, "pdm.lock": tt.lock}))
			wantExport(t, got, err, tt.want, tt.wantErr)
		})
	}
}
