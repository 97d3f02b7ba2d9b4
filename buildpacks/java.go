package buildpacks

import (
	"archive/zip"
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// PackJava builds a Maven or Gradle project.
const PackJava = "java"

// JavaProcfileExample is the Procfile line a Java app in dir without a
// Procfile is told to add: hop3 does not guess which jar serves, nor how.
func JavaProcfileExample(dir string) string {
	if info, err := os.Stat(filepath.Join(dir, "pom.xml")); err == nil && info.Mode().IsRegular() {
		return "web: java -jar target/app.jar"
	}
	return "web: java -jar build/libs/app.jar"
}

// javaTools is what a Java build runs: the build tool's argv and
// environment, and the versions that go into the build key.
type javaTools struct {
	tool    string // "maven" or "gradle"
	argv    []string
	shown   string // argv as the progress line shows it
	label   string // names the step in errors
	env     map[string]string
	javac   string
	version string // javac's, then the build tool's
	outDir  string // where the jars are written, relative to the release
}

// buildJava runs `mvn -B package -DskipTests` for a pom.xml, or `gradle
// build -x test` (the project's ./gradlew when it has one) for a
// build.gradle or build.gradle.kts, in the release directory. Maven's
// repository is CacheDir/m2 and Gradle's home CacheDir/gradle, so a push
// downloads only what changed. The Procfile runs the jar
// (web: java -jar target/app.jar); the build lists the runnable jars it
// made to help write that line.
func (b *builder) buildJava(ctx context.Context) error {
	tc, err := b.javaToolchain(ctx)
	if err != nil {
		return err
	}
	b.rep.Info("Using " + tc.version)
	b.rep.Step("Building with " + tc.shown)
	start := time.Now()
	if err := b.run(ctx, command{label: tc.label, dir: b.dir, env: tc.env, argv: tc.argv}); err != nil {
		return err
	}
	if b.spec.TempDir != "" {
		// The JVM keeps temporary files in /tmp whatever TMPDIR says, and
		// the app's sandbox lets it write its own TMPDIR only. A
		// java.io.tmpdir of the app's own, later on the line, wins.
		b.setRuntimeEnv("JAVA_TOOL_OPTIONS", strings.TrimSpace("-Djava.io.tmpdir="+b.spec.TempDir+" "+b.spec.Env["JAVA_TOOL_OPTIONS"]))
	}
	jars, err := runnableJars(b.dir, tc.outDir)
	if err != nil {
		return err
	}
	for i, jar := range jars {
		jars[i] = tc.outDir + "/" + jar
	}
	if len(jars) == 0 {
		b.rep.Info(fmt.Sprintf("Built in %s; no jar in %s/ names a Main-Class: the Procfile says how to run the app", since(start), tc.outDir))
		return nil
	}
	b.rep.Info(fmt.Sprintf("Built %s in %s", strings.Join(jars, ", "), since(start)))
	return nil
}

// javaToolchain finds the JDK and the build tool of the project, the
// environment to run it in, and their versions, once per build.
func (b *builder) javaToolchain(ctx context.Context) (*javaTools, error) {
	if b.java != nil {
		return b.java, nil
	}
	var tc javaTools
	var err error
	switch {
	case b.has("pom.xml"):
		tc.tool, tc.outDir = "maven", "target"
		mvn, err := b.need("", "mvn")
		if err != nil {
			return nil, err
		}
		tc.argv = []string{mvn, "-B", "package", "-DskipTests"}
		tc.shown = "mvn " + strings.Join(tc.argv[1:], " ")
		tc.label = "mvn package"
	default:
		tc.tool, tc.outDir = "gradle", "build/libs"
		// The daemon would outlive the build, holding the app's user's
		// memory and files; the tests are the project's CI's to run.
		args := []string{"build", "-x", "test", "--no-daemon"}
		if b.has("gradlew") {
			tc.argv = append([]string{filepath.Join(b.dir, "gradlew")}, args...)
			tc.shown = "./gradlew " + strings.Join(args, " ")
			tc.label = "./gradlew build"
			if !isExecutable(tc.argv[0]) {
				// A gradlew committed without its mode bit.
				tc.argv = append([]string{"/bin/sh"}, tc.argv...)
			}
		} else {
			gradle, err := b.need("", "gradle")
			if err != nil {
				return nil, err
			}
			tc.argv = append([]string{gradle}, args...)
			tc.shown = "gradle " + strings.Join(args, " ")
			tc.label = "gradle build"
		}
	}
	if tc.javac, err = b.need("", "javac"); err != nil {
		return nil, err
	}
	if tc.env, err = b.javaEnv(tc.tool); err != nil {
		return nil, err
	}
	if tc.tool == "maven" {
		repo, err := b.cachePath("m2")
		if err != nil {
			return nil, err
		}
		if repo != "" {
			tc.argv = append(tc.argv, "-Dmaven.repo.local="+repo)
		}
	}
	javacVer, err := output(ctx, b.cred(), tc.env, b.dir, tc.javac, "-version")
	if err != nil {
		return nil, fmt.Errorf("ask javac its version: %w", err)
	}
	tc.version = javacVer
	switch {
	case tc.tool == "maven":
		v, err := output(ctx, b.cred(), tc.env, b.dir, tc.argv[0], "-B", "--version")
		if err != nil {
			return nil, fmt.Errorf("ask mvn its version: %w", err)
		}
		tc.version += ", " + mavenVersion(v)
	case tc.label == "gradle build":
		// The wrapper's version is in the tree (gradle-wrapper.properties),
		// which the build key holds already; asking it would download it.
		v, err := output(ctx, b.cred(), tc.env, b.dir, tc.argv[0], "--version", "--no-daemon")
		if err != nil {
			return nil, fmt.Errorf("ask gradle its version: %w", err)
		}
		tc.version += ", " + gradleVersion(v)
	}
	b.java = &tc
	return b.java, nil
}

// javaEnv is the environment of a Java build. The JVM takes its home
// directory from the user database, not HOME: user.home is set to the
// build's HOME so that ~/.m2 and ~/.gradle are the app's own.
func (b *builder) javaEnv(tool string) (map[string]string, error) {
	caches := map[string]string{}
	if _, set := b.spec.Env["GRADLE_USER_HOME"]; tool == "gradle" && !set {
		caches["GRADLE_USER_HOME"] = "gradle"
	}
	env, _, err := b.toolEnv(caches)
	if err != nil {
		return nil, err
	}
	if home := env["HOME"]; home != "" {
		opts := "MAVEN_OPTS"
		if tool == "gradle" {
			opts = "GRADLE_OPTS"
		}
		env[opts] = strings.TrimSpace(env[opts] + " -Duser.home=" + home)
	}
	return env, nil
}

// mavenVersion picks "Apache Maven X.Y.Z" out of `mvn --version`, without
// the colour reset Debian's Maven prints even in batch mode.
func mavenVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if i := strings.Index(line, "Apache Maven"); i >= 0 {
			return strings.TrimSpace(line[i:])
		}
	}
	return firstLine(out)
}

