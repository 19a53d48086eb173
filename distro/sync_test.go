package distro

import (
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/internal/testutil"
)

func TestDirtySetMergeRules(t *testing.T) {
	var s dirtySet
	t0 := time.Unix(100, 0)
	if !s.mark("k", t0) {
		t.Fatal("first mark did not report an empty set")
	}
	if s.mark("k", t0.Add(time.Second)) {
		t.Fatal("second mark reported an empty set")
	}
	if len(s.keys) != 1 {
		t.Fatalf("a re-marked key is pending %d times, want once", len(s.keys))
	}
	if !s.due.Equal(t0) {
		t.Fatalf("a later mark pushed the deadline back to %v", s.due)
	}
	s.mark("j", t0.Add(-time.Second))
	if !s.due.Equal(t0.Add(-time.Second)) {
		t.Fatalf("an earlier mark did not bring the deadline forward: %v", s.due)
	}

	got := s.take(1)
	if len(got) != 1 || len(s.keys) != 1 {
		t.Fatalf("take(1) returned %v and left %d keys, want 1 and 1", got, len(s.keys))
	}
	if s.due.IsZero() {
		t.Fatal("keys left after a partial take lost their deadline")
	}
	s.take(10)
	if len(s.keys) != 0 || !s.due.IsZero() {
		t.Fatalf("a full take left %d keys and deadline %v", len(s.keys), s.due)
	}
}

func TestLaterChangeReplacesEarlierAndCurrentValueIsSent(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	c.write("a", "k", "v1")
	c.write("a", "k", "v2")
	if n := c.engines["a"].Status().PendingPushes["b"]; n != 1 {
		t.Fatalf("pending pushes to b = %d, want 1 merged mark", n)
	}
	c.engines["a"].SyncNow()

	batches := c.net.pushed("b")
	if len(batches) != 1 || len(batches[0]) != 1 {
		t.Fatalf("b got %d batches (%v), want one batch with one datum", len(batches), batches)
	}
	if got := string(batches[0][0].Value); got != "v2" {
		t.Fatalf("pushed value %q, want the current value v2", got)
	}
	if got := c.value("b", "k"); got != "v2" {
		t.Fatalf("b has %q, want v2", got)
	}
	if n := c.engines["a"].Status().PendingPushes["b"]; n != 0 {
		t.Fatalf("%d pushes still pending after SyncNow", n)
	}
}

func TestDeadlineNotPushedBackByLaterMarks(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	e := c.engines["a"]
	c.write("a", "k", "v1")
	e.mu.RLock()
	w := e.workers["b"]
	e.mu.RUnlock()
	w.mu.Lock()
	first := w.dirty.due
	w.mu.Unlock()
	c.write("a", "k", "v2")
	c.write("a", "j", "v1")
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.dirty.due.Equal(first) {
		t.Fatalf("deadline moved from %v to %v", first, w.dirty.due)
	}
}

func TestDeletionPropagatesAndLateOlderPushDoesNotResurrect(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	old := c.write("a", "k", "v1")
	c.engines["a"].SyncNow()
	if c.value("b", "k") != "v1" {
		t.Fatal("b did not get the write")
	}
	c.remove("a", "k")
	c.engines["a"].SyncNow()
	if d, ok := c.stores["b"].Get("k"); !ok || !d.Deleted {
		t.Fatalf("b has %+v after the delete, want a tombstone", d)
	}
	// A push of the old value arriving late (a retried batch, say).
	if err := c.engines["b"].HandlePush([]Datum{old}); err != nil {
		t.Fatal(err)
	}
	if c.value("b", "k") != "" {
		t.Fatal("a late push of an older version resurrected a deleted key")
	}
}

func TestFailedPushIsRetriedUntilDelivered(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	c.net.setFault("push", "b", fault{fail: true})
	c.write("a", "k", "v1")
	c.engines["a"].SyncNow()
	if c.value("b", "k") != "" {
		t.Fatal("a failing push delivered")
	}
	if n := c.engines["a"].Status().PendingPushes["b"]; n != 1 {
		t.Fatalf("after a failure %d keys pending, want the key marked again", n)
	}
	c.write("a", "k", "v2") // merges with the re-marked key
	c.net.setFault("push", "b", fault{})
	// No SyncNow: the worker's own backoff retries (SyncDelay is an hour in tests).
	testutil.Eventually(t, 5*time.Second, "b never got the retried push", func() error { return c.valueIs("b", "k", "v2") })
	if n := c.net.count("push", "b"); n < 2 {
		t.Fatalf("%d push attempts, want a failure and a retry", n)
	}
}

