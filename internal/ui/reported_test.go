package ui

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestReported(t *testing.T) {
	base := errors.New("build failed: exit status 1")
	tests := []struct {
		name     string
		err      error
		reported bool
		msg      string
	}{
		{"nil stays nil", Reported(nil), false, ""},
		{"plain error", base, false, "build failed: exit status 1"},
		{"marked", Reported(base), true, "build failed: exit status 1"},
		{"marked, then wrapped", fmt.Errorf("deploy web: %w", Reported(base)), true, "deploy web: build failed: exit status 1"},
		{"marked twice", Reported(Reported(base)), true, "build failed: exit status 1"},
		{"wrapped, not marked", fmt.Errorf("deploy web: %w", base), false, "deploy web: build failed: exit status 1"},
		{"joined with a marked one", errors.Join(errors.New("other"), Reported(base)), true, "other\nbuild failed: exit status 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsReported(tc.err); got != tc.reported {
				t.Errorf("IsReported = %v, want %v", got, tc.reported)
			}
			if tc.err == nil {
				return
			}
			if got := tc.err.Error(); got != tc.msg {
				t.Errorf("message %q, want %q", got, tc.msg)
			}
		})
	}
}

// The mark hides nothing of the chain: callers still find the cause.
func TestReportedKeepsChain(t *testing.T) {
	cause := &fs.PathError{Op: "open", Path: ".env", Err: fs.ErrPermission}
	err := fmt.Errorf("deploy: %w", Reported(fmt.Errorf("read: %w", cause)))
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("errors.Is(ErrPermission) lost through the mark")
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != ".env" {
		t.Errorf("errors.As(*PathError) lost through the mark: %v", pe)
	}
	if errors.Is(errors.New("already reported"), ErrReported) {
		t.Errorf("an error that merely says the same words counts as reported")
	}
}

func TestStripANSI(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"\x1b[31;1m !     build failed\x1b[0m", " !     build failed"},
		{"\x1b[1m\x1b[36m-----> step\x1b[0m\r\n", "-----> step\r\n"},
		{"\x1b[2KApache Maven 3.8.7", "Apache Maven 3.8.7"},
		{"no [31m escape", "no [31m escape"},
	}
	for _, tc := range tests {
		if got := StripANSI(tc.in); got != tc.want {
			t.Errorf("StripANSI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
