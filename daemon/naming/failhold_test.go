package naming

import (
	"testing"
	"time"
)

// A partition looks like a crash from either side: instances of partitions
// gained from a failed member turn unhealthy but are not removed for
// FailureHold; after it, a client that really died is removed.
func TestFailureHoldKeepsInstancesOfFailedOwnersUnhealthyNotRemoved(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, func(cfg *Config) { cfg.FailureHold = time.Minute })
	clk := withClock(r)
	const ik = "10.0.0.1:80:DEFAULT"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=other&ip=10.0.0.2&port=80", "")
	partitionOf := func(key string) int {
		if key == svcKey {
			return 7
		}
		return 8
	}
	now := clk.Advance(time.Hour)
	c.set(func(c *fakeCluster) { c.settled = now.Add(-time.Hour) })
	r.OwnershipGained(partitionOf, map[int]bool{7: true, 8: true})
	r.HoldRemovals(partitionOf, []int{7})

	r.expireOnce(clk.Advance(31 * time.Second))
	if live, healthy := healthOf(t, r, ik); !live || healthy {
		t.Fatalf("held instance: live=%v healthy=%v, want live and unhealthy", live, healthy)
	}
	if live, _ := healthOf(t, r, "10.0.0.2:80:DEFAULT"); live {
		t.Fatal("an instance outside the held partitions was not removed")
	}
	r.expireOnce(clk.Advance(30 * time.Second)) // the hold ended at +60 s
	if live, _ := healthOf(t, r, ik); live {
		t.Fatal("a dead client's instance outlived the failure hold")
	}
}