// gradleVersion picks "Gradle X.Y" out of `gradle --version`.
func gradleVersion(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, "Gradle ") {
			return line
		}
	}
	return firstLine(out)
}

// runnableJars lists the jars in dir/rel whose manifest names a
// Main-Class, which `java -jar` can run; the thin jars a shade or Spring
// Boot build leaves beside them name none. The release may be the app's to
// write: no link in it is followed.
func runnableJars(dir, rel string) ([]string, error) {
	p := dir
	for _, part := range strings.Split(rel, "/") {
		p = filepath.Join(p, part)
		if info, err := os.Lstat(p); err != nil || !info.IsDir() {
			return nil, nil
		}
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, fmt.Errorf("list jars: %w", err)
	}
	var jars []string
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".jar") {
			continue
		}
		if hasMainClass(filepath.Join(p, e.Name())) {
			jars = append(jars, e.Name())
		}
	}
	slices.Sort(jars)
	return jars, nil
}

// hasMainClass reports whether the jar at path, a regular file, has a
// manifest with a Main-Class attribute.
func hasMainClass(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	r, err := zip.NewReader(f, info.Size())
	if err != nil {
		return false
	}
	m, err := r.Open("META-INF/MANIFEST.MF")
	if err != nil {
		return false
	}
	defer m.Close()
	// Attribute lines are short; a manifest of megabytes is no jar of ours.
	sc := bufio.NewScanner(io.LimitReader(m, 1<<20))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.EqualFold(name, "Main-Class") && strings.TrimSpace(value) != "" {
			return true
		}
	}
	return false
}
