package metrics

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"

	"hop3/internal/router"
	"hop3/runtime/supervisor"
)

// collector reads, at each scrape, what hop3 does not count itself: the
// supervisor's processes and their usage, the add-ons, hop3's own health,
// disk use, host names and certificates.
type collector struct {
	m *Metrics

	processes, processCPU, processRSS *prometheus.Desc
	addonUp, addonSize                *prometheus.Desc
	up, buildInfo, startTime          *prometheus.Desc
	goroutines, selfRSS               *prometheus.Desc
	caddyRestarts, disk, hostInfo     *prometheus.Desc
	certExpiry, certFailing           *prometheus.Desc
}

func newCollector(m *Metrics) *collector {
	d := prometheus.NewDesc
	appKind := []string{"app", "kind"}
	addon := []string{"app", "addon", "kind"}
	return &collector{
		m:             m,
		processes:     d("hop3_processes", "Supervised processes of each app and Procfile kind, by state.", []string{"app", "kind", "state"}, nil),
		processCPU:    d("hop3_process_cpu_seconds_total", "User and system CPU time of the running processes (and their children) of each app and kind; it drops when processes are replaced.", appKind, nil),
		processRSS:    d("hop3_process_resident_memory_bytes", "Resident memory of the running processes (and their children) of each app and kind.", appKind, nil),
		addonUp:       d("hop3_addon_up", "1 when the add-on's server is running, 0 otherwise.", addon, nil),
		addonSize:     d("hop3_addon_size_bytes", "Size of the add-on's data: the database, or the Redis snapshot.", addon, nil),
		up:            d("hop3_up", "1 while hop3 serves its metrics.", nil, nil),
		buildInfo:     d("hop3_build_info", "hop3's version, as a label.", []string{"version"}, nil),
		startTime:     d("hop3_start_time_seconds", "When hop3 started, in seconds since the epoch.", nil, nil),
		goroutines:    d("hop3_goroutines", "Goroutines of the hop3 daemon.", nil, nil),
		selfRSS:       d("hop3_resident_memory_bytes", "Resident memory of the hop3 daemon itself.", nil, nil),
		caddyRestarts: d("hop3_caddy_restarts_total", "Times hop3 restarted Caddy after it died.", nil, nil),
		disk:          d("hop3_app_disk_bytes", "Disk each app takes, by part: its git repository, kept releases, dependency environments and DATA_DIR; measured in the background, after each deploy and every few minutes.", []string{"app", "part"}, nil),
		hostInfo:      d("hop3_app_host_info", "The host names each app answers to; join with Caddy's per-host metrics on host.", []string{"app", "host"}, nil),
		certExpiry:    d("hop3_cert_expiry_seconds", "When each host's stored certificate expires, in seconds since the epoch.", []string{"host"}, nil),
		certFailing:   d("hop3_cert_failing", "1 when Caddy logged a failure to get the host's certificate since it last got one.", []string{"host"}, nil),
	}
}

// Describe sends the families this hop3 exports: those of a source left
// unset in Config are not.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	cfg := c.m.cfg
	for _, d := range []*prometheus.Desc{c.processes, c.processCPU, c.processRSS, c.up, c.buildInfo, c.startTime, c.goroutines, c.selfRSS} {
		ch <- d
	}
	if cfg.Addons != nil {
		ch <- c.addonUp
		ch <- c.addonSize
	}
	if cfg.CaddyRestarts != nil {
		ch <- c.caddyRestarts
	}
	if cfg.DiskUsage != nil {
		ch <- c.disk
	}
	if cfg.Hosts != nil {
		ch <- c.hostInfo
	}
	if cfg.Certificates != nil {
		ch <- c.certExpiry
		ch <- c.certFailing
	}
}

// Collect reads every source once. The registry sorts what it sends.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	c.collectProcesses(ch)
	c.collectAddons(ch)
	c.collectSelf(ch)
}

// send sends one sample; one the library refuses (a label value that is not
// UTF-8) fails the scrape of that sample alone.
func send(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	s, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		s = prometheus.NewInvalidMetric(d, err)
	}
	ch <- s
}

// states lists every state a process count is exported for, so that a
// series exists (at 0) before the first process reaches it.
var states = []supervisor.State{supervisor.Starting, supervisor.Running, supervisor.Backoff,
	supervisor.Stopping, supervisor.Exited, supervisor.Crashed, supervisor.Draining}

type group struct{ app, kind string }

func (c *collector) collectProcesses(ch chan<- prometheus.Metric) {
	byState := map[group]map[supervisor.State]int{}
	pgids := map[group][]int{}
	for _, st := range c.m.cfg.Supervisor.List() {
		g := group{st.Labels["app"], st.Labels["kind"]}
		if g.app == "" || g.kind == "" {
			continue
		}
		if byState[g] == nil {
			byState[g] = map[supervisor.State]int{}
		}
		byState[g][st.State]++
		if st.PID > 0 {
			pgids[g] = append(pgids[g], st.PID)
		}
	}
	var all []int
	for _, ids := range pgids {
		all = append(all, ids...)
	}
	usage := supervisor.GroupUsage(c.m.cfg.ProcRoot, all)
	for g, counts := range byState {
		for _, s := range states {
			send(ch, c.processes, prometheus.GaugeValue, float64(counts[s]), g.app, g.kind, s.String())
		}
		var cpu float64
		var rss int64
		for _, id := range pgids[g] {
			cpu += usage[id].CPU
			rss += usage[id].RSS
		}
		send(ch, c.processCPU, prometheus.CounterValue, cpu, g.app, g.kind)
		send(ch, c.processRSS, prometheus.GaugeValue, float64(rss), g.app, g.kind)
	}
}

func (c *collector) collectSelf(ch chan<- prometheus.Metric) {
	cfg := c.m.cfg
	send(ch, c.up, prometheus.GaugeValue, 1)
	send(ch, c.buildInfo, prometheus.GaugeValue, 1, cfg.Version)
	send(ch, c.startTime, prometheus.GaugeValue, float64(c.m.start.Unix()))
	send(ch, c.goroutines, prometheus.GaugeValue, float64(runtime.NumGoroutine()))
	send(ch, c.selfRSS, prometheus.GaugeValue, float64(selfRSS(cfg.ProcRoot)))
	if cfg.CaddyRestarts != nil {
		send(ch, c.caddyRestarts, prometheus.CounterValue, float64(cfg.CaddyRestarts()))
	}
	if cfg.DiskUsage != nil {
		for a, parts := range cfg.DiskUsage() {
			for part, n := range parts {
				send(ch, c.disk, prometheus.GaugeValue, float64(n), a, part)
			}
		}
	}
	if cfg.Hosts != nil {
		for a, hosts := range cfg.Hosts() {
			// A host named twice would be a sample collected twice, which
			// the registry refuses.
			seen := map[string]bool{}
			for _, h := range hosts {
				if !seen[h] {
					seen[h] = true
					send(ch, c.hostInfo, prometheus.GaugeValue, 1, a, h)
				}
			}
		}
	}
	if cfg.Certificates != nil {
		c.collectCerts(ch, cfg.Certificates())
	}
}

// collectCerts exports each host's certificate expiry (hosts with a stored
// certificate only) and whether Caddy is failing to get one.
func (c *collector) collectCerts(ch chan<- prometheus.Metric, certs []router.CertStatus) {
	for _, s := range certs {
		if !s.NotAfter.IsZero() {
			send(ch, c.certExpiry, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.Host)
		}
		v := 0.0
		if s.State == router.CertFailing {
			v = 1
		}
		send(ch, c.certFailing, prometheus.GaugeValue, v, s.Host)
	}
}
