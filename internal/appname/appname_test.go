package appname

import "testing"

func TestValidate(t *testing.T) {
	good := []string{"a", "myapp", "my-app2", "x1"}
	bad := []string{"", "A_B", "../x", "1app", "-a", "a-", "my_app", "a.b", "a/b", "MyApp", "a b",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "é", "a\nb"}
	for _, n := range good {
		if err := Validate(n); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", n, err)
		}
	}
	for _, n := range bad {
		if err := Validate(n); err == nil {
			t.Errorf("Validate(%q) = nil, want error", n)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"myapp", "../x", "A_B", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Validate(s) == nil && !valid.MatchString(s) {
			t.Fatalf("accepted %q", s)
		}
	})
}
