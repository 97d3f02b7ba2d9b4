package metrics

import "github.com/prometheus/client_golang/prometheus"

// AddonStat is one add-on as the metrics see it.
type AddonStat struct {
	App, Name, Kind string
	Running         bool
	SizeBytes       int64
}

func (c *collector) collectAddons(ch chan<- prometheus.Metric) {
	if c.m.cfg.Addons == nil {
		return
	}
	for _, a := range c.m.cfg.Addons() {
		up := 0.0
		if a.Running {
			up = 1
		}
		send(ch, c.addonUp, prometheus.GaugeValue, up, a.App, a.Name, a.Kind)
		send(ch, c.addonSize, prometheus.GaugeValue, float64(a.SizeBytes), a.App, a.Name, a.Kind)
	}
}
