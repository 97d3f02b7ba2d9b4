package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"hop3/buildpacks"
	"hop3/internal/store"
)

// defaultKeepReleases is how many release directories an app keeps, and
// MaxKeepReleases the most KEEP_RELEASES may ask for: each kept release is
// a full checkout (and its environments) on disk.
const (
	defaultKeepReleases = 5
	MaxKeepReleases     = 50
)

// keepReleases reads KEEP_RELEASES: 1 to MaxKeepReleases, default 5.
func keepReleases(env map[string]string) (int, error) {
	v := strings.TrimSpace(env["KEEP_RELEASES"])
	if v == "" {
		return defaultKeepReleases, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil || n < 1:
		return 0, fmt.Errorf("KEEP_RELEASES %q: give a number of releases from 1 to %d", v, MaxKeepReleases)
	case n > MaxKeepReleases:
		return 0, fmt.Errorf("KEEP_RELEASES %d is above the limit of %d (each kept release is a full copy of the app on disk)", n, MaxKeepReleases)
	}
	return n, nil
}

// prune removes release directories beyond the newest few (config
// KEEP_RELEASES, default 5), never the live one nor the newest good release
// before it (the rollback target), then the dependency environments no kept
// release uses.
func (m *Manager) prune(ctx context.Context, app string, live releaseMeta) {
	// A deploy and its pruning change what the app takes on disk.
	defer m.diskChanged(app)
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return
	}
	config, err := m.cfg.Store.Config(ctx, app)
	if err != nil {
		return
	}
	keep, err := keepReleases(config)
	if err != nil {
		// Stored before the limit existed: keep as many as allowed.
		keep = defaultKeepReleases
		if n, aerr := strconv.Atoi(strings.TrimSpace(config["KEEP_RELEASES"])); aerr == nil && n > MaxKeepReleases {
			keep = MaxKeepReleases
		}
	}
	rels, err := m.cfg.Store.Releases(ctx, app) // newest first
	if err != nil {
		return
	}
	// Kept by attempt: a failed attempt keeps its log among the newest.
	kept := map[int]bool{}
	for _, r := range rels {
		if r.Number == a.Release {
			kept[r.Attempt] = true
		}
	}
	for _, r := range rels {
		if r.Number > 0 && r.Number < a.Release && r.Status.String() == "succeeded" {
			kept[r.Attempt] = true // the rollback target
			break
		}
	}
	for i, r := range rels {
		if i < keep {
			kept[r.Attempt] = true
		}
	}
	// The live release's build is recorded only after the deploy returns.
	envs := append([]string(nil), live.Envs...)
	for _, r := range rels {
		if !kept[r.Attempt] {
			os.Remove(m.paths.BuildLog(app, r.Attempt))
			if r.Number > 0 && !r.Pruned {
				os.RemoveAll(m.paths.Release(app, r.Number))
				os.Remove(m.paths.Manifest(app, r.Number))
				os.Remove(m.paths.LegacyBuildLog(app, r.Number))
				if err := m.cfg.Store.MarkPruned(ctx, app, r.Number); err != nil {
					m.log.Warn("mark release pruned", "app", app, "release", r.Number, "err", err)
				}
			}
			continue
		}
		var meta releaseMeta
		if json.Unmarshal([]byte(r.Build), &meta) == nil {
			envs = append(envs, meta.Envs...)
		}
	}
	// A build of this app cannot be running: the caller holds its lock.
	if err := buildpacks.PruneEnvs(m.paths.Envs(app), envs); err != nil {
		m.log.Warn("prune environments", "app", app, "err", err)
	}
	m.pruneSharedObjects()
}

// pruneSharedObjects removes the store's copies of shared objects that no
// environment links any more, once some environments are gone. Only disk
// is at stake: a failure is logged, never returned.
func (m *Manager) pruneSharedObjects() {
	// Other apps' builds may be linking to the store meanwhile: its own
	// lock keeps their copies from being removed under them.
	if err := buildpacks.PruneSharedObjects(m.paths.SharedObjects()); err != nil {
		m.log.Warn("prune shared objects", "err", err)
	}
}

// BuildLog is the file that holds the output of a deploy attempt.
func (m *Manager) BuildLog(app string, rel store.Release) string {
	path := m.paths.BuildLog(app, rel.Attempt)
	if _, err := os.Stat(path); err != nil && rel.Number > 0 {
		if legacy := m.paths.LegacyBuildLog(app, rel.Number); fileExists(legacy) {
			return legacy
		}
	}
	return path
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
