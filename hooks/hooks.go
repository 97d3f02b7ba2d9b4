// Package hooks turns what a push changes into what hop3 should do about it:
// ref updates in (old and new revision per ref, from git's pre-receive
// hook), a deploy decision out, and the hook's verdict back to git.
package hooks

import (
	"sort"
	"strings"

	"hop3/gitrepo"
)

// ZeroRev is the revision git reports for a ref that does not exist.
const ZeroRev = "0000000000000000000000000000000000000000"

// Update is one ref changed by a push.
type Update struct {
	Ref string // refs/heads/main
	Old string // ZeroRev when the ref was created
	New string // ZeroRev when the ref was deleted
}

// Branch returns the branch name of a refs/heads/ ref, or "".
func (u Update) Branch() string {
	b, ok := strings.CutPrefix(u.Ref, "refs/heads/")
	if !ok {
		return ""
	}
	return b
}

// Deleted reports whether the push removed the ref.
func (u Update) Deleted() bool { return u.New == ZeroRev || u.New == "" }

// Plan is what a push asks for.
type Plan struct {
	Deploy  *Update  // the update to deploy, nil when none
	Ignored []string // branches stored but not deployed
}

// PlanFor decides what to deploy: a push to main deploys it; a push to master
// deploys it when main was not pushed too; other branches are only stored.
func PlanFor(ups []Update) Plan {
	var p Plan
	byBranch := map[string]Update{}
	for _, u := range ups {
		b := u.Branch()
		if b == "" || u.Deleted() {
			continue
		}
		byBranch[b] = u
	}
	for _, b := range gitrepo.DeployBranches {
		if u, ok := byBranch[b]; ok && p.Deploy == nil {
			u := u
			p.Deploy = &u
			delete(byBranch, b)
		}
	}
	for b := range byBranch {
		p.Ignored = append(p.Ignored, b)
	}
	sort.Strings(p.Ignored)
	return p
}
