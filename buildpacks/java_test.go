package buildpacks

import (
	"archive/zip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDetectJava(t *testing.T) {
	t.Parallel()
	tests := []struct {
		files []string
		want  []string
	}{
		{[]string{"pom.xml"}, []string{PackJava}},
		{[]string{"build.gradle"}, []string{PackJava}},
		{[]string{"build.gradle.kts", "gradlew"}, []string{PackJava}},
		{[]string{"pom.xml", "index.html"}, []string{PackJava}},
		// The languages before it keep their place.
		{[]string{"pom.xml", "Cargo.toml"}, []string{PackRust}},
		{[]string{"pom.xml", "package.json"}, []string{PackNode}},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		for _, f := range tt.files {
			writeFile(t, filepath.Join(dir, f), "")
		}
		got, err := Detect(dir, false, true)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Detect(%v) = %v, %v; want %v", tt.files, got, err, tt.want)
		}
	}
}

// TestJavaArgv checks what each kind of project runs, with which cache
// and which user.home.
func TestJavaArgv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   map[string]string
		env     map[string]string
		step    string
		version string
		called  string // with {CACHE} and {HOME} for the build's
		// tool is JAVA_TOOL_OPTIONS at run time, which sends temporary
		// files to the app's TMPDIR.
		tool string
	}{
		{
			name:    "maven",
			files:   map[string]string{"pom.xml": ""},
			step:    "Building with mvn -B package -DskipTests",
			version: "Using javac 17.0.99, Apache Maven 3.8.99",
			called:  "mvn -B package -DskipTests -Dmaven.repo.local={CACHE}/m2|MAVEN_OPTS=-Duser.home={HOME}",
			tool:    "-Djava.io.tmpdir=/srv/tmp/app",
		},
		{
			name:    "maven options of the app's kept",
			files:   map[string]string{"pom.xml": ""},
			env:     map[string]string{"MAVEN_OPTS": "-Xmx512m", "JAVA_TOOL_OPTIONS": "-Xss2m"},
			step:    "Building with mvn -B package -DskipTests",
			version: "Using javac 17.0.99, Apache Maven 3.8.99",
			called:  "mvn -B package -DskipTests -Dmaven.repo.local={CACHE}/m2|MAVEN_OPTS=-Xmx512m -Duser.home={HOME}",
			tool:    "-Djava.io.tmpdir=/srv/tmp/app -Xss2m",
		},
		{
			name:    "gradle",
			files:   map[string]string{"build.gradle.kts": ""},
			step:    "Building with gradle build -x test --no-daemon",
			version: "Using javac 17.0.99, Gradle 8.99",
			called:  "gradle build -x test --no-daemon|GRADLE_USER_HOME={CACHE}/gradle|GRADLE_OPTS=-Duser.home={HOME}",
			tool:    "-Djava.io.tmpdir=/srv/tmp/app",
		},
		{
			name:    "gradle home of the app's kept",
			files:   map[string]string{"build.gradle": ""},
			env:     map[string]string{"GRADLE_USER_HOME": "/srv/gradle"},
			step:    "Building with gradle build -x test --no-daemon",
			version: "Using javac 17.0.99, Gradle 8.99",
			called:  "gradle build -x test --no-daemon|GRADLE_USER_HOME=/srv/gradle|GRADLE_OPTS=-Duser.home={HOME}",
			tool:    "-Djava.io.tmpdir=/srv/tmp/app",
		},
		{
			// Without its mode bit, as some commits have it; the
			// system's gradle is not asked.
			name: "gradlew",
			files: map[string]string{"build.gradle": "", "gradlew": "echo \"gradlew $*|GRADLE_USER_HOME=$GRADLE_USER_HOME\" > called\n",
				"gradle/wrapper/gradle-wrapper.properties": "distributionUrl=gradle-8.14-bin.zip\n"},
			step:    "Building with ./gradlew build -x test --no-daemon",
			version: "Using javac 17.0.99",
			called:  "gradlew build -x test --no-daemon|GRADLE_USER_HOME={CACHE}/gradle",
			tool:    "-Djava.io.tmpdir=/srv/tmp/app",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				writeFile(t, filepath.Join(dir, name), content)
			}
			cache := t.TempDir()
			env := map[string]string{"PATH": fakeTools(t, "javac", "mvn", "gradle") + ":/usr/bin:/bin"}
			for k, v := range tt.env {
				env[k] = v
			}
			rep := newRecorder(t)
			res := build(t, Spec{App: "test", Dir: dir, CacheDir: cache, Env: env, HasProcfile: true, Report: rep,
				EnvsDir: filepath.Join(t.TempDir(), "envs"), TempDir: "/srv/tmp/app"})
			if !reflect.DeepEqual(res.Packs, []string{PackJava}) {
				t.Errorf("Packs = %v", res.Packs)
			}
			if !rep.hasStep(tt.step) || !strings.Contains(rep.String(), tt.version+"\n") {
				t.Errorf("log lacks %q or %q:\n%s", tt.step, tt.version, rep)
			}
			data, err := os.ReadFile(filepath.Join(dir, "called"))
			if err != nil {
				t.Fatalf("the build tool did not run: %v\n%s", err, rep)
			}
			want := strings.NewReplacer("{CACHE}", cache, "{HOME}", filepath.Join(cache, "home")).Replace(tt.called)
			if got := strings.TrimSpace(string(data)); got != want {
				t.Errorf("ran\n %s\nwant\n %s", got, want)
			}
			if got := res.Env["JAVA_TOOL_OPTIONS"]; got != tt.tool {
				t.Errorf("JAVA_TOOL_OPTIONS = %q, want %q", got, tt.tool)
			}
		})
	}
}

