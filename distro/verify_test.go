package distro

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/internal/testutil"
)

func TestLostPushRepairedByVerify(t *testing.T) {
	names := []string{"a", "b"}
	c := newCluster(t, 64, names, nil)
	r := c.ring(names...)
	k := keyOwnedBy(t, "k", map[*hashring.Ring]string{r: "a"})
	gone := keyOwnedBy(t, "gone", map[*hashring.Ring]string{r: "a"})
	c.write("a", gone, "v1")
	c.engines["a"].SyncNow()

	c.net.setFault("push", "b", fault{drop: true})
	c.write("a", k, "v1")
	c.remove("a", gone)
	c.engines["a"].SyncNow()
	if c.value("b", k) != "" || c.value("b", gone) != "v1" {
		t.Fatal("the dropped push was delivered")
	}
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.value("b", k) != "v1" {
		t.Fatal("verify did not pull the missing key")
	}
	if d, _ := c.stores["b"].Get(gone); !d.Deleted {
		t.Fatal("verify did not bring the deletion")
	}
	if da, db := c.engines["a"].Status().Digest, c.engines["b"].Status().Digest; da != db {
		t.Fatalf("digests differ after verify: %s vs %s", da, db)
	}
}

func TestVerifyInSteadyStateSendsOnlyDigests(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	for i := 0; i < 50; i++ {
		c.write("a", fmt.Sprintf("k%d", i), "v")
	}
	c.engines["a"].SyncNow()
	c.engines["b"].SyncNow() // b re-pushes nothing new: the values are a's
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.net.verifyBytes("a", 1) == 0 {
		t.Fatal("no digest message sent")
	}
	if n := c.net.verifyBytes("a", 2); n != 0 {
		t.Fatalf("a converged pair exchanged %d bytes of key lists", n)
	}
}

// The steady-state verify message is O(partitions owned): 1000× the keys may
// not even double it.
func TestVerifyRequestSizeDoesNotGrowWithKeys(t *testing.T) {
	names := []string{"a", "b", "c"}
	measure := func(keys int) int {
		c := newCluster(t, hashring.DefaultPartitions, names, nil)
		for i := 0; i < keys; i++ {
			d := Datum{Key: fmt.Sprintf("ns##group@@svc-%d", i), Value: []byte("instances"), Version: uint64(i + 1)}
			for _, n := range names {
				c.stores[n].Apply(d)
			}
		}
		if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n := c.net.verifyBytes("a", 2); n != 0 {
			t.Fatalf("%d keys: converged nodes exchanged %d bytes of key lists", keys, n)
		}
		return c.net.verifyBytes("a", 1)
	}
	small, large := measure(10), measure(10000)
	t.Logf("verify bytes from a to 2 peers: 10 keys %d, 10000 keys %d", small, large)
	if small == 0 || large > 2*small {
		t.Fatalf("verify request grew from %d to %d bytes with 1000× the keys", small, large)
	}
}

// A receiver holding a key the owner no longer has removes it only when both
// compute the same ring (Nacos lost data removing under two views: #7734, #10323).
func TestVerifyRemovalOnlyWithEqualRingVersions(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	ab, abc := c.ring("a", "b"), c.ring("a", "b", "c")
	k := keyOwnedBy(t, "stale", map[*hashring.Ring]string{ab: "a", abc: "a"})
	c.stores["b"].Apply(Datum{Key: k, Value: []byte("old"), Version: 7})

	b := c.engines["b"]
	b.SetTopology(c.topo("b", []string{"a", "b"}, []string{"a", "b", "c"})) // b believes c is in the ring
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.value("b", k) != "old" {
		t.Fatal("b removed a key while its ring version differed from the owner's")
	}

	b.SetTopology(c.topo("b", []string{"a", "b"}, []string{"a", "b"}))
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	d, ok := c.stores["b"].Get(k)
	if !ok || !d.Deleted || d.Version != 7 {
		t.Fatalf("b has %+v, want a tombstone at the local version 7", d)
	}
	// A newer write of the key still wins over the removal.
	if !c.stores["b"].Apply(Datum{Key: k, Value: []byte("new"), Version: 8}) {
		t.Fatal("a newer write lost to the removal tombstone")
	}
}

