package naming

import (
	"testing"
	"time"
)

// A partition looks like a crash from either side: after a member failed,
// overdue instances turn unhealthy but are not removed for FailureHold; after
// it, a client that really died is removed.
func TestFailureHoldKeepsOverdueInstancesUnhealthyNotRemoved(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, func(cfg *Config) { cfg.FailureHold = time.Minute })
	clk := withClock(r)
	const ik = "10.0.0.1:80:DEFAULT"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	now := clk.Now()
	c.set(func(c *fakeCluster) { c.settled = now.Add(-time.Hour) })
	r.HoldRemovals()

	r.expireOnce(clk.Advance(31 * time.Second))
	if live, healthy := healthOf(t, r, ik); !live || healthy {
		t.Fatalf("held instance: live=%v healthy=%v, want live and unhealthy", live, healthy)
	}
	r.expireOnce(clk.Advance(30 * time.Second)) // the hold ended at +60 s
	if live, _ := healthOf(t, r, ik); live {
		t.Fatal("a dead client's instance outlived the failure hold")
	}
}
