package hooks

import (
	"reflect"
	"testing"
)

func TestPlanFor(t *testing.T) {
	cases := []struct {
		name    string
		ups     []Update
		deploy  string
		ignored []string
	}{
		{"main", []Update{{Ref: "refs/heads/main", Old: ZeroRev, New: "1"}}, "main", nil},
		{"master", []Update{{Ref: "refs/heads/master", Old: ZeroRev, New: "1"}}, "master", nil},
		{"both prefers main", []Update{{Ref: "refs/heads/master", New: "1"}, {Ref: "refs/heads/main", New: "2"}}, "main", []string{"master"}},
		{"feature only", []Update{{Ref: "refs/heads/feature", New: "1"}}, "", []string{"feature"}},
		{"deleted main", []Update{{Ref: "refs/heads/main", Old: "1", New: ZeroRev}}, "", nil},
		{"tag", []Update{{Ref: "refs/tags/v1", New: "1"}}, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := PlanFor(c.ups)
			got := ""
			if p.Deploy != nil {
				got = p.Deploy.Branch()
			}
			if got != c.deploy {
				t.Errorf("deploy = %q, want %q", got, c.deploy)
			}
			if !reflect.DeepEqual(p.Ignored, c.ignored) {
				t.Errorf("ignored = %v, want %v", p.Ignored, c.ignored)
			}
		})
	}
}
