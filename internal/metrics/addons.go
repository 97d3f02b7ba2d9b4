package metrics

// AddonStat is one add-on as the metrics see it.
type AddonStat struct {
	App, Name, Kind string
	Running         bool
	SizeBytes       int64
}

func (m *Metrics) writeAddons(t *textWriter) {
	if m.cfg.Addons == nil {
		return
	}
	list := m.cfg.Addons()
	t.family("hop3_addon_up", "gauge", "1 when the add-on's server is running, 0 otherwise.")
	for _, a := range list {
		up := 0.0
		if a.Running {
			up = 1
		}
		t.sample("hop3_addon_up", L("app", a.App, "addon", a.Name, "kind", a.Kind), up)
	}
	t.family("hop3_addon_size_bytes", "gauge", "Size of the add-on's data: the database, or the Redis snapshot.")
	for _, a := range list {
		t.sample("hop3_addon_size_bytes", L("app", a.App, "addon", a.Name, "kind", a.Kind), float64(a.SizeBytes))
	}
}
