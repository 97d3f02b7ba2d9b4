package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSystemJVM runs a JVM confined to the system's paths: it reads
// java.security, which Debian's JDK keeps under /etc and links from
// /usr/lib/jvm, as every server using TLS or SecureRandom does.
func TestSystemJVM(t *testing.T) {
	needLandlock(t)
	java, err := exec.LookPath("java")
	if err != nil {
		t.Skip("java not found on PATH")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "Probe.java")
	prog := `public class Probe { public static void main(String[] a) {
		System.out.println("source=" + java.security.Security.getProperty("securerandom.source"));
		new java.security.SecureRandom().nextInt(); } }`
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := run(t, confined(Policy{ReadOnly: []string{dir}}, java, src))
	if code != 0 || !strings.Contains(out, "source=file:") {
		t.Errorf("confined JVM: exit %d\n%s", code, out)
	}
}