// A datum younger than RemoveGrace that the owner does not list cannot be one
// the owner deleted (its tombstone would still be listed): the owner missed it,
// so the receiver sends it back instead of removing it. Older ones are removed.
func TestVerifyPushesYoungUnlistedDatumsBackAndRemovesOldOnes(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := newCluster(t, 64, []string{"a", "b"}, func(_ string, cfg *Config) {
		cfg.RemoveGrace = time.Minute
		cfg.Now = clock
	})
	owners := map[*hashring.Ring]string{c.ring("a", "b"): "a"}
	young := keyOwnedBy(t, "young", owners)
	old := keyOwnedBy(t, "old", owners)
	c.stores["b"].Apply(Datum{Key: young, Value: []byte("v"), Version: uint64(now.UnixNano())})
	c.stores["b"].Apply(Datum{Key: old, Value: []byte("v"), Version: uint64(now.Add(-2 * time.Minute).UnixNano())})
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.engines["b"].SyncNow()
	if c.value("b", young) != "v" || c.value("a", young) != "v" {
		t.Fatalf("young datum: b has %q, a has %q; want it kept and sent back to its owner",
			c.value("b", young), c.value("a", young))
	}
	if c.value("b", old) != "" {
		t.Fatal("a datum older than RemoveGrace that the owner does not list survived")
	}
}

// A receiver holding a newer write than the owner (the owner missed it) sends
// it back during verify, so the owner is repaired too.
func TestVerifyRepairsOwnerThatLacksNewerWrite(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	k := keyOwnedBy(t, "k", map[*hashring.Ring]string{c.ring("a", "b"): "a"})
	c.stores["a"].Apply(Datum{Key: k, Value: []byte("old"), Version: 5})
	c.stores["b"].Apply(Datum{Key: k, Value: []byte("new"), Version: 9})
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.engines["b"].SyncNow()
	if got := c.value("a", k); got != "new" {
		t.Fatalf("owner has %q after verify, want the newer write held by b", got)
	}
}

// With diverging views the owner may list keys the receiver believes it owns:
// those are skipped, the rest of the batch is still applied.
func TestVerifyReceiverSkipsKeysItOwns(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b", "c"}, nil)
	ab, bc := c.ring("a", "b"), c.ring("b", "c")
	c.engines["a"].SetTopology(c.topo("a", []string{"a", "b"}, []string{"a", "b"}))
	c.engines["b"].SetTopology(c.topo("b", []string{"a", "b", "c"}, []string{"b", "c"}))
	mine := keyOwnedBy(t, "b-thinks-mine", map[*hashring.Ring]string{ab: "a", bc: "b"})
	other := keyOwnedBy(t, "c-owns", map[*hashring.Ring]string{ab: "a", bc: "c"})
	c.stores["b"].Apply(Datum{Key: mine, Value: []byte("b's"), Version: 5})
	c.stores["a"].Apply(Datum{Key: mine, Value: []byte("a's"), Version: 6})
	c.stores["a"].Apply(Datum{Key: other, Value: []byte("a's"), Version: 6})

	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.value("b", mine) != "b's" {
		t.Fatal("b pulled a key it believes it owns")
	}
	if c.value("b", other) != "a's" {
		t.Fatal("one owned key aborted the whole batch: the other key was not pulled")
	}
}

func TestVerifyOnlyFromNodesInTheRing(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	c.engines["a"].SetTopology(c.topo("a", []string{"a", "b"}, []string{"b"})) // a is not ready yet
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := c.net.count("checksum", "b"); n != 0 {
		t.Fatalf("a node outside the ring sent %d verify messages", n)
	}
}

func TestVerifySlowPeerDoesNotDelayOthersAndOneExchangeAtATime(t *testing.T) {
	names := []string{"a", "b", "c"}
	c := newCluster(t, 64, names, nil)
	k := keyOwnedBy(t, "k", map[*hashring.Ring]string{c.ring(names...): "a"})
	c.stores["a"].Apply(Datum{Key: k, Value: []byte("v"), Version: 3})
	release := make(chan struct{})
	c.net.setFault("checksum", "b", fault{block: release})

	a := c.engines["a"]
	_ = a.verifyRound(a.ctx, false) // leaves the exchange with b hanging
	testutil.Eventually(t, 5*time.Second, "c was not verified while b hung", func() error { return c.valueIs("c", k, "v") })
	testutil.Eventually(t, 5*time.Second, "no exchange with b in flight", func() error { return c.net.callsExactly("checksum", "b", 1) })

	// A second round skips b (its exchange is still running) and finishes at once.
	if err := a.VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := c.net.count("checksum", "b"); n != 1 {
		t.Fatalf("%d exchanges started with b, want one at a time", n)
	}
	close(release)
	testutil.Eventually(t, 5*time.Second, "b was not repaired once it answered", func() error { return c.valueIs("b", k, "v") })
}

