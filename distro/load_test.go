package distro

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// loader builds a cluster where a and b are loaded sources holding data, plus d,
// a joining node that is neither standalone nor started: the test starts it once
// its faults are in place.
func loader(t *testing.T) (*testCluster, *Engine) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	for _, n := range []string{"a", "b"} {
		c.stores[n].Apply(Datum{Key: "k1", Value: []byte("v1"), Version: 1})
		c.stores[n].Apply(Datum{Key: "k2", Version: 2, Deleted: true})
	}
	d := c.add("d", func(cfg *Config) { cfg.Standalone = false })
	d.SetTopology(c.topo("d", []string{"a", "b", "d"}, []string{"a", "b"})) // d is not ready: not in the ring
	return c, d
}

func TestSnapshotLoadTriesNextPeerAndStaysUnloadedUntilSuccess(t *testing.T) {
	c, d := loader(t)
	var called atomic.Int32
	d.OnLoaded(func() { called.Add(1) })
	c.net.setFault("snapshot", "a", fault{fail: true})
	c.net.setFault("snapshot", "b", fault{fail: true})
	d.Start()

	// The background loop and LoadOnce below may race to load; the test only
	// asserts what holds either way.
	testutil.Eventually(t, 5*time.Second, "the load loop did not keep retrying over both peers", func() error {
		return errors.Join(c.net.callsAtLeast("snapshot", "a", 2), c.net.callsAtLeast("snapshot", "b", 2))
	})
	if err := d.LoadOnce(context.Background()); err == nil {
		t.Fatal("LoadOnce succeeded with every peer failing")
	}
	if d.Loaded() || called.Load() != 0 {
		t.Fatal("d counts as loaded although no snapshot arrived")
	}
	if err := d.HandleSnapshot(func(Datum) error { return nil }); !errors.Is(err, ErrNotLoaded) {
		t.Fatalf("an unloaded node served a snapshot: %v", err)
	}

	c.net.setFault("snapshot", "b", fault{})
	testutil.Eventually(t, 5*time.Second, "d never loaded from b", func() error { return loaded(d) })
	if c.value("d", "k1") != "v1" {
		t.Fatal("the snapshot's live datum is missing")
	}
	if dd, ok := c.stores["d"].Get("k2"); !ok || !dd.Deleted {
		t.Fatal("the snapshot's tombstone is missing")
	}
	testutil.Eventually(t, 5*time.Second, "OnLoaded did not run once", func() error {
		if n := called.Load(); n != 1 {
			return fmt.Errorf("OnLoaded ran %d times, want once", n)
		}
		return nil
	})
	if st := d.Status(); !st.Ready || st.SnapshotSource != "b" {
		t.Fatalf("status %+v, want ready, loaded from b", st)
	}
	if d.Clock().Next() <= 2 {
		t.Fatal("the clock did not observe the loaded versions")
	}
}

func TestLoadOnceRotatesOverReadyPeers(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	d := c.add("d", func(cfg *Config) { cfg.Standalone = false })
	d.SetTopology(c.topo("d", []string{"a", "b", "d"}, []string{"a", "b"})) // never started: only LoadOnce loads
	c.net.setFault("snapshot", "a", fault{fail: true})
	if err := d.LoadOnce(context.Background()); err != nil {
		t.Fatalf("LoadOnce with b healthy: %v", err)
	}
	if c.net.count("snapshot", "a") != 1 || c.net.count("snapshot", "b") != 1 {
		t.Fatalf("tried a %d and b %d times, want a then b once each", c.net.count("snapshot", "a"), c.net.count("snapshot", "b"))
	}
	if !d.Loaded() {
		t.Fatal("not loaded after a successful LoadOnce")
	}
}

func TestPushesDuringLoadAreApplied(t *testing.T) {
	c, d := loader(t)
	c.net.setFault("snapshot", "a", fault{fail: true})
	c.net.setFault("snapshot", "b", fault{fail: true})
	d.Start()
	if err := d.HandlePush([]Datum{{Key: "k1", Value: []byte("v9"), Version: 9}}); err != nil {
		t.Fatal(err)
	}
	c.net.setFault("snapshot", "a", fault{})
	testutil.Eventually(t, 5*time.Second, "d never loaded", func() error { return loaded(d) })
	if got := c.value("d", "k1"); got != "v9" {
		t.Fatalf("k1 = %q: the older snapshot copy overwrote the newer push", got)
	}
}