func TestSlowPeerDoesNotDelayOthers(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b", "c"}, func(_ string, cfg *Config) { cfg.SyncDelay = 0 })
	release := make(chan struct{})
	c.net.setFault("push", "b", fault{block: release})
	// a owns k, so c (not the owner) does not push it on to b.
	k := keyOwnedBy(t, "k", map[*hashring.Ring]string{c.ring("a", "b", "c"): "a"})

	c.write("a", k, "v1")
	testutil.Eventually(t, 5*time.Second, "c did not get the push while b was blocked", func() error { return c.valueIs("c", k, "v1") })
	testutil.Eventually(t, 5*time.Second, "no push to b in flight", func() error { return c.net.callsExactly("push", "b", 1) })
	for i := 0; i < 1000; i++ { // Changed never waits for the blocked peer
		c.engines["a"].Changed(k)
	}
	c.write("a", k, "v2")
	testutil.Eventually(t, 5*time.Second, "c did not get the second push", func() error { return c.valueIs("c", k, "v2") })
	if c.value("b", k) != "" {
		t.Fatal("b got a datum while its push was blocked")
	}

	close(release)
	testutil.Eventually(t, 5*time.Second, "b did not catch up with the current value", func() error { return c.valueIs("b", k, "v2") })
}

func TestDepartedPeerMarksAreDropped(t *testing.T) {
	names := []string{"a", "b", "c"}
	c := newCluster(t, 16, names, nil)
	a := c.engines["a"]
	c.write("a", "k", "v1")
	if st := a.Status(); st.PendingPushes["b"] != 1 || st.PendingPushes["c"] != 1 {
		t.Fatalf("pending %v, want one key for b and c", st.PendingPushes)
	}
	a.SetTopology(c.topo("a", []string{"a", "c"}, []string{"a", "c"}))
	st := a.Status()
	if _, ok := st.PendingPushes["b"]; ok {
		t.Fatalf("departed peer b still has pending pushes: %v", st.PendingPushes)
	}
	if a.dirtyKeys() != 1 {
		t.Fatalf("dirty keys = %d, want only c's", a.dirtyKeys())
	}
	a.SyncNow()
	if c.value("c", "k") != "v1" || c.net.count("push", "b") != 0 {
		t.Fatalf("c has %q, %d pushes to b; want c updated and b left alone", c.value("c", "k"), c.net.count("push", "b"))
	}

	a.SetTopology(c.topo("a", names, names)) // b comes back with a fresh worker
	if n := a.Status().PendingPushes["b"]; n != 0 {
		t.Fatalf("b came back with %d stale marks", n)
	}
}

func TestPeerAddressChange(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	a := c.engines["a"]
	moved := c.topo("a", []string{"a", "b"}, []string{"a", "b"})
	moved.Peers[0].Addr = "b-old" // the fake network has nothing there
	a.SetTopology(moved)
	c.write("a", "k", "v1")
	a.SyncNow()
	// At least once: the worker may already have retried (after 1 ms) when the check runs.
	if c.net.count("push", "b-old") < 1 || c.value("b", "k") != "" {
		t.Fatal("the push did not go to the old address")
	}
	a.SetTopology(c.topo("a", []string{"a", "b"}, []string{"a", "b"}))
	testutil.Eventually(t, 5*time.Second, "the retry did not use the new address", func() error { return c.valueIs("b", "k", "v1") })
}

func TestOwnerPushesOnWhatPeersPushedToIt(t *testing.T) {
	names := []string{"a", "b", "c"}
	c := newCluster(t, 16, names, nil)
	r := c.ring(names...)
	mine := keyOwnedBy(t, "b-owns", map[*hashring.Ring]string{r: "b"})
	theirs := keyOwnedBy(t, "a-owns", map[*hashring.Ring]string{r: "a"})
	b := c.engines["b"]
	if err := b.HandlePush([]Datum{{Key: mine, Value: []byte("x"), Version: 10}, {Key: theirs, Value: []byte("y"), Version: 10}}); err != nil {
		t.Fatal(err)
	}
	if st := b.Status(); st.PendingPushes["a"] != 1 || st.PendingPushes["c"] != 1 {
		t.Fatalf("pending %v, want only the owned key re-marked for a and c", st.PendingPushes)
	}
	b.SyncNow()
	if c.value("c", mine) != "x" || c.value("c", theirs) != "" {
		t.Fatalf("c has %q/%q, want only the owned key forwarded", c.value("c", mine), c.value("c", theirs))
	}
	// The same push again changes nothing, so nothing is re-marked: no ping-pong.
	if err := b.HandlePush([]Datum{{Key: mine, Value: []byte("x"), Version: 10}}); err != nil {
		t.Fatal(err)
	}
	if n := b.dirtyKeys(); n != 0 {
		t.Fatalf("an unchanged datum was re-marked (%d dirty)", n)
	}
}

func TestHandlePushRejectsEmptyKeyWholeBatch(t *testing.T) {
	c := newCluster(t, 16, []string{"a"}, nil)
	err := c.engines["a"].HandlePush([]Datum{{Key: "ok", Version: 1}, {Version: 2}})
	if err == nil {
		t.Fatal("a batch with an empty key was accepted")
	}
	if _, ok := c.stores["a"].Get("ok"); ok {
		t.Fatal("a rejected batch changed the store")
	}
}