func TestVerifySweepsOldTombstones(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	c := newCluster(t, 64, []string{"a"}, func(_ string, cfg *Config) {
		cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	c.remove("a", "dead")
	c.engines["a"].VerifyOnce(context.Background())
	if _, ok := c.stores["a"].Get("dead"); !ok {
		t.Fatal("a fresh tombstone was swept")
	}
	mu.Lock()
	now = now.Add(c.engines["a"].cfg.TombstoneTTL + time.Second)
	mu.Unlock()
	c.engines["a"].VerifyOnce(context.Background())
	if _, ok := c.stores["a"].Get("dead"); ok {
		t.Fatal("a tombstone older than TombstoneTTL survived the verify tick")
	}
}

func TestVerifyNeedsLoad(t *testing.T) {
	c := newCluster(t, 64, []string{"b"}, nil)
	c.net.setFault("snapshot", "b", fault{fail: true})
	a := c.add("a", func(cfg *Config) { cfg.Standalone = false })
	a.SetTopology(c.topo("a", []string{"a", "b"}, []string{"a", "b"}))
	a.Start()
	if err := c.engines["a"].VerifyOnce(context.Background()); err != ErrNotLoaded {
		t.Fatalf("VerifyOnce before load = %v, want ErrNotLoaded", err)
	}
	if n := c.net.count("checksum", "b"); n != 0 {
		t.Fatalf("a node still loading sent %d verify messages", n)
	}
}

func TestHandleChecksumRejectsBadInput(t *testing.T) {
	c := newCluster(t, 8, []string{"a", "b"}, nil)
	b := c.engines["b"]
	ctx := context.Background()
	if _, err := b.HandleChecksum(ctx, ChecksumRequest{Digests: map[int]uint64{1: 1}}); err == nil {
		t.Error("a request without source was accepted")
	}
	if _, err := b.HandleChecksum(ctx, ChecksumRequest{Source: "a", Digests: map[int]uint64{8: 1}}); err == nil {
		t.Error("a digest for partition 8 of 8 was accepted")
	}
	if _, err := b.HandleChecksum(ctx, ChecksumRequest{Source: "a", Partitions: []int{-1}}); err == nil {
		t.Error("partition -1 was accepted")
	}
	b.SetTopology(Topology{Self: "b"})
	if _, err := b.HandleChecksum(ctx, ChecksumRequest{Source: "a", Digests: map[int]uint64{1: 1}}); err == nil {
		t.Error("a node without a ring answered a verify")
	}
}

// The registry holds heartbeat removals while views differ; it learns of a
// peer's differing view from the verify messages it receives.
func TestLastRingMismatchRecordsAPeersDifferentRing(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	b := c.engines["b"]
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.LastRingMismatch(); !got.IsZero() {
		t.Fatalf("equal rings recorded a mismatch at %v", got)
	}
	b.SetTopology(c.topo("b", []string{"a", "b"}, []string{"a", "b", "c"}))
	before := time.Now()
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := b.LastRingMismatch(); got.Before(before) {
		t.Fatalf("LastRingMismatch = %v after a verify under another ring, want >= %v", got, before)
	}
}

// Regression (issue 8): an owner whose store is complete only from its horizon
// (it restarted empty and bootstrapped, or loaded from such a node) does not
// list what came before; receivers must keep those keys and send them back,
// and remove by absence only keys newer than the owner's horizon.
func TestVerifyOwnerWithLaterHorizonNeverRemovesOlderKeys(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	owners := map[*hashring.Ring]string{c.ring("a", "b"): "a"}
	const horizon = 1000
	setOrigin(c.engines["a"], Origin{Horizon: horizon, Lineage: testLineage})
	before := keyOwnedBy(t, "before", owners)
	at := keyOwnedBy(t, "at", owners)
	after := keyOwnedBy(t, "after", owners)
	c.stores["b"].Apply(Datum{Key: before, Value: []byte("v"), Version: horizon - 1})
	c.stores["b"].Apply(Datum{Key: at, Value: []byte("v"), Version: horizon})
	c.stores["b"].Apply(Datum{Key: after, Value: []byte("v"), Version: horizon + 1})

	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.engines["b"].SyncNow()
	for _, k := range []string{before, at} {
		if c.value("b", k) != "v" {
			t.Fatalf("%s (version <= the owner's horizon) removed by absence from an owner that could not know it", k)
		}
		if c.value("a", k) != "v" {
			t.Fatalf("%s not sent back to the owner that lacks it", k)
		}
	}
	if c.value("b", after) != "" {
		t.Fatal("a key newer than the owner's horizon that the owner does not list survived")
	}
}

// Regression (issue 8): a node that started a cluster of its own (an operator's
// --bootstrap, or a subset of restarted nodes that saw only each other) never
// received what the real cluster wrote meanwhile, whatever its horizon. Bridged,
// its verify must remove nothing and get back what it lacks; both sides then
// share one lineage and are complete only from their meeting.
func TestVerifyAcrossLineagesRemovesNothingAndMerges(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	owners := map[*hashring.Ring]string{c.ring("a", "b"): "a"}
	a, b := c.engines["a"], c.engines["b"]
	setOrigin(b, Origin{Lineage: Lineage{2}}) // b's history began elsewhere
	written := wallVersion(time.Now())        // after both horizons (0): only the lineage protects it
	k := keyOwnedBy(t, "k", owners)
	c.stores["b"].Apply(Datum{Key: k, Value: []byte("v"), Version: written})

	if err := a.VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.SyncNow()
	if c.value("b", k) != "v" {
		t.Fatal("b removed a key by the absence at an owner of another lineage")
	}
	if c.value("a", k) != "v" {
		t.Fatal("the key the owner of another lineage lacks was not sent back to it")
	}
	want := Lineage{1, 2}
	for name, e := range map[string]*Engine{"a": a, "b": b} {
		o := e.Origin()
		if !o.Lineage.Equal(want) || o.Horizon < written {
			t.Fatalf("%s after meeting: origin %+v, want lineage %v and a horizon moved to the meeting (>= %d)", name, o, want, written)
		}
		if st := e.Status(); st.Lineage != "1+2" {
			t.Fatalf("%s status lineage %q", name, st.Lineage)
		}
	}

	// Same lineage now: removal by absence works again, above the moved horizon.
	k2 := keyOwnedBy(t, "k2", owners)
	c.stores["b"].Apply(Datum{Key: k2, Value: []byte("v"), Version: a.Origin().Horizon + 1})
	if err := a.VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.value("b", k2) != "" {
		t.Fatal("after the lineages merged, a key newer than the owner's horizon that it does not list survived")
	}
	if c.value("b", k) != "v" {
		t.Fatal("a key from before the meeting was removed")
	}
}

func TestLineageUnion(t *testing.T) {
	if got := (Lineage{5, 9}).union(Lineage{1, 9}); !got.Equal(Lineage{1, 5, 9}) {
		t.Fatalf("union = %v", got)
	}
	big := make(Lineage, maxLineage)
	for i := range big {
		big[i] = uint64(2*i + 2)
	}
	if got := big.union(Lineage{1}); len(got) != maxLineage || got[0] != 1 {
		t.Fatalf("a union beyond maxLineage keeps the %d smallest ids, got %d starting %d", maxLineage, len(got), got[0])
	}
	if l := newLineage(); len(l) != 1 || l[0] == 0 {
		t.Fatalf("newLineage = %v", l)
	}
}

// The receiver's side of the lineage rule, driven by hand: a key list from an
// owner of another lineage removes nothing, even when the owner claims a
// horizon of zero (a sender that has not met this lineage yet).
func TestReceiverRemovesNothingForAnotherLineage(t *testing.T) {
	c := newCluster(t, 64, []string{"a", "b"}, nil)
	ring := c.ring("a", "b")
	k := keyOwnedBy(t, "k", map[*hashring.Ring]string{ring: "a"})
	c.stores["b"].Apply(Datum{Key: k, Value: []byte("v"), Version: 7})
	req := ChecksumRequest{Source: "a", RingVersion: ring.Version(), Lineage: Lineage{99},
		Partitions: []int{ring.Partition(k)}, Keys: map[string]uint64{}}
	resp, err := c.engines["b"].HandleChecksum(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if c.value("b", k) != "v" {
		t.Fatal("b removed a key on the word of an owner of another lineage")
	}
	if !resp.Lineage.Equal(Lineage{1, 99}) {
		t.Fatalf("answer lineage %v, want the union so the owner learns of b's history", resp.Lineage)
	}
}
