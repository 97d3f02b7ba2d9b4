package app

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"time"

	"hop3/procfile"
	"hop3/runtime/supervisor"
)

// provenBy returns the number of the live release when r would run exactly
// what it runs (the same pushed tree, the same build, the same environment
// and scale) and every one of its processes has been up for longer than r's
// settle time; 0 otherwise. That generation has already shown that this
// code starts with these settings and stays up, so making a new one wait
// SETTLE_TIME again proves nothing: an unchanged push, made to redeploy,
// goes live as soon as its processes are ready.
func (m *Manager) provenBy(ctx context.Context, live int, r release, now time.Time) int {
	if live == 0 || live == r.number || r.meta.Source == "" || m.sleeping(r.app) {
		return 0
	}
	l, err := m.loadRelease(ctx, r.app, live)
	if err != nil {
		return 0
	}
	// Through JSON, as the live release's record was: an empty map and a
	// missing one are the same build. Paths into each release's own
	// directory (NODE_PATH, PATH) name the same thing.
	a, errA := json.Marshal(l.meta)
	b, errB := json.Marshal(r.meta)
	if errA != nil || errB != nil || !bytes.Equal(inRelease(a, l.dir), inRelease(b, r.dir)) ||
		!maps.EqualFunc(l.env, r.env, func(x, y string) bool {
			return bytes.Equal(inRelease([]byte(x), l.dir), inRelease([]byte(y), r.dir))
		}) || !maps.Equal(l.scale, r.scale) {
		return 0
	}
	settle := durationEnv(r.env, "SETTLE_TIME", DefaultSettleTime)
	up := 0
	for _, st := range m.cfg.Supervisor.List() {
		if st.Labels["app"] != r.app || st.Labels["release"] != strconv.Itoa(live) || st.State == supervisor.Draining {
			continue
		}
		if e, ok := l.procfile.Get(st.Labels["kind"]); ok && e.Kind == procfile.KindCron {
			continue // a job between runs is not up, and need not be
		}
		if st.State != supervisor.Running || now.Sub(st.StartedAt) < settle {
			return 0
		}
		up++
	}
	if up == 0 {
		return 0
	}
	return live
}

// inRelease writes paths into the release directory dir as "$RELEASE/...".
func inRelease(b []byte, dir string) []byte {
	return bytes.ReplaceAll(b, []byte(dir), []byte("$RELEASE"))
}
