package app

import (
	"context"
	"encoding/json"
	"os"
	"strconv"

	"hop3/buildpacks"
)

// defaultKeepReleases is how many release directories an app keeps.
const defaultKeepReleases = 5

// prune removes release directories beyond the newest few (config
// KEEP_RELEASES, default 5), never the live one nor the newest good release
// before it (the rollback target), then the dependency environments no kept
// release uses.
func (m *Manager) prune(ctx context.Context, app string, live releaseMeta) {
	a, err := m.cfg.Store.App(ctx, app)
	if err != nil {
		return
	}
	config, err := m.cfg.Store.Config(ctx, app)
	if err != nil {
		return
	}
	keep := defaultKeepReleases
	if n, err := strconv.Atoi(config["KEEP_RELEASES"]); err == nil && n >= 1 {
		keep = n
	}
	rels, err := m.cfg.Store.Releases(ctx, app) // newest first
	if err != nil {
		return
	}
	kept := map[int]bool{a.Release: true}
	for _, r := range rels {
		if r.Number < a.Release && r.Status.String() == "succeeded" {
			kept[r.Number] = true // the rollback target
			break
		}
	}
	for i, r := range rels {
		if i < keep {
			kept[r.Number] = true
		}
	}
	// The live release's build is recorded only after the deploy returns.
	envs := append([]string(nil), live.Envs...)
	for _, r := range rels {
		if !kept[r.Number] {
			os.RemoveAll(m.paths.release(app, r.Number))
			os.Remove(m.paths.buildLog(app, r.Number))
			continue
		}
		var meta releaseMeta
		if json.Unmarshal([]byte(r.Build), &meta) == nil {
			envs = append(envs, meta.Envs...)
		}
	}
	// A build of this app cannot be running: the caller holds its lock.
	if err := buildpacks.PruneEnvs(m.paths.envs(app), envs); err != nil {
		m.log.Warn("prune environments", "app", app, "err", err)
	}
}