func TestBootstrapLowestNameDeclaresItselfLoaded(t *testing.T) {
	names := []string{"n1", "n2"}
	c := newCluster(t, 16, nil, nil)
	for _, n := range names { // all started with --join: nobody is ready
		e := c.add(n, func(cfg *Config) {
			cfg.Standalone = false
			cfg.BootstrapWait = 20 * time.Millisecond
		})
		topo := c.topo(n, names, nil)
		topo.Ready = nil
		e.SetTopology(topo)
	}
	c.engines["n2"].Start() // n2 starts first: it waits longer than n1 does
	c.engines["n1"].Start()
	testutil.Eventually(t, 5*time.Second, "n1, lowest name, never bootstrapped", func() error { return loaded(c.engines["n1"]) })
	if st := c.engines["n1"].Status(); st.SnapshotSource != "bootstrap" {
		t.Fatalf("n1 loaded from %q, want bootstrap", st.SnapshotSource)
	}
	c.stores["n1"].Apply(Datum{Key: "k", Value: []byte("v"), Version: 1})

	// n1 turns ready in gossip; n2 must load from it rather than bootstrap.
	n2 := c.topo("n2", names, []string{"n1"})
	c.engines["n2"].SetTopology(n2)
	testutil.Eventually(t, 5*time.Second, "n2 never loaded from n1", func() error { return loaded(c.engines["n2"]) })
	if st := c.engines["n2"].Status(); st.SnapshotSource != "n1" {
		t.Fatalf("n2 loaded from %q, want n1", st.SnapshotSource)
	}
	if c.value("n2", "k") != "v" {
		t.Fatal("n2 did not get n1's data")
	}
}

func TestLowestName(t *testing.T) {
	if !lowestName(&Topology{Self: "a", Peers: []Peer{{Name: "b"}, {Name: "c"}}}) {
		t.Error("a is lowest among a, b, c")
	}
	if lowestName(&Topology{Self: "b", Peers: []Peer{{Name: "a"}}}) {
		t.Error("b is not lowest among a, b")
	}
}

// Regression (issue 8): a node restarted with --join addresses that answer
// nothing declared itself a cluster of one after BootstrapWait, ready and
// empty, and once bridged to the real cluster its verify deleted what it never
// had. Alone it must stay loading, saying why; only members seen all loading
// (a new cluster started with --join everywhere) let the lowest name start.
func TestNodeThatSeesNoMemberNeverBootstraps(t *testing.T) {
	cfg := testConfig(t)
	cfg.Standalone = false
	cfg.BootstrapWait = 5 * time.Millisecond
	e, err := New(cfg, NewMemStore(), &fakeTransport{net: newFakeNet(), from: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(context.Background())
	e.SetTopology(Topology{Self: "a"})
	e.Start()
	// Twenty decisions, each after a full BootstrapWait alone: far past the old rule's one.
	testutil.Eventually(t, 5*time.Second, "load loop stalled", func() error {
		if n := e.bootstrapChecks.Load(); n < 20 {
			return fmt.Errorf("%d bootstrap checks, want at least 20", n)
		}
		return nil
	})
	if e.Loaded() {
		t.Fatal("a node that sees no other member declared itself loaded")
	}
	if why := e.LoadingReason(); !strings.Contains(why, "no other member") {
		t.Fatalf("loading reason %q does not say that no member is seen", why)
	}
	if st := e.Status(); st.Ready || st.Loading == "" {
		t.Fatalf("status %+v: want not ready with a loading reason", st)
	}

	// Another member appears, loading too, with a higher name: a new cluster.
	e.SetTopology(Topology{Self: "a", Peers: []Peer{{Name: "b", Addr: "b"}}})
	testutil.Eventually(t, 5*time.Second, "lowest-named member of an all-loading cluster never bootstrapped", func() error { return loaded(e) })
	if o := e.Origin(); o.Horizon != e.boot || e.boot == 0 || len(o.Lineage) != 1 {
		t.Fatalf("origin %+v after bootstrapping empty, want its boot time %d and a lineage of its own", o, e.boot)
	}
	if e.LoadingReason() != "" {
		t.Fatalf("loaded node still reports loading reason %q", e.LoadingReason())
	}
}

// A node that loads a snapshot is as complete as its source: it takes the
// source's horizon, not its own boot time and not zero, and its lineage.
func TestSnapshotLoadTakesTheSourceHorizon(t *testing.T) {
	c := newCluster(t, 16, []string{"n1"}, nil)
	const h = 1_700_000_000_123_456_789
	setOrigin(c.engines["n1"], Origin{Horizon: h, Lineage: testLineage})
	c.stores["n1"].Apply(Datum{Key: "k", Value: []byte("v"), Version: h + 1})
	n2 := c.add("n2", func(cfg *Config) { cfg.Standalone = false })
	n2.SetTopology(c.topo("n2", []string{"n1", "n2"}, []string{"n1"}))
	n2.Start()
	testutil.Eventually(t, 5*time.Second, "n2 never loaded from n1", func() error { return loaded(n2) })
	if got := n2.Origin(); got.Horizon != h || !got.Lineage.Equal(testLineage) {
		t.Fatalf("n2's origin %+v after loading from n1, want n1's horizon %d and lineage %v", got, h, testLineage)
	}
}
