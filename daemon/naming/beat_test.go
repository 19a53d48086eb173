package naming

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

func withClock(r *Registry) *fakeClock {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r.now = c.Now
	return c
}

const svcKey = "public##DEFAULT_GROUP@@svc"

func healthOf(t *testing.T, r *Registry, ik string) (live, healthy bool) {
	t.Helper()
	in := r.service(svcKey).live(ik)
	if in == nil {
		return false, false
	}
	return true, in.Healthy
}

func TestBeatResponses(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")

	// nacos-sdk-go v1: beat JSON unescaped in a form body.
	body := `namespaceId=&serviceName=DEFAULT_GROUP@@svc&beat={"ip":"10.0.0.1","port":80,"weight":1,"serviceName":"DEFAULT_GROUP@@svc","cluster":"","metadata":{},"scheduled":false}`
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", body)); got != `{"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}` {
		t.Fatalf("known instance: %s", got)
	}
	// Java 1.4 light beat: no beat JSON, ip/port params.
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=DEFAULT_GROUP@@svc&ip=10.0.0.1&port=80&clusterName=DEFAULT", "")); got != `{"clientBeatInterval":5000,"code":10200,"lightBeatEnabled":true}` {
		t.Fatalf("light beat: %s", got)
	}
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.9&port=80", "")); got != `{"clientBeatInterval":5000,"code":20404}` {
		t.Fatalf("unknown instance without beat info: %s", got)
	}
	if live, _ := healthOf(t, r, "10.0.0.9:80:DEFAULT"); live {
		t.Fatalf("a light beat registered an instance")
	}

	// Unknown instance with beat info: registered again (Nacos's data compensation).
	body = `serviceName=DEFAULT_GROUP@@svc&beat={"ip":"10.0.0.2","port":81,"weight":3,"cluster":"c1","metadata":{"preserved.heart.beat.interval":"2000"}}`
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", body)); got != `{"clientBeatInterval":2000,"code":10200,"lightBeatEnabled":true}` {
		t.Fatalf("re-register: %s", got)
	}
	in := r.service(svcKey).live("10.0.0.2:81:c1")
	if in == nil || in.Weight != 3 || !in.Healthy || !in.Ephemeral {
		t.Fatalf("re-registered instance: %+v", in)
	}
}

func TestExpiryMarksUnhealthyThenRemoves(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	clk := withClock(r)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80&ephemeral=false", "")
	const ik = "10.0.0.1:80:DEFAULT"

	r.expireOnce(clk.Advance(14 * time.Second))
	if _, healthy := healthOf(t, r, ik); !healthy {
		t.Fatalf("unhealthy before the timeout")
	}
	writes := len(c.changedKeys())
	r.expireOnce(clk.Advance(2 * time.Second)) // 16 s
	if live, healthy := healthOf(t, r, ik); !live || healthy {
		t.Fatalf("after 16 s: live=%v healthy=%v, want live and unhealthy", live, healthy)
	}
	if len(c.changedKeys()) != writes+1 {
		t.Fatalf("health change was not a replicated write")
	}

	// A beat heals it (a write again).
	mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	if _, healthy := healthOf(t, r, ik); !healthy {
		t.Fatalf("beat did not restore health")
	}
	r.expireOnce(clk.Advance(31 * time.Second))
	if live, _ := healthOf(t, r, ik); live {
		t.Fatalf("instance survived 31 s without beats")
	}
	if live, _ := healthOf(t, r, "10.0.0.2:80:DEFAULT"); !live {
		t.Fatalf("a persistent instance was expired")
	}
	if d, _ := r.Get(svcKey); d.Deleted {
		t.Fatalf("the service went with its last ephemeral instance")
	}
}

func TestExpiryOnlyOnOwnerAndNeverWithoutLocalHistory(t *testing.T) {
	a := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	d, _ := a.Get(svcKey)

	cb := newFakeCluster()
	cb.owner = &Owner{Name: "a", HTTPAddr: "127.0.0.1:1"}
	b := newTestRegistry(t, cb, nil)
	clk := withClock(b)
	b.Apply(d) // arrived by replication: b has no beat history
	const ik = "10.0.0.1:80:DEFAULT"

	b.expireOnce(clk.Advance(time.Hour))
	if live, healthy := healthOf(t, b, ik); !live || !healthy {
		t.Fatalf("a non-owner expired an instance")
	}
	cb.set(func(c *fakeCluster) { c.owner = nil }) // b owns it now
	b.expireOnce(clk.Advance(time.Hour))
	if live, healthy := healthOf(t, b, ik); !live || !healthy {
		t.Fatalf("the owner expired an instance it had never seen beat")
	}
	b.expireOnce(clk.Advance(16 * time.Second))
	if _, healthy := healthOf(t, b, ik); healthy {
		t.Fatalf("no beats for 16 s since first seen, still healthy")
	}
	b.expireOnce(clk.Advance(15 * time.Second))
	if live, _ := healthOf(t, b, ik); live {
		t.Fatalf("no beats for 31 s since first seen, still there")
	}
}

func TestOwnershipGainedGivesGrace(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	clk := withClock(r)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=other&ip=10.0.0.1&port=80", "")

	// Ownership moves away for a long time (the client beats elsewhere), then comes back.
	c.set(func(c *fakeCluster) { c.owner = &Owner{Name: "x", HTTPAddr: "127.0.0.1:1"} })
	clk.Advance(10 * time.Minute)
	c.set(func(c *fakeCluster) { c.owner = nil })
	partitionOf := func(key string) int {
		if key == svcKey {
			return 7
		}
		return 8
	}
	r.OwnershipGained(partitionOf, map[int]bool{7: true})
	r.expireOnce(clk.Advance(time.Second))
	if live, healthy := healthOf(t, r, "10.0.0.1:80:DEFAULT"); !live || !healthy {
		t.Fatalf("grace did not protect the newly owned instance")
	}
	if r.service("public##DEFAULT_GROUP@@other").live("10.0.0.1:80:DEFAULT") != nil {
		t.Fatalf("the instance of a partition not gained kept its stale beat and should be gone")
	}
}

// The far side of a partition expires an instance whose client beats on this
// side; when the sides meet again the expiry must not remove it. A
// deregistration, by contrast, is never undone.
func TestRemoteExpiryOfBeatingInstanceIsReasserted(t *testing.T) {
	a := newTestRegistry(t, newFakeCluster(), nil)
	withClock(a)
	a.Start() // the reassert loop writes the re-assertion
	b := newTestRegistry(t, newFakeCluster(), nil)
	clkB := withClock(b)
	const ik = "10.0.0.1:80:DEFAULT"
	const gone = "10.0.0.2:80:DEFAULT"
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	d, _ := a.Get(svcKey)
	b.Apply(d)

	// b, cut off from the beats, expires ik and deregisters gone; a keeps hearing ik beat.
	mustOK(t, b, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	b.expireOnce(clkB.Now())
	b.expireOnce(clkB.Advance(31 * time.Second))
	if live, _ := healthOf(t, b, ik); live {
		t.Fatalf("b did not expire the instance")
	}
	mustOK(t, a, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, a, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.2&port=80", "")

	db, _ := b.Get(svcKey)
	a.Apply(db)
	testutil.Eventually(t, 5*time.Second, "a re-asserts the beating instance", func() error {
		if live, healthy := healthOf(t, a, ik); !live || !healthy {
			return fmt.Errorf("a beating instance was removed by a remote expiry: live=%v healthy=%v", live, healthy)
		}
		return nil
	})
	if live, _ := healthOf(t, a, gone); live {
		t.Fatalf("a deregistered instance came back")
	}
	da, _ := a.Get(svcKey)
	b.Apply(da)
	if live, _ := healthOf(t, b, ik); !live {
		t.Fatalf("the re-asserted instance did not win on b")
	}
	if da2, _ := b.Get(svcKey); da2.Checksum() != da.Checksum() {
		t.Fatalf("a and b did not converge")
	}
}

// Regression (fault suite, pause scenario): beats queued while an instance was
// deregistered re-registered it ("beat from unknown instance"), and the new
// version spread to every peer. A deregistration tombstone now answers 20404;
// an expiry tombstone still lets a beating client come back.
func TestBeatDoesNotResurrectDeregisteredInstance(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	const gone, expired = "10.0.0.1:80:DEFAULT", "10.0.0.2:80:DEFAULT"
	beatOf := func(ip string) string {
		return `serviceName=svc&beat={"ip":"` + ip + `","port":80,"cluster":"DEFAULT"}`
	}
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	for _, b := range []string{beatOf("10.0.0.1"), "serviceName=svc&ip=10.0.0.1&port=80"} {
		if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", b)); got != `{"clientBeatInterval":5000,"code":20404}` {
			t.Fatalf("beat %q after deregistration: %s, want code 20404", b, got)
		}
	}
	if live, _ := healthOf(t, r, gone); live {
		t.Fatalf("a beat brought a deregistered instance back")
	}
	// A client that is really alive registers again explicitly.
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if live, _ := healthOf(t, r, gone); !live {
		t.Fatalf("explicit registration after a deregistration failed")
	}

	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	mustOK(t, r, "PUT", ns+"/instance/beat", beatOf("10.0.0.1")) // keep gone alive
	r.expireOnce(clk.Advance(31 * time.Second))
	if in := r.service(svcKey).Instances[expired]; in == nil || !in.Deleted || !in.Expired {
		t.Fatalf("want an expiry tombstone, got %+v", in)
	}
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", beatOf("10.0.0.2"))); !strings.Contains(got, `"code":10200`) {
		t.Fatalf("beat after expiry: %s, want re-registration", got)
	}
	if live, healthy := healthOf(t, r, expired); !live || !healthy {
		t.Fatalf("an expired instance whose client beats again was not registered again")
	}
}

// Regression (fault suite, membership churn): node A thought it owned a
// service while the clients' beats were forwarded to B, and removed live
// instances. Until the ring views have agreed for SettleHold, expiry only
// marks overdue instances unhealthy; afterwards it removes them as usual.
func TestNoRemovalUntilViewsSettle(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	clk := withClock(r)
	const ik = "10.0.0.1:80:DEFAULT"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	hold := r.cfg.DeleteTimeout / 2

	// Views keep disagreeing (a peer's verify carries another ring version):
	// overdue for minutes, the instance is only marked unhealthy.
	for i := 0; i < 10; i++ {
		now := clk.Advance(20 * time.Second)
		c.set(func(c *fakeCluster) { c.settled = now.Add(-time.Second) })
		r.expireOnce(now)
		if live, healthy := healthOf(t, r, ik); !live || healthy {
			t.Fatalf("round %d while views differ: live=%v healthy=%v, want live and unhealthy", i, live, healthy)
		}
	}
	// A beat heals it even then.
	mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	if _, healthy := healthOf(t, r, ik); !healthy {
		t.Fatalf("a beat did not heal the instance")
	}

	// The client dies; views still differ for 25 s, then settle. Overdue
	// since 30 s after its last beat, it is not removed before the hold ...
	now := clk.Advance(25 * time.Second)
	c.set(func(c *fakeCluster) { c.settled = now })
	r.expireOnce(clk.Advance(hold - time.Second)) // 39 s idle, settled for 14 s
	if live, healthy := healthOf(t, r, ik); !live || healthy {
		t.Fatalf("%v after the views settled, before the hold of %v: live=%v healthy=%v, want live and unhealthy",
			clk.Now().Sub(now), hold, live, healthy)
	}
	// ... and is removed as soon as it is over.
	r.expireOnce(clk.Advance(2 * time.Second))
	if live, _ := healthOf(t, r, ik); live {
		t.Fatalf("a dead client's instance outlived the settle hold")
	}
}

// Ownership grace restarts the clock once: a client that never beats again is
// removed DeleteTimeout after the grace, and a grace given while views differ
// does not stretch it beyond the settle hold.
func TestOwnershipGraceDoesNotKeepDeadInstancesForever(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	clk := withClock(r)
	const ik = "10.0.0.1:80:DEFAULT"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	partitionOf := func(string) int { return 7 }

	now := clk.Advance(time.Hour)
	c.set(func(c *fakeCluster) { c.settled = now })
	r.OwnershipGained(partitionOf, map[int]bool{7: true})
	r.expireOnce(clk.Advance(29 * time.Second))
	if live, _ := healthOf(t, r, ik); !live {
		t.Fatalf("removed within the delete timeout after the grace")
	}
	r.expireOnce(clk.Advance(2 * time.Second))
	if live, _ := healthOf(t, r, ik); live {
		t.Fatalf("a dead client's instance outlived the ownership grace")
	}
}

// A round skips a service whose deadlines are all ahead, and a beat-less
// instance that arrives later (a new entry) is still checked.
func TestExpirySkipsServicesWithNothingDue(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	r.expireOnce(clk.Now())
	r.mu.RLock()
	e := r.entries[svcKey]
	r.mu.RUnlock()
	if due := e.expiryDue.Load(); due != clk.Now().Add(r.cfg.BeatTimeout).UnixNano() {
		t.Fatalf("expiryDue = %d, want the unhealthy deadline", due)
	}
	clk.Advance(r.cfg.BeatTimeout)
	r.expireOnce(clk.Now()) // exactly at the deadline: not yet idle for more than the timeout
	if _, healthy := healthOf(t, r, "10.0.0.1:80:DEFAULT"); !healthy {
		t.Fatal("marked unhealthy at the deadline")
	}
	clk.Advance(time.Millisecond)
	r.expireOnce(clk.Now())
	if _, healthy := healthOf(t, r, "10.0.0.1:80:DEFAULT"); healthy {
		t.Fatal("not marked unhealthy after the deadline")
	}
	clk.Advance(r.cfg.DeleteTimeout)
	r.expireOnce(clk.Now())
	if live, _ := healthOf(t, r, "10.0.0.1:80:DEFAULT"); live {
		t.Fatal("not removed after the delete timeout")
	}
}
