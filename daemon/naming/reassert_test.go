package naming

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/internal/testutil"
)

// expiredElsewhere registers ik on a, replicates it to a peer b that expires
// it (b hears no beats), records a beat of ik on a and returns b's datum.
func expiredElsewhere(t *testing.T, a *Registry, ik string) distro.Datum {
	t.Helper()
	b := newTestRegistry(t, newFakeCluster(), nil)
	clkB := withClock(b)
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	d, _ := a.Get(svcKey)
	b.Apply(d)
	b.expireOnce(clkB.Now())
	b.expireOnce(clkB.Advance(31 * time.Second))
	if live, _ := healthOf(t, b, ik); live {
		t.Fatalf("b did not expire the instance")
	}
	mustOK(t, a, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	db, _ := b.Get(svcKey)
	return db
}

// Apply runs inside distro's callback: it must not write (a write tells
// distro, from inside distro's call). It queues the re-assertion, and the
// registry's reassert loop writes it.
func TestReassertRunsOnRegistryGoroutine(t *testing.T) {
	c := newFakeCluster()
	a := newTestRegistry(t, c, nil)
	withClock(a)
	const ik = "10.0.0.1:80:DEFAULT"
	db := expiredElsewhere(t, a, ik)
	writes := len(c.changedKeys())

	// Not started: no loop runs, so whatever Apply did, it did itself.
	if !a.Apply(db) {
		t.Fatalf("the remote expiry changed nothing")
	}
	if live, _ := healthOf(t, a, ik); live {
		t.Fatalf("Apply re-asserted the instance itself")
	}
	if got := len(c.changedKeys()); got != writes {
		t.Fatalf("Apply issued %d local writes", got-writes)
	}
	if n := a.reassertQueued(); n != 1 {
		t.Fatalf("%d instances queued for re-assertion, want 1", n)
	}

	a.Start()
	testutil.Eventually(t, 5*time.Second, "the reassert loop writes the instance again", func() error {
		if live, healthy := healthOf(t, a, ik); !live || !healthy {
			return fmt.Errorf("live=%v healthy=%v", live, healthy)
		}
		if got := c.changedKeys(); !slices.Contains(got[writes:], svcKey) {
			return fmt.Errorf("the re-assertion was not a replicated write: changed %v", got[writes:])
		}
		return nil
	})
	if n := a.reassertQueued(); n != 0 {
		t.Fatalf("%d instances still queued after the write", n)
	}
}

// A stall between Apply and the loop's turn drops the re-assertion: a write
// on a stale view (the client's next beat registers it again).
func TestReassertDroppedWhileStalled(t *testing.T) {
	c := newFakeCluster()
	a := newTestRegistry(t, c, nil)
	clk := withClock(a)
	const ik = "10.0.0.1:80:DEFAULT"
	db := expiredElsewhere(t, a, ik)
	a.Apply(db)
	if n := a.reassertQueued(); n != 1 {
		t.Fatalf("%d instances queued for re-assertion, want 1", n)
	}
	writes := len(c.changedKeys())
	armStallGuard(a, clk)
	a.stallTick(clk.Advance(time.Minute))
	a.reassertOnce() // the loop's turn, driven by hand
	if live, _ := healthOf(t, a, ik); live {
		t.Fatalf("re-asserted while stalled")
	}
	if got := len(c.changedKeys()); got != writes {
		t.Fatalf("%d writes while stalled", got-writes)
	}
	if n := a.reassertQueued(); n != 0 {
		t.Fatalf("%d instances still queued", n)
	}
}
