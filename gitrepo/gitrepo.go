// Package gitrepo holds what the SSH server, which receives pushes, and the
// orchestrator, which reads the pushed revisions, both know about an app's
// bare repository: the environment git runs with, the branches whose push
// deploys, and where HEAD points. It imports no other package of hop3's.
package gitrepo

import (
	"fmt"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// DeployBranches are the branches whose push deploys the app, in the order
// they are preferred when a push (or a redeploy) finds more than one.
var DeployBranches = []string{"main", "master"}

// Env is the environment hop3 runs git with: a fixed PATH, and HOME
// (where git looks for a user's config) set to home; nothing of the
// daemon's own environment.
func Env(home string) []string {
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home}
}

// SetHead points HEAD at branch, so that a clone checks out what is deployed.
func SetHead(dir, branch string) error {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	ref := plumbing.NewSymbolicReference(plumbing.HEAD, plumbing.NewBranchReferenceName(branch))
	if err := r.Storer.SetReference(ref); err != nil {
		return fmt.Errorf("set HEAD: %w", err)
	}
	return nil
}
