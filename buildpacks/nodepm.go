package buildpacks

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Node.js lockfiles, and the package manager each belongs to.
const (
	npmShrinkwrap = "npm-shrinkwrap.json"
	npmLock       = "package-lock.json"
	pnpmLock      = "pnpm-lock.yaml"
	yarnLock      = "yarn.lock"
)

// Versions used when package.json names no packageManager: the newest
// pnpm that writes the lockfile's format, and Yarn 1's last release.
var (
	pnpmForLockfile = map[string]string{"9": "9.15.9", "6": "8.15.9", "5": "7.33.7"}
	yarnClassic     = "1.22.22"
)

// nodePM is the package manager that installs an app's dependencies: npm,
// as found on PATH, or pnpm or Yarn at the version the app names, run
// through `npm exec` from the npm registry (npm checks the package's
// integrity as for any package; npm's cache keeps it).
type nodePM struct {
	name     string // npm, pnpm or yarn
	version  string // for pnpm and yarn
	lockfile string // "" when there is none
	// storeDir is pnpm's content-addressed store, in the app's cache;
	// copy makes pnpm copy from it rather than hard link (for a tree that
	// is handed to another user afterwards).
	storeDir string
	copy     bool
	// berry is Yarn 2 and later, whose yarn.lock has a __metadata entry.
	berry bool
}

// packageManagerRe reads package.json's packageManager: a name, an exact
// version and an optional hash, which corepack checks and `npm exec` cannot
// (the registry's own integrity check is what applies).
var packageManagerRe = regexp.MustCompile(`^(npm|pnpm|yarn)@(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)(?:\+[A-Za-z0-9]+\.[0-9A-Fa-f]+)?$`)

// choosePM decides the package manager from package.json's packageManager
// and the lockfiles present: the one packageManager names, whose lockfile
// must then be committed (else the install would resolve afresh); without
// packageManager, npm's lockfile first, then pnpm's, then Yarn's.
func choosePM(packageManager string, has func(string) bool, readLock func(string) ([]byte, error)) (nodePM, []string, error) {
	var notes []string
	pmName, pmVersion := "", ""
	if s := strings.TrimSpace(packageManager); s != "" {
		m := packageManagerRe.FindStringSubmatch(s)
		if m == nil {
			return nodePM{}, nil, fmt.Errorf("package.json's packageManager %q is not NAME@VERSION with NAME npm, pnpm or yarn and an exact version", s)
		}
		pmName, pmVersion = m[1], m[2]
	}
	npmLockfile := ""
	for _, name := range []string{npmShrinkwrap, npmLock} {
		if has(name) {
			npmLockfile = name
			break
		}
	}
	switch pmName {
	case "npm":
		for _, other := range []string{pnpmLock, yarnLock} {
			if has(other) {
				notes = append(notes, other+" is ignored: packageManager names npm")
			}
		}
		return nodePM{name: "npm", lockfile: npmLockfile}, notes, nil
	case "pnpm", "yarn":
		lock := pnpmLock
		if pmName == "yarn" {
			lock = yarnLock
		}
		if !has(lock) {
			return nodePM{}, nil, fmt.Errorf("package.json's packageManager names %s@%s but there is no %s: commit it", pmName, pmVersion, lock)
		}
		pm := nodePM{name: pmName, version: pmVersion, lockfile: lock}
		err := pm.check(readLock)
		return pm, notes, err
	}
	switch {
	case npmLockfile != "":
		return nodePM{name: "npm", lockfile: npmLockfile}, notes, nil
	case has(pnpmLock):
		data, err := readLock(pnpmLock)
		if err != nil {
			return nodePM{}, nil, err
		}
		v := pnpmLockfileVersion(data)
		version, ok := pnpmForLockfile[strings.SplitN(v, ".", 2)[0]]
		if !ok {
			return nodePM{}, nil, fmt.Errorf("pnpm-lock.yaml has lockfileVersion %q, which no pnpm hop3 knows writes: name the version in package.json's packageManager (\"pnpm@9.15.9\")", v)
		}
		notes = append(notes, fmt.Sprintf("package.json names no packageManager: using pnpm %s, which reads lockfileVersion %s", version, v))
		pm := nodePM{name: "pnpm", version: version, lockfile: pnpmLock}
		return pm, notes, nil
	case has(yarnLock):
		pm := nodePM{name: "yarn", version: yarnClassic, lockfile: yarnLock}
		err := pm.check(readLock)
		return pm, notes, err
	}
	return nodePM{name: "npm"}, notes, nil
}

// check refuses a Yarn 2 or later lockfile for Yarn 1 and the other way
// round: the install would rewrite it. It sets berry.
func (pm *nodePM) check(readLock func(string) ([]byte, error)) error {
	if pm.name != "yarn" {
		return nil
	}
	data, err := readLock(yarnLock)
	if err != nil {
		return err
	}
	berryLock := bytes.Contains(data, []byte("\n__metadata:")) || bytes.HasPrefix(data, []byte("__metadata:"))
	switch {
	case berryLock && strings.HasPrefix(pm.version, "1."):
		return fmt.Errorf("yarn.lock was written by Yarn 2 or later: name the version in package.json's packageManager (\"yarn@4.5.3\")")
	case !berryLock && !strings.HasPrefix(pm.version, "1."):
		return fmt.Errorf("yarn.lock was written by Yarn 1 but packageManager names yarn@%s: run yarn install with it and commit yarn.lock", pm.version)
	case berryLock && (strings.HasPrefix(pm.version, "2.") || strings.HasPrefix(pm.version, "3.")):
		// Installing without the dev dependencies needs `yarn workspaces
		// focus`, built in from Yarn 4 on.
		//lint:ignore ST1005 the message starts with a product's name
		return fmt.Errorf("Yarn %s is not supported: hop3 installs with Yarn 1, or Yarn 4 and later (packageManager \"yarn@4.5.3\")", pm.version)
	}
	pm.berry = berryLock
	return nil
}

