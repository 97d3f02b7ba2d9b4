package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadProcfileMissing: a tree without a Procfile is refused with an
// example fit for its language; a Java app is told how to run its jar.
func TestReadProcfileMissing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file, want string
	}{
		{"requirements.txt", `e.g. "wsgi: app:app"`},
		{"pom.xml", `e.g. "web: java -jar target/app.jar"`},
		{"build.gradle.kts", `e.g. "web: java -jar build/libs/app.jar"`},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, tt.file), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := readProcfile(dir)
		if err == nil || !strings.HasPrefix(err.Error(), "no Procfile: ") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: readProcfile error = %v, want %s", tt.file, err, tt.want)
		}
	}
}
