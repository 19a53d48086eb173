package e2e

// "Node restarted alone, then bridged" (issue 8): a node restarted with join
// addresses that answer nothing used to declare itself a cluster of one after
// 3 s, ready and empty; a node joining both it and the cluster then bridged
// the two, and verify on every receiver removed what the empty owner did not
// list — 130 of 200 instances gone for good. Now the lonely node stays
// loading until a ready member reaches it, and an owner that starts a cluster
// empty on purpose (--bootstrap) can never delete what predates it.

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// bridgeTombstoneTTL is short so that removal by absence, which waits for
// TombstoneTTL (the removal grace) before it may delete, bites within the test.
const bridgeTombstoneTTL = "--tombstone-ttl=4s"

// staysLoading checks n's /health every 100 ms for d (past the old rule's 3 s
// BootstrapWait): always 503 LOADING with a reason saying no member is seen.
func staysLoading(t *testing.T, n *Node, d time.Duration) {
	t.Helper()
	polls := 0
	for end := time.Now().Add(d); time.Now().Before(end); polls++ {
		status, h, err := n.Health(nil)
		if err != nil || status != http.StatusServiceUnavailable || h.Ready || h.Status != "LOADING" ||
			!strings.Contains(h.Reason, "no other member") {
			t.Fatalf("%s, restarted with only an unreachable --join, after %d polls: /health = %d %+v (%v); want 503 LOADING saying no member is seen",
				n.Name, polls, status, h, err)
		}
		time.Sleep(100 * time.Millisecond) // the property holds throughout d: poll it
	}
	t.Logf("%s stayed loading for %s (%d polls): %s", n.Name, d, polls, func() string { _, h, _ := n.Health(nil); return h.Reason }())
}

// TestFaultRestartedAloneThenBridged: 3 nodes with clients beating; node3 is
// killed and restarted on new ports with only an unreachable --join; it must
// stay loading. A 4th node joining it and node1 bridges the two: node3 loads
// from the cluster, and nothing a client keeps beating is ever removed.
func TestFaultRestartedAloneThenBridged(t *testing.T) {
	opts := faultOptions(bridgeTombstoneTTL)
	nodes := startFaultCluster(t, 3, opts)
	observed := []*Node{nodes[0], nodes[1]}
	w := newWorkload(t, workloadSpec{services: 6, keepers: 30, leavers: 5, late: 5, faultWindow: 20 * time.Second, seed: 8},
		func() []*Node { return observed }, allOf(nodes[:2]))
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)

	w.beginFaults()
	nodes[2].Kill()
	lonelyOpts := opts
	lonelyOpts.Unready = true
	lonely := StartNode(t, "node3", lonelyOpts, testutil.ClosedLoopbackAddr(t))
	Eventually(t, 30*time.Second, "node1 and node2 see node3's old process dead", func() error {
		return EverySees(nodes[:2], "node3", func(m Member) bool { return m.State == "dead" })
	})
	// Past the old rule's 3 s BootstrapWait, and past memberlist's 5 s dead-name
	// reclaim, after which the bridge can bring node3's new address in.
	staysLoading(t, lonely, 6*time.Second)

	bridge := StartNode(t, "node4", opts, lonely.GossipAddr, nodes[0].GossipAddr)
	final := []*Node{nodes[0], nodes[1], lonely, bridge}
	Eventually(t, 60*time.Second, "node3 loads from the cluster once bridged", func() error {
		if status, h, err := lonely.Health(nil); err != nil || status != http.StatusOK {
			return fmt.Errorf("node3 /health = %d %+v (%v)", status, h, err)
		}
		return nil
	})
	if st, err := lonely.Status(); err != nil || st.Instances == 0 {
		t.Fatalf("node3 ready with status %+v (%v): want the cluster's instances", st, err)
	}
	stopped := time.Now()
	w.waitLeaversDone(t, 30*time.Second)
	w.converge(t, "restarted-alone-then-bridged", final, sortedNames(final), stopped)
}

