package e2e

import (
	"os"
	"sort"
	"strconv"
	"testing"
	"time"
)

// TestMeasureClusterFoundation prints the figures of docs/BENCHMARKS.md,
// section "Cluster foundation": join, crash detection and ring rebuild with
// real processes, per gossip profile. It runs only when asked:
//
//	cd e2e && DISTROD_MEASURE=1 go test -count=1 -run TestMeasureClusterFoundation -v .
func TestMeasureClusterFoundation(t *testing.T) {
	if os.Getenv("DISTROD_MEASURE") == "" {
		t.Skip("set DISTROD_MEASURE=1 to measure")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("DISTROD_MEASURE_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	for _, profile := range []string{"local", "lan"} {
		t.Run(profile, func(t *testing.T) { measureProfile(t, profile, rounds) })
	}
}

// poll waits for cond with a 2 ms period (fine enough for these figures) and returns when it held.
func poll(t *testing.T, timeout time.Duration, what string, cond func() error) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(2 * time.Millisecond) // poll interval
	}
}

func measureProfile(t *testing.T, profile string, rounds int) {
	opts := Options{Profile: profile, Args: []string{"--log-level", "info"}}
	n1 := StartNode(t, "node1", opts)
	n2 := StartNode(t, "node2", opts, n1.GossipAddr)
	poll(t, 60*time.Second, "2 nodes agree", func() error { _, err := AgreeOnMembers([]*Node{n1, n2}, "node1", "node2"); return err })

	// Join: exec of node3 → /health 200 on node3 → every node lists 3 members and one ring.
	t0 := time.Now()
	n3 := StartNode(t, "node3", opts, n1.GossipAddr)
	healthy := time.Since(t0)
	all := []*Node{n1, n2, n3}
	agreed := poll(t, 60*time.Second, "3 nodes agree", func() error { _, err := AgreeOnMembers(all, "node1", "node2", "node3"); return err }).Sub(t0)
	t.Logf("%s join: node3 healthy after %s, all 3 agree on the ring after %s", profile, healthy.Round(time.Millisecond), agreed.Round(time.Millisecond))

	var detect, ring, rejoin []time.Duration
	survivors := []*Node{n1, n3}
	for r := 0; r < rounds; r++ {
		k := time.Now()
		n2.Kill()
		d := poll(t, 90*time.Second, "node2 detected", func() error {
			return EverySees(survivors, "node2", func(m Member) bool { return m.State != "alive" })
		}).Sub(k)
		g := poll(t, 30*time.Second, "survivors agree", func() error {
			_, err := AgreeOnMembers(survivors, "node1", "node3")
			return err
		}).Sub(k)
		s := time.Now()
		n2.Restart()
		j := poll(t, 60*time.Second, "node2 rejoined", func() error {
			_, err := AgreeOnMembers(all, "node1", "node2", "node3")
			return err
		}).Sub(s)
		detect, ring, rejoin = append(detect, d), append(ring, g), append(rejoin, j)
		t.Logf("%s round %d: kill -9 → both survivors see node2 not alive %s, agree on the new ring %s; restart → all agree %s",
			profile, r+1, d.Round(time.Millisecond), g.Round(time.Millisecond), j.Round(time.Millisecond))
	}
	var sum float64
	var count int
	for _, n := range all {
		s, c := rebuildMetric(t, n)
		sum += s
		count += c
	}
	t.Logf("%s summary over %d rounds: crash detection median %s (min %s, max %s); new ring agreed median %s; rejoin median %s; "+
		"ring rebuild (build + grace + topology) mean %.0f µs over %d rebuilds",
		profile, rounds, median(detect), minOf(detect), maxOf(detect), median(ring), median(rejoin), sum/float64(count)*1e6, count)
}

// rebuildMetric reads distrod_cluster_ring_rebuild_seconds sum and count from one scrape of /metrics.
func rebuildMetric(t *testing.T, n *Node) (float64, int) {
	ss, err := n.Metrics()
	if err != nil {
		t.Fatalf("metrics of %s: %v", n.Name, err)
	}
	sum, _ := ss.Sum("distrod_cluster_ring_rebuild_seconds_sum", "")
	count, _ := ss.Sum("distrod_cluster_ring_rebuild_seconds_count", "")
	return sum, int(count)
}

func sorted(ds []time.Duration) []time.Duration {
	out := append([]time.Duration(nil), ds...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
func median(ds []time.Duration) time.Duration {
	s := sorted(ds)
	return s[len(s)/2].Round(time.Millisecond)
}
func minOf(ds []time.Duration) time.Duration { return sorted(ds)[0].Round(time.Millisecond) }
func maxOf(ds []time.Duration) time.Duration {
	s := sorted(ds)
	return s[len(s)-1].Round(time.Millisecond)
}
