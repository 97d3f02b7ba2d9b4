package buildpacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// Lockfiles of other Python tools, followed without the tools themselves:
// their pins are turned into a requirements set that uv or pip installs.
const (
	pyPoetryLock  = "poetry.lock"
	pyPipfileLock = "Pipfile.lock"
	pyPipfile     = "Pipfile"
	pyPDMLock     = "pdm.lock"
)

// poetryLock is the part of poetry.lock that says what to install.
type poetryLock struct {
	Package []poetryPackage `toml:"package"`
}

type poetryPackage struct {
	Name         string              `toml:"name"`
	Version      string              `toml:"version"`
	Markers      any                 `toml:"markers"` // a string, or a table by group (Poetry 2)
	Dependencies map[string]any      `toml:"dependencies"`
	Extras       map[string][]string `toml:"extras"`
	Source       struct {
		Type string `toml:"type"`
	} `toml:"source"`
}

// pyProjectDeps is where a pyproject.toml names its runtime dependencies.
type pyProjectDeps struct {
	Project struct {
		Dependencies []string `toml:"dependencies"`
	} `toml:"project"`
	Tool struct {
		Poetry struct {
			Dependencies map[string]any `toml:"dependencies"`
		} `toml:"poetry"`
	} `toml:"tool"`
}

