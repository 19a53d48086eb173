package naming

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the registry's Prometheus collectors. They always exist (so
// code can count unconditionally) and are registered only when
// Config.Metrics is set.
type metrics struct {
	beats       prometheus.Counter
	forwarded   *prometheus.CounterVec // result: ok | applied_here (no answer from the owner) | error (no answer, and not runnable here)
	expirations *prometheus.CounterVec // kind: unhealthy | removed
	pushes      *prometheus.CounterVec // result: sent | error | retransmitted | unacked
	pushAcks    prometheus.Counter
	stalls      prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		beats:       counter("beats_total", "Client beats handled by this node as the responsible node."),
		forwarded:   counterVec("forwarded_requests_total", "Writes forwarded to the responsible node, by result: ok, applied_here (owner unreachable, applied locally), error.", "result"),
		expirations: counterVec("expirations_total", "Instances marked unhealthy or removed for missing beats.", "kind"),
		pushes:      counterVec("udp_pushes_total", "UDP pushes to subscribers, by result.", "result"),
		pushAcks:    counter("udp_push_acks_total", "UDP push acks received."),
		stalls:      counter("stalls_total", "Stalls detected (the process did not run for longer than the stall threshold)."),
	}
}

// counterOpts names a counter distrod_naming_<name>.
func counterOpts(name, help string) prometheus.CounterOpts {
	return prometheus.CounterOpts{Namespace: "distrod", Subsystem: "naming", Name: name, Help: help}
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(counterOpts(name, help))
}

func counterVec(name, help, label string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(counterOpts(name, help), []string{label})
}

func (m *metrics) register(reg prometheus.Registerer, r *Registry) error {
	for _, c := range []prometheus.Collector{m.beats, m.forwarded, m.expirations, m.pushes, m.pushAcks, m.stalls, &storeCollector{r: r}} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var (
	descServices    = prometheus.NewDesc("distrod_naming_services", "Live services in the local store.", nil, nil)
	descInstances   = prometheus.NewDesc("distrod_naming_instances", "Live instances in the local store, by health.", []string{"health"}, nil)
	descSubscribers = prometheus.NewDesc("distrod_naming_udp_subscribers", "UDP push subscribers on this node.", nil, nil)
)

// storeCollector computes the store gauges on scrape.
type storeCollector struct{ r *Registry }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descServices
	ch <- descInstances
	ch <- descSubscribers
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	var services, healthy, unhealthy int
	c.r.mu.RLock()
	for _, e := range c.r.entries {
		if e.exists {
			services++
			healthy += e.health
			unhealthy += e.live - e.health
		}
	}
	c.r.mu.RUnlock()
	ch <- prometheus.MustNewConstMetric(descServices, prometheus.GaugeValue, float64(services))
	ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(healthy), "healthy")
	ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(unhealthy), "unhealthy")
	subs := 0
	if c.r.push != nil {
		subs = c.r.push.subscriberCount()
	}
	ch <- prometheus.MustNewConstMetric(descSubscribers, prometheus.GaugeValue, float64(subs))
}