// TestFaultBootstrappedEmptyThenBridgedLosesNothing: an operator restarts
// node3 with --bootstrap (and an unreachable --join): it is a new cluster,
// ready and empty, while the old one keeps taking writes. Bridged to the old
// cluster it owns partitions whose keys it never had: its horizon (its boot)
// says its silence about older keys means nothing, and its lineage (another
// history) that its silence about anything means nothing, so the receivers
// keep every key and send it back: all 210 instances stay on every node.
func TestFaultBootstrappedEmptyThenBridgedLosesNothing(t *testing.T) {
	// No heartbeats in this test: the instances must outlive it without them.
	opts := faultOptions(bridgeTombstoneTTL, "--beat-timeout=10m", "--delete-timeout=20m")
	nodes := startFaultCluster(t, 3, opts)
	const services, perService = 20, 10
	for s := 0; s < services; s++ {
		for i := 0; i < perService; i++ {
			form := url.Values{"serviceName": {"bridge-svc-" + strconv.Itoa(s)}, "ip": {fmt.Sprintf("198.19.%d.%d", s, i+1)}, "port": {"8080"}}
			if status, body, err := nodes[(s+i)%3].Do(http.MethodPost, "/nacos/v1/ns/instance", form); err != nil || status != http.StatusOK {
				t.Fatalf("register: %d %s %v", status, body, err)
			}
		}
	}
	all := services * perService
	Eventually(t, 30*time.Second, "every node holds the 200 instances", func() error { return instancesEverywhere(nodes, all) })

	nodes[2].Kill()
	// The registrations must be older than the removal grace (the tombstone TTL)
	// when the empty owner verifies, or the grace alone would keep them.
	bootOpts := opts
	bootOpts.Args = append(append([]string(nil), opts.Args...), "--bootstrap")
	empty := StartNode(t, "node3", bootOpts, testutil.ClosedLoopbackAddr(t))
	if st, err := empty.Status(); err != nil || !st.Ready || st.Instances != 0 {
		t.Fatalf("node3 with --bootstrap: status %+v (%v), want ready and empty", st, err)
	}
	Eventually(t, 30*time.Second, "node1 and node2 see node3's old process dead", func() error {
		return EverySees(nodes[:2], "node3", func(m Member) bool { return m.State == "dead" })
	})
	// The old cluster keeps taking writes that node3 never hears of: newer than
	// node3's horizon, so only the lineage rule keeps them when node3 owns them.
	for s := 0; s < services; s += 2 {
		form := url.Values{"serviceName": {"bridge-svc-" + strconv.Itoa(s)}, "ip": {fmt.Sprintf("198.19.%d.200", s)}, "port": {"8080"}}
		if status, body, err := nodes[s%2].Do(http.MethodPost, "/nacos/v1/ns/instance", form); err != nil || status != http.StatusOK {
			t.Fatalf("register during the isolation: %d %s %v", status, body, err)
		}
	}
	all += services / 2
	time.Sleep(6 * time.Second) // the fault: the registrations age past the 4 s removal grace, and memberlist's dead-name reclaim passes

	bridge := StartNode(t, "node4", opts, empty.GossipAddr, nodes[0].GossipAddr)
	final := []*Node{nodes[0], nodes[1], empty, bridge}
	Eventually(t, 60*time.Second, "the merged cluster agrees on members", func() error {
		_, err := AgreeOnMembers(final, sortedNames(final)...)
		return err
	})
	// Verify runs every second; give it several rounds, then every node must hold all 200.
	Eventually(t, 30*time.Second, "every node of the merged cluster holds every instance, with one digest", func() error {
		if err := instancesEverywhere(final, all); err != nil {
			return err
		}
		return sameDigest(final)
	})
	for _, n := range final[:2] {
		if removed, _, err := n.Metric("distro_verify_removed_keys_total", ""); err != nil || removed != 0 {
			t.Errorf("%s removed %.0f keys by absence (%v): the empty owner deleted what it never had", n.Name, removed, err)
		}
	}
	if merges, _, err := empty.Metric("distro_lineage_merges_total", ""); err != nil || merges == 0 {
		t.Errorf("node3 never merged lineages (%v): was the other history noticed?", err)
	}
}

// instancesEverywhere checks that every node is ready and lists want instances in all.
func instancesEverywhere(nodes []*Node, want int) error {
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			return err
		}
		if !st.Ready || st.Instances != want {
			return fmt.Errorf("%s: ready %t with %d instances, want %d", n.Name, st.Ready, st.Instances, want)
		}
	}
	return nil
}

// sameDigest checks that every node reports one digest and one ring version.
func sameDigest(nodes []*Node) error {
	var first DistroStatus
	for i, n := range nodes {
		st, err := n.Status()
		if err != nil {
			return err
		}
		if i == 0 {
			first = st
			continue
		}
		if st.Digest != first.Digest || st.RingVersion != first.RingVersion {
			return fmt.Errorf("%s has digest %s ring %s, %s has %s ring %s", n.Name, st.Digest, st.RingVersion,
				nodes[0].Name, first.Digest, first.RingVersion)
		}
	}
	return nil
}