// exportPoetryLock turns poetry.lock into pinned requirements: the packages
// that the runtime dependencies of pyproject.toml reach through the lock's
// dependency tables, each at its locked version. The lock does not say
// which group a package is in (Poetry 1.5 and later), so the walk from
// [tool.poetry.dependencies] and [project].dependencies is what leaves dev
// groups out, as `poetry install --only main` does.
//
// The lock is checked against pyproject.toml by name: a runtime dependency
// that pyproject.toml declares and poetry.lock does not hold means the lock
// is stale, and the build stops instead of resolving afresh. (Poetry's own
// content-hash covers the whole [tool.poetry] table in a form that changes
// between Poetry versions; a version constraint changed without a new lock
// goes unnoticed, and the locked version is installed.)
func exportPoetryLock(dir string) ([]byte, error) {
	var lock poetryLock
	if _, err := toml.DecodeFile(filepath.Join(dir, pyPoetryLock), &lock); err != nil {
		return nil, fmt.Errorf("read poetry.lock: %w", err)
	}
	var proj pyProjectDeps
	if _, err := toml.DecodeFile(filepath.Join(dir, pyProject), &proj); err != nil {
		return nil, fmt.Errorf("read pyproject.toml: %w", err)
	}
	pkgs := make(map[string]*poetryPackage)
	for i := range lock.Package {
		p := &lock.Package[i]
		if p.Name == "" || p.Version == "" {
			return nil, errors.New("read poetry.lock: a package without a name or version")
		}
		pkgs[normalizeName(p.Name)] = p
	}

	// edges collects, for each package reached, the markers of the
	// requirements that reach it; "" is a requirement without markers.
	edges := make(map[string][]string)
	var missing []string
	var visit func(name, marker string, extras []string)
	visit = func(name, marker string, extras []string) {
		n := normalizeName(name)
		if n == "python" {
			return
		}
		p, ok := pkgs[n]
		if !ok {
			missing = append(missing, name)
			return
		}
		_, seen := edges[n]
		edges[n] = append(edges[n], marker)
		for _, x := range extras {
			for _, req := range p.Extras[x] {
				if dep := reqNameRe.FindString(strings.TrimSpace(req)); dep != "" {
					visit(dep, "", nil)
				}
			}
		}
		if seen {
			return
		}
		for dep, spec := range p.Dependencies {
			for _, c := range poetryConstraints(spec) {
				if !c.optional {
					visit(dep, c.markers, c.extras)
				}
			}
		}
	}
	for name, spec := range proj.Tool.Poetry.Dependencies {
		for _, c := range poetryConstraints(spec) {
			if !c.optional {
				visit(name, "", c.extras)
			}
		}
	}
	for _, req := range proj.Project.Dependencies {
		req = strings.TrimSpace(req)
		name := reqNameRe.FindString(req)
		var extras []string
		if rest := req[len(name):]; strings.HasPrefix(strings.TrimSpace(rest), "[") {
			inner, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimSpace(rest), "["), "]")
			for _, x := range strings.Split(inner, ",") {
				extras = append(extras, strings.TrimSpace(x))
			}
		}
		if name != "" {
			visit(name, "", extras)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("pyproject.toml changed significantly since poetry.lock was last generated (%s not locked); run `poetry lock` and commit poetry.lock", strings.Join(missing, ", "))
	}

	var lines []string
	for n, markers := range edges {
		p := pkgs[n]
		switch p.Source.Type {
		case "", "legacy":
		default:
			return nil, fmt.Errorf("poetry.lock: %s comes from a %s source, which hop3 does not install from a lock", p.Name, p.Source.Type)
		}
		line := p.Name + "==" + p.Version
		if m := poetryMarkers(p.Markers, markers); m != "" {
			line += " ; " + m
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

// poetryConstraint is one requirement in a dependency table: "^1.0", a
// table with version, markers, extras and optional, or a list of such.
type poetryConstraint struct {
	markers  string
	extras   []string
	optional bool
}

func poetryConstraints(spec any) []poetryConstraint {
	switch v := spec.(type) {
	case []map[string]any:
		var cs []poetryConstraint
		for _, t := range v {
			cs = append(cs, poetryConstraints(t)...)
		}
		return cs
	case []any:
		var cs []poetryConstraint
		for _, t := range v {
			cs = append(cs, poetryConstraints(t)...)
		}
		return cs
	case map[string]any:
		var c poetryConstraint
		c.markers, _ = v["markers"].(string)
		c.optional, _ = v["optional"].(bool)
		if xs, ok := v["extras"].([]any); ok {
			for _, x := range xs {
				if s, ok := x.(string); ok {
					c.extras = append(c.extras, s)
				}
			}
		}
		return []poetryConstraint{c}
	default:
		return []poetryConstraint{{}}
	}
}

// poetryMarkers returns the environment markers a locked package is
// installed under: its own (Poetry 2 writes them per group, of which only
// main's apply), else those of the requirements that reach it, none if any
// of them has none.
func poetryMarkers(own any, edges []string) string {
	switch v := own.(type) {
	case string:
		return v
	case map[string]any:
		if s, ok := v["main"].(string); ok {
			return s
		}
	}
	var ms []string
	seen := make(map[string]bool)
	for _, m := range edges {
		if m == "" {
			return ""
		}
		if !seen[m] {
			seen[m] = true
			ms = append(ms, "("+m+")")
		}
	}
	sort.Strings(ms)
	return strings.Join(ms, " or ")
}

// pipfileLock is the part of Pipfile.lock that says what to install.
type pipfileLock struct {
	Default map[string]struct {
		Version string `json:"version"`
		Markers string `json:"markers"`
		Path    string `json:"path"`
		Git     string `json:"git"`
		File    string `json:"file"`
	} `json:"default"`
}

// exportPipfileLock turns the default section of Pipfile.lock into pinned
// requirements. As with poetry.lock, a package that the Pipfile's
// [packages] names and the lock does not hold stops the build.
func exportPipfileLock(dir string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(dir, pyPipfileLock))
	if err != nil {
		return nil, fmt.Errorf("read Pipfile.lock: %w", err)
	}
	var lock pipfileLock
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("read Pipfile.lock: %w", err)
	}
	locked := make(map[string]bool)
	var lines []string
	for name, p := range lock.Default {
		locked[normalizeName(name)] = true
		switch {
		case p.Path != "" || p.Git != "" || p.File != "":
			//lint:ignore ST1005 the message starts with a file name, whose case matters
			return nil, fmt.Errorf("Pipfile.lock: %s is not from a package index, which hop3 does not install from a lock", name)
		case !strings.HasPrefix(p.Version, "=="):
			//lint:ignore ST1005 the message starts with a file name, whose case matters
			return nil, fmt.Errorf("Pipfile.lock: %s has no pinned version", name)
		}
		line := name + p.Version
		if p.Markers != "" {
			line += " ; " + p.Markers
		}
		lines = append(lines, line)
	}
	var pipfile struct {
		Packages map[string]any `toml:"packages"`
	}
	if _, err := toml.DecodeFile(filepath.Join(dir, pyPipfile), &pipfile); err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read Pipfile: %w", err)
	}
	var missing []string
	for name := range pipfile.Packages {
		if !locked[normalizeName(name)] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		//lint:ignore ST1005 the message starts with a file name, whose case matters
		return nil, fmt.Errorf("Pipfile.lock is out of date with Pipfile (%s not locked); run `pipenv lock` and commit Pipfile.lock", strings.Join(missing, ", "))
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

// pdmLock is the part of pdm.lock that says what to install.
type pdmLock struct {
	Package []struct {
		Name         string   `toml:"name"`
		Version      string   `toml:"version"`
		Groups       []string `toml:"groups"`
		Marker       string   `toml:"marker"`
		Dependencies []string `toml:"dependencies"`
		Path         string   `toml:"path"`
		URL          string   `toml:"url"`
		Git          string   `toml:"git"`
	} `toml:"package"`
}

// exportPDMLock turns pdm.lock into pinned requirements: the packages of
// the default group (PDM 2.8 and later say so per package; for an older
// lock, the packages [project].dependencies reach through the lock's
// dependency lists), each at its locked version. A dependency that
// [project] names and the lock does not hold stops the build.
func exportPDMLock(dir string) ([]byte, error) {
	var lock pdmLock
	if _, err := toml.DecodeFile(filepath.Join(dir, pyPDMLock), &lock); err != nil {
		return nil, fmt.Errorf("read pdm.lock: %w", err)
	}
	var proj pyProjectDeps
	if _, err := toml.DecodeFile(filepath.Join(dir, pyProject), &proj); err != nil {
		return nil, fmt.Errorf("read pyproject.toml: %w", err)
	}
	index := make(map[string]int)
	grouped := false
	for i, p := range lock.Package {
		if p.Name == "" || p.Version == "" {
			return nil, errors.New("read pdm.lock: a package without a name or version")
		}
		index[normalizeName(p.Name)] = i
		grouped = grouped || len(p.Groups) > 0
	}
	var missing []string
	chosen := make(map[int]bool)
	var visit func(req string)
	visit = func(req string) {
		name := reqNameRe.FindString(strings.TrimSpace(req))
		if name == "" {
			return
		}
		i, ok := index[normalizeName(name)]
		if !ok {
			missing = append(missing, name)
			return
		}
		if chosen[i] {
			return
		}
		chosen[i] = true
		if !grouped {
			for _, dep := range lock.Package[i].Dependencies {
				visit(dep)
			}
		}
	}
	for _, req := range proj.Project.Dependencies {
		visit(req)
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, fmt.Errorf("pdm.lock is not up to date with pyproject.toml (%s not locked); run `pdm lock` and commit pdm.lock", strings.Join(missing, ", "))
	}
	var lines []string
	for i, p := range lock.Package {
		if grouped {
			if !slices.Contains(p.Groups, "default") {
				continue
			}
		} else if !chosen[i] {
			continue
		}
		if p.Path != "" || p.URL != "" || p.Git != "" {
			return nil, fmt.Errorf("pdm.lock: %s is not from a package index, which hop3 does not install from a lock", p.Name)
		}
		line := p.Name + "==" + p.Version
		if p.Marker != "" {
			line += " ; " + p.Marker
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}
