package naming

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// runFor advances clk by d while the process runs: the stall ticker ticks
// every stallTickEvery, so no stall is seen.
func runFor(r *Registry, clk *fakeClock, d time.Duration) time.Time {
	end := clk.Now().Add(d)
	for clk.Now().Before(end) {
		r.stallTick(clk.Advance(min(stallTickEvery, end.Sub(clk.Now()))))
	}
	return clk.Now()
}

// armStallGuard records a first tick, as Start does.
func armStallGuard(r *Registry, clk *fakeClock) { r.stallTick(clk.Now()) }

func wantStalled(t *testing.T, r *Registry, method, uri, body string, opts ...reqOpt) {
	t.Helper()
	ctx := call(t, r, method, uri, body, opts...)
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "stalled") {
		t.Fatalf("%s %s on a stalled node: %d %s, want 503 stalled", method, uri, ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

// Regression (fault suite, pause scenario): a node SIGSTOPped past the delete
// timeout woke up, expired instances from its stale beat records and served
// the beats queued in its sockets on its stale view, re-registering instances
// deregistered elsewhere meanwhile.
func TestPausedNodeNeitherExpiresNorWritesOnItsStaleView(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.Metrics = reg })
	clk := withClock(r)
	armStallGuard(r, clk)
	const a, b = "10.0.0.1:80:DEFAULT", "10.0.0.2:80:DEFAULT"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	runFor(r, clk, 3*time.Second)
	r.expireOnce(clk.Now())

	// SIGSTOP for 40 s: no tick. On SIGCONT the queued requests and the expiry
	// round run before the ticker does.
	now := clk.Advance(40 * time.Second)
	r.expireOnce(now)
	if live, healthy := healthOf(t, r, a); !live || !healthy {
		t.Fatalf("expiry ran on the stale beats of a stalled node: live=%v healthy=%v", live, healthy)
	}
	beat := `serviceName=svc&beat={"ip":"10.0.0.3","port":80,"cluster":"DEFAULT"}`
	wantStalled(t, r, "PUT", ns+"/instance/beat", beat)
	wantStalled(t, r, "PUT", ns+"/instance/beat", beat, header(HeaderForwarded, "1"))
	wantStalled(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.4&port=80", "")
	wantStalled(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	wantStalled(t, r, "POST", ns+"/service?serviceName=other", "")
	if r.service(svcKey).live("10.0.0.3:80:DEFAULT") != nil {
		t.Fatalf("a queued beat registered an instance on the stale view")
	}

	// The ticker runs: the hold starts; it still refuses and skips expiry.
	r.stallTick(now)
	runFor(r, clk, r.cfg.StallHold-time.Second)
	wantStalled(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	r.expireOnce(clk.Now())

	// The hold ends; every instance's clock restarted there.
	runFor(r, clk, time.Second)
	mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	r.expireOnce(clk.Now())
	for _, ik := range []string{a, b} {
		if live, healthy := healthOf(t, r, ik); !live || !healthy {
			t.Fatalf("%s after the hold: live=%v healthy=%v, want the stall forgiven", ik, live, healthy)
		}
	}
	if got := gathered(t, reg)["distrod_naming_stalls_total"]; got != 1 {
		t.Fatalf("stalls_total = %v, want 1", got)
	}

	// The grace is given once: b's client is really gone and is removed
	// DeleteTimeout after the hold; a keeps beating and stays.
	for i := 0; i < 8; i++ {
		runFor(r, clk, 4*time.Second)
		mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
		r.expireOnce(clk.Now())
	}
	if live, _ := healthOf(t, r, b); live {
		t.Fatalf("a dead client's instance outlived the stall grace by more than the delete timeout")
	}
	if live, healthy := healthOf(t, r, a); !live || !healthy {
		t.Fatalf("the beating instance: live=%v healthy=%v", live, healthy)
	}
}

// readURIs are the reads of the Nacos v1 API a stalled node refuses.
var readURIs = []string{
	ns + "/instance/list?serviceName=svc",
	ns + "/instance?serviceName=svc&ip=10.0.0.1&port=80",
	ns + "/service?serviceName=svc",
	ns + "/service/list?pageNo=1&pageSize=10",
	ns + "/catalog/services",
}

// Regression (issue 9, item 4): after SIGSTOP/SIGCONT a node answered reads
// 200 on its stale view during its own stall hold, listing instances that
// were deregistered elsewhere meanwhile for 4-6 s.
func TestStalledNodeRefusesReadsUntilTheHoldEnds(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	armStallGuard(r, clk)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	wantReads := func(status int, when string) {
		t.Helper()
		for _, uri := range readURIs {
			ctx := call(t, r, "GET", uri, "")
			if got := ctx.Response.StatusCode(); got != status {
				t.Fatalf("%s: GET %s = %d %s, want %d", when, uri, got, ctx.Response.Body(), status)
			}
			if status == 503 && !strings.Contains(string(ctx.Response.Body()), "stale") {
				t.Fatalf("%s: GET %s answered %q, want a message saying the view is stale", when, uri, ctx.Response.Body())
			}
		}
		if stale := status == 503; r.Stalled() != stale {
			t.Fatalf("%s: Stalled() = %v, want %v", when, r.Stalled(), stale)
		}
	}
	runFor(r, clk, time.Second)
	wantReads(200, "running")

	// SIGCONT after 10 s: requests queued meanwhile run before the ticker does.
	now := clk.Advance(10 * time.Second)
	wantReads(503, "woken, before the ticker ran")
	r.stallTick(now)
	runFor(r, clk, r.cfg.StallHold-stallTickEvery)
	wantReads(503, "inside the hold")
	runFor(r, clk, stallTickEvery)
	wantReads(200, "after the hold")
}

func TestStallGuardWaitsForStartAndIgnoresShortGaps(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	clk.Advance(time.Hour) // never ticked: not armed
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")

	armStallGuard(r, clk)
	r.stallTick(clk.Advance(r.cfg.StallThreshold)) // a slow tick, not a stall
	mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	if r.stalledUntil.Load() != nil {
		t.Fatalf("a gap of exactly the threshold started a hold")
	}
	clk.Advance(r.cfg.StallThreshold + time.Millisecond)
	wantStalled(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
}

// A grace (a stall's, or ownership gained) is no heard beat: it must not
// re-assert an instance that a peer, which did hear (or miss) its beats,
// expired. Otherwise a node back from a stall would resurrect every dead
// client that the others expired meanwhile.
func TestGraceDoesNotReassertOverRemoteExpiry(t *testing.T) {
	a := newTestRegistry(t, newFakeCluster(), nil)
	clkA := withClock(a)
	b := newTestRegistry(t, newFakeCluster(), nil)
	clkB := withClock(b)
	const ik = "10.0.0.1:80:DEFAULT"
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	d, _ := a.Get(svcKey)
	b.Apply(d)

	// a stalls for a minute (its one heard beat is old), gets the stall grace.
	armStallGuard(a, clkA)
	a.stallTick(clkA.Advance(time.Minute))
	runFor(a, clkA, a.cfg.StallHold+time.Second)

	b.expireOnce(clkB.Now())
	b.expireOnce(clkB.Advance(31 * time.Second))
	if live, _ := healthOf(t, b, ik); live {
		t.Fatalf("b did not expire the dead client's instance")
	}
	db, _ := b.Get(svcKey)
	a.Apply(db)
	if n := a.reassertQueued(); n != 0 {
		t.Fatalf("a queued %d instances it holds only by grace for re-assertion", n)
	}
	if live, _ := healthOf(t, a, ik); live {
		t.Fatalf("a re-asserted an instance it holds only by grace")
	}
}
