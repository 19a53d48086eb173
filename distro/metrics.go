package distro

import "github.com/prometheus/client_golang/prometheus"

// metrics are the engine's Prometheus collectors. They always exist, so the
// code records unconditionally; they are registered only when Config.Metrics is set.
type metrics struct {
	pushBatches, pushKeys, pushFailures, pushReceivedKeys prometheus.Counter
	pushLatency                                           prometheus.Histogram
	dirtyKeys                                             prometheus.GaugeFunc

	verifyRounds, verifyFailures, verifyMismatchedPartitions                    prometheus.Counter
	verifyMismatchedKeys, verifyPulledKeys, verifyRemovedKeys, verifyPushedBack prometheus.Counter
	tombstonesSwept, lineageMerges                                              prometheus.Counter

	snapshotFailures                prometheus.Counter
	snapshotDuration, snapshotBytes prometheus.Gauge
}

func newMetrics(e *Engine) *metrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "distro", Name: name, Help: help})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "distro", Name: name, Help: help})
	}
	return &metrics{
		pushBatches:      counter("push_batches_total", "Push batches sent to peers, failed ones included."),
		pushKeys:         counter("push_keys_total", "Datums delivered to peers in successful push batches."),
		pushFailures:     counter("push_failures_total", "Push batches that failed and were marked for retry."),
		pushReceivedKeys: counter("push_received_keys_total", "Datums received in pushes from peers."),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "distro", Name: "push_duration_seconds", Help: "Latency of one push batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		dirtyKeys: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "distro", Name: "dirty_keys", Help: "Pending (key, peer) pushes.",
		}, func() float64 { return float64(e.dirtyKeys()) }),

		verifyRounds:               counter("verify_rounds_total", "Verify rounds started by this node."),
		verifyFailures:             counter("verify_failures_total", "Verify exchanges with a peer that failed."),
		verifyMismatchedPartitions: counter("verify_mismatched_partitions_total", "Owned partitions a peer reported as different."),
		verifyMismatchedKeys:       counter("verify_mismatched_keys_total", "Keys found different or missing here on verify."),
		verifyPulledKeys:           counter("verify_pulled_keys_total", "Datums pulled on verify that changed the store."),
		verifyRemovedKeys:          counter("verify_removed_keys_total", "Keys removed because their owner no longer had them."),
		verifyPushedBack:           counter("verify_pushed_back_keys_total", "Keys sent back to their owner because it lacked writes held here."),
		tombstonesSwept:            counter("tombstones_swept_total", "Tombstones forgotten after TombstoneTTL."),
		lineageMerges:              counter("lineage_merges_total", "Times this node met a member of a cluster started separately (its horizon moved to then)."),

		snapshotFailures: counter("snapshot_failures_total", "Snapshot pulls from a peer that failed."),
		snapshotDuration: gauge("snapshot_load_seconds", "Duration of the successful snapshot pull."),
		snapshotBytes:    gauge("snapshot_load_bytes", "Key and value bytes in the successful snapshot pull."),
	}
}

// register registers every collector on r, or none.
func (m *metrics) register(r prometheus.Registerer) error {
	all := []prometheus.Collector{
		m.pushBatches, m.pushKeys, m.pushFailures, m.pushReceivedKeys, m.pushLatency, m.dirtyKeys,
		m.verifyRounds, m.verifyFailures, m.verifyMismatchedPartitions,
		m.verifyMismatchedKeys, m.verifyPulledKeys, m.verifyRemovedKeys, m.verifyPushedBack, m.tombstonesSwept, m.lineageMerges,
		m.snapshotFailures, m.snapshotDuration, m.snapshotBytes,
	}
	for i, c := range all {
		if err := r.Register(c); err != nil {
			for _, done := range all[:i] {
				r.Unregister(done)
			}
			return err
		}
	}
	return nil
}

// dirtyKeys counts pending (key, peer) pushes.
func (e *Engine) dirtyKeys() int {
	e.mu.RLock()
	defer e.mu.RUnlock()
	n := 0
	for _, w := range e.workers {
		n += w.pending()
	}
	return n
}