var pnpmLockfileVersionRe = regexp.MustCompile(`(?m)^lockfileVersion:\s*['"]?([0-9.]+)`)

func pnpmLockfileVersion(data []byte) string {
	if m := pnpmLockfileVersionRe.FindSubmatch(data); m != nil {
		return string(m[1])
	}
	return ""
}

// label names the install as the build log shows it.
func (pm nodePM) label() string {
	switch pm.name {
	case "pnpm":
		return fmt.Sprintf("pnpm %s install --frozen-lockfile", pm.version)
	case "yarn":
		if pm.berry {
			return fmt.Sprintf("yarn %s install --immutable", pm.version)
		}
		return fmt.Sprintf("yarn %s install --frozen-lockfile", pm.version)
	}
	if pm.lockfile == "" {
		return "npm install"
	}
	return "npm ci"
}

// installArgv is the command that installs the locked tree, with the dev
// dependencies or without. NODE_ENV is production during the build, which
// pnpm and Yarn take to mean no dev dependencies: the flag is always given.
func (pm nodePM) installArgv(npm string, dev bool) []string {
	switch pm.name {
	case "pnpm":
		argv := []string{npm, "exec", "--yes", "--package=pnpm@" + pm.version, "--",
			"pnpm", "install", "--frozen-lockfile", fmt.Sprintf("--prod=%t", !dev)}
		if pm.storeDir != "" {
			argv = append(argv, "--store-dir="+pm.storeDir)
		}
		if pm.copy {
			argv = append(argv, "--package-import-method=copy")
		}
		return argv
	case "yarn":
		if pm.berry {
			argv := []string{npm, "exec", "--yes", "--package=@yarnpkg/cli-dist@" + pm.version, "--", "yarn"}
			if dev {
				return append(argv, "install", "--immutable")
			}
			return append(argv, "workspaces", "focus", "--all", "--production")
		}
		return []string{npm, "exec", "--yes", "--package=yarn@" + pm.version, "--",
			"yarn", "install", "--frozen-lockfile", "--non-interactive", fmt.Sprintf("--production=%t", !dev)}
	}
	include := "--omit=dev"
	if dev {
		include = "--include=dev"
	}
	if pm.lockfile == "" {
		return []string{npm, "install", include}
	}
	return []string{npm, "ci", include}
}

// pmLocalRe finds packages that pnpm and Yarn install from the app's own
// tree, whose install needs the app's files. Yarn 2 and later list the
// app itself as NAME@workspace:., which is not one.
var pmLocalRe = regexp.MustCompile(`[\s'"@](link|file|portal):|[\s'"]workspace:|@workspace:([^."\s]|\.[^"\s])`)

// sharedBlocker says why the locked tree cannot be installed apart from the
// app's files, or "" when it can.
func (pm nodePM) sharedBlocker(pkg packageJSON, lock []byte, has func(string) bool, read func(string) []byte) string {
	switch {
	case hasWorkspaces(pkg) || (pm.name == "pnpm" && has("pnpm-workspace.yaml")):
		return pm.name + " workspaces need the app's files to install: node_modules is installed into the release"
	case pm.name == "npm" && localPackageRe.Match(lock), pm.name != "npm" && pmLocalRe.Match(lock):
		return pm.lockfile + " names local packages: node_modules is installed into the release"
	case pm.name == "pnpm" && has(".pnpmfile.cjs"):
		return ".pnpmfile.cjs needs the app's files: node_modules is installed into the release"
	case pm.berry && bytes.Contains(read(".yarnrc.yml"), []byte("plugins:")):
		return ".yarnrc.yml names plugins, which are the app's files: node_modules is installed into the release"
	}
	return ""
}

// configFiles are the files beside package.json that change what the
// package manager installs; the shared environment is made with them.
func (pm nodePM) configFiles() []string {
	switch pm.name {
	case "yarn":
		if pm.berry {
			return []string{".npmrc", ".yarnrc.yml"}
		}
		return []string{".npmrc", ".yarnrc"}
	}
	return []string{".npmrc"}
}

// berryEnv is how hop3 runs Yarn 2 and later: a node_modules tree, not
// Plug'n'Play (the release links the environment's node_modules); the
// version packageManager names, not a yarnPath release the app commits;
// the app's own cache, no telemetry.
func (pm nodePM) berryEnv(cacheDir string) map[string]string {
	env := map[string]string{
		"YARN_NODE_LINKER":         "node-modules",
		"YARN_IGNORE_PATH":         "1",
		"YARN_ENABLE_GLOBAL_CACHE": "false",
		"YARN_ENABLE_TELEMETRY":    "0",
	}
	if cacheDir != "" {
		env["YARN_CACHE_FOLDER"] = filepath.Join(cacheDir, "yarn-berry")
	}
	return env
}
