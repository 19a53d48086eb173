package daemon

import (
	"github.com/distrod/distrod/distro"
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

// peerTrafficCollector exports the peer client's per-call counters, so verify
// bytes per round can be read off /metrics (distrod bench does).
type peerTrafficCollector struct {
	stats func() distro.ClientStats
	bytes *prometheus.Desc
	calls *prometheus.Desc
}

func newPeerTrafficCollector(stats func() distro.ClientStats) *peerTrafficCollector {
	return &peerTrafficCollector{
		stats: stats,
		bytes: prometheus.NewDesc("distrod_peer_bytes_total",
			"Bytes of peer requests by call (push, query, checksum, snapshot) and direction.", []string{"call", "direction"}, nil),
		calls: prometheus.NewDesc("distrod_peer_calls_total",
			"Peer requests sent by call and result.", []string{"call", "result"}, nil),
	}
}

func (c *peerTrafficCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.bytes; ch <- c.calls }

func (c *peerTrafficCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, call := range []struct {
		name string
		st   distro.CallStats
	}{{"push", s.Push}, {"query", s.Query}, {"checksum", s.Checksum}, {"snapshot", s.Snapshot}} {
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(call.st.BytesSent), call.name, "sent")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.CounterValue, float64(call.st.BytesReceived), call.name, "received")
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(call.st.Calls-call.st.Errors), call.name, "ok")
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(call.st.Errors), call.name, "error")
	}
}
