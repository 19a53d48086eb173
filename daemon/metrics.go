package daemon

import (
	"github.com/distrod/distrod/membership"
	"github.com/prometheus/client_golang/prometheus"
)

// nodeMetrics are the node's own collectors; distro and the registry register theirs on the same registry.
type nodeMetrics struct {
	members         *prometheus.GaugeVec
	ringChanges     prometheus.Counter
	partitionsOwned prometheus.Gauge
	rebuildSeconds  prometheus.Histogram
}

// newNodeMetrics registers the node's collectors; ready reports the node's readiness.
func newNodeMetrics(reg prometheus.Registerer, ready func() bool) *nodeMetrics {
	m := &nodeMetrics{
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "distrod", Subsystem: "cluster", Name: "members",
			Help: "Known members by gossip state.",
		}, []string{"state"}),
		ringChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "distrod", Subsystem: "cluster", Name: "ring_changes_total",
			Help: "Times the responsibility ring changed version (ready member set changed).",
		}),
		partitionsOwned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "distrod", Subsystem: "cluster", Name: "partitions_owned",
			Help: "Partitions this node is responsible for.",
		}),
		rebuildSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "distrod", Subsystem: "cluster", Name: "ring_rebuild_seconds",
			Help:    "Time to apply a ring change: build the ring, ownership grace, distro topology.",
			Buckets: prometheus.ExponentialBuckets(50e-6, 2, 14), // 50 µs .. 0.4 s
		}),
	}
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "distrod", Name: "ready",
		Help: "1 when the node loaded its snapshot and serves, 0 otherwise.",
	}, func() float64 {
		if ready() {
			return 1
		}
		return 0
	})
	reg.MustRegister(m.members, m.ringChanges, m.partitionsOwned, m.rebuildSeconds, readyGauge)
	return m
}

// observeMembers sets the members-by-state gauge, every state present even at zero.
func (m *nodeMetrics) observeMembers(all []membership.Member) {
	counts := map[membership.State]int{
		membership.StateAlive: 0, membership.StateSuspect: 0, membership.StateDead: 0, membership.StateLeft: 0,
	}
	for _, mb := range all {
		counts[mb.State]++
	}
	for s, c := range counts {
		m.members.WithLabelValues(string(s)).Set(float64(c))
	}
}
