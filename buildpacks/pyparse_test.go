package buildpacks

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParsePyRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw  string
		text string
	}{
		{"3.11", "3.11"},
		{"3.11.7\n", "3.11.7"},
		{"python-3.11.7", "3.11.7"},
		{"cpython-3.12.1-linux-x86_64-gnu", "3.12.1"},
		{"3", "3"},
	}
	for _, tt := range tests {
		r, err := parsePyRequest(tt.raw, "test")
		if err != nil || r.text != tt.text {
			t.Errorf("parsePyRequest(%q) = %q, %v; want %q", tt.raw, r.text, err, tt.text)
		}
	}
	if _, err := parsePyRequest("latest", "runtime.txt"); err == nil || !strings.Contains(err.Error(), "runtime.txt") {
		t.Errorf("parsePyRequest(latest) error = %v", err)
	}

	r, _ := parsePyRequest("3.11.2", "test")
	for v, want := range map[string]bool{"3.11.7": true, "3.11.2": true, "3.12.1": false, "2.11.2": false} {
		if got := r.matches(v); got != want {
			t.Errorf("3.11.2 matches %s = %v", v, got)
		}
	}
	if !r.exact("3.11.2") || r.exact("3.11.7") {
		t.Error("exact is wrong")
	}
	r, _ = parsePyRequest("3", "test")
	if !r.matches("3.13.0") {
		t.Error("3 does not match 3.13.0")
	}
}

func TestRequestedPythonOrder(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := newBuilder(Spec{Dir: dir, Env: map[string]string{}}, dir)
	if _, ok, err := b.requestedPython(); ok || err != nil {
		t.Fatalf("nothing requested: ok=%v err=%v", ok, err)
	}
	writeFile(t, filepath.Join(dir, "runtime.txt"), "python-3.10.4\n")
	if r, _, _ := b.requestedPython(); r.text != "3.10.4" || r.source != "runtime.txt" {
		t.Errorf("runtime.txt: %+v", r)
	}
	writeFile(t, filepath.Join(dir, ".python-version"), "# pinned\n3.12\n")
	if r, _, _ := b.requestedPython(); r.text != "3.12" || r.source != ".python-version" {
		t.Errorf(".python-version: %+v", r)
	}
	b.spec.Env["PYTHON_VERSION"] = "3.13"
	if r, _, _ := b.requestedPython(); r.text != "3.13" || r.source != "PYTHON_VERSION" {
		t.Errorf("PYTHON_VERSION: %+v", r)
	}
}

func TestScanRequirements(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "requirements.txt"), `# app
flask>=3 \
    --hash=sha256:abc
-r requirements/base.txt
--constraint=constraints.txt
-r requirements/missing.txt
https://example.com/pkg.tar.gz#egg=pkg  # a URL with a fragment
`)
	writeFile(t, filepath.Join(dir, "requirements", "base.txt"), "Granian[reload]==2.8.7\n")
	writeFile(t, filepath.Join(dir, "constraints.txt"), "click<9\n")
	scan, err := scanRequirements(filepath.Join(dir, "requirements.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range scan.files {
		names = append(names, f.name)
	}
	want := []string{"requirements.txt", "requirements/base.txt", "constraints.txt", "requirements/missing.txt"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("files = %v, want %v", names, want)
	}
	if !scan.granian || scan.local || scan.editable {
		t.Errorf("scan = granian %v, local %v, editable %v", scan.granian, scan.local, scan.editable)
	}

	writeFile(t, filepath.Join(dir, "local.txt"), "-e .\ngranian-extras\n")
	scan, err = scanRequirements(filepath.Join(dir, "local.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if scan.granian || !scan.local || !scan.editable {
		t.Errorf("local scan = granian %v, local %v, editable %v", scan.granian, scan.local, scan.editable)
	}
	writeFile(t, filepath.Join(dir, "path.txt"), "./vendor/pkg\n")
	if scan, _ := scanRequirements(filepath.Join(dir, "path.txt")); !scan.local || scan.editable {
		t.Errorf("path scan = local %v, editable %v", scan.local, scan.editable)
	}
}

func TestRequirementLines(t *testing.T) {
	t.Parallel()
	got := requirementLines([]byte("a==1 # pin\n\n  # comment\nb \\\n  >=2\nc#frag\n"))
	want := []string{"a==1", "b    >=2", "c#frag"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requirementLines = %q, want %q", got, want)
	}
}

func TestDeclaresGranianTOML(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]bool{
		`dependencies = ["granian>=2"]`:           true,
		`dependencies = ['granian[reload]==2.1']`: true,
		`dependencies = ["granian"]`:              true,
		`dependencies = ["granian-tools"]`:        false,
		`dependencies = ["flask"] # granian`:      false,
	} {
		if got := declaresGranianTOML([]byte(src)); got != want {
			t.Errorf("declaresGranianTOML(%s) = %v", src, got)
		}
	}
	if !hasBuildSystem([]byte("[project]\nname='x'\n\n[build-system]\nrequires=[]\n")) || hasBuildSystem([]byte("[project]\n")) {
		t.Error("hasBuildSystem is wrong")
	}
}

func TestRelocateVenv(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	tmp := filepath.Join(root, "py-1.tmp-9", "env")
	final := filepath.Join(root, "py-1")
	writeFile(t, filepath.Join(tmp, "bin", "granian"), "#!"+tmp+"/bin/python\nimport granian\n")
	writeFile(t, filepath.Join(tmp, "bin", "activate"), "VIRTUAL_ENV='"+tmp+"'\n")
	binary := "\x7fELF" + tmp
	writeFile(t, filepath.Join(tmp, "bin", "tool"), binary)
	writeFile(t, filepath.Join(tmp, "pyvenv.cfg"), "home = /usr/bin\ncommand = python -m venv "+tmp+"\n")
	if err := os.Symlink("/usr/bin/python3", filepath.Join(tmp, "bin", "python")); err != nil {
		t.Fatal(err)
	}
	if err := relocateVenv(tmp, final); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"bin/granian":  "#!" + final + "/bin/python\nimport granian\n",
		"bin/activate": "VIRTUAL_ENV='" + final + "'\n",
		"bin/tool":     binary,
		"pyvenv.cfg":   "home = /usr/bin\ncommand = python -m venv " + final + "\n",
	} {
		got, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
	}
}