// writeJar writes a jar holding only a manifest.
func writeJar(t *testing.T, path, manifest string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	if manifest != "" {
		w, err := zw.Create("META-INF/MANIFEST.MF")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte(manifest)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRunnableJars(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	writeJar(t, filepath.Join(target, "app.jar"), "Manifest-Version: 1.0\r\nMain-Class: app.Main\r\n")
	writeJar(t, filepath.Join(target, "original-app.jar"), "Manifest-Version: 1.0\r\n")
	writeJar(t, filepath.Join(target, "empty.jar"), "")
	writeJar(t, filepath.Join(dir, "outside.jar"), "Main-Class: x.Y\n")
	writeFile(t, filepath.Join(target, "notes.jar"), "not a zip")
	if err := os.Symlink(filepath.Join(dir, "outside.jar"), filepath.Join(target, "link.jar")); err != nil {
		t.Fatal(err)
	}
	got, err := runnableJars(dir, "target")
	if err != nil || !reflect.DeepEqual(got, []string{"app.jar"}) {
		t.Errorf("runnableJars = %v, %v; want [app.jar]", got, err)
	}

	// A target that is a link leads out of the release: not followed.
	linked := t.TempDir()
	if err := os.Symlink(target, filepath.Join(linked, "target")); err != nil {
		t.Fatal(err)
	}
	if got, err := runnableJars(linked, "target"); err != nil || len(got) != 0 {
		t.Errorf("through a link: runnableJars = %v, %v; want none", got, err)
	}
	if got, err := runnableJars(dir, "build/libs"); err != nil || len(got) != 0 {
		t.Errorf("no build/libs: runnableJars = %v, %v; want none", got, err)
	}
}

// TestJavaBuild builds the Javalin fixture with the real Maven, its
// repository in the cache, and fails on a syntax error with javac's words.
func TestJavaBuild(t *testing.T) {
	t.Parallel()
	needTool(t, "mvn")
	needTool(t, "javac")
	dir := fixture(t, "java-app")
	rep := newRecorder(t)
	cache := testCache(t)
	res := build(t, Spec{App: "test", Dir: dir, CacheDir: cache, HasProcfile: true, Report: rep})
	if !reflect.DeepEqual(res.Packs, []string{PackJava}) {
		t.Errorf("Packs = %v", res.Packs)
	}
	if !hasMainClass(filepath.Join(dir, "target", "java-app.jar")) {
		t.Fatalf("no runnable target/java-app.jar in the release:\n%s", rep)
	}
	if _, err := os.Stat(filepath.Join(cache, "m2", "io", "javalin", "javalin", "6.7.0")); err != nil {
		t.Errorf("Javalin is not in the cache's Maven repository: %v", err)
	}
	if !rep.hasStep("Building with mvn -B package -DskipTests") || !strings.Contains(rep.String(), "Built target/java-app.jar in ") {
		t.Errorf("log:\n%s", rep)
	}

	src := filepath.Join(dir, "src", "main", "java", "app", "Main.java")
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, src, strings.Replace(string(data), ".start(host, port);", ".start(host, port)", 1))
	rep = newRecorder(t)
	_, err = Build(testContext(t), Spec{App: "test", Dir: dir, CacheDir: cache, HasProcfile: true, Report: rep})
	if err == nil || err.Error() != "build java app: mvn package failed (exit status 1)" {
		t.Fatalf("err = %v, want mvn package to fail", err)
	}
	if !strings.Contains(rep.String(), "COMPILATION ERROR") || !strings.Contains(rep.String(), "';' expected") {
		t.Errorf("javac's message is not in the output:\n%s", rep)
	}
}
