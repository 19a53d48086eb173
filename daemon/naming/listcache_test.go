package naming

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The cached, spliced answer is byte for byte what encoding/json makes of
// the whole listResult, for every variant a client can ask for.
func TestListCacheRendersLikeEncodingJSON(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&clusterName=a&metadata="+url.QueryEscape(`{"<k>":"a&b","x":"\u2028"}`), "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80&clusterName=b&healthy=false&weight=0.5", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.3&port=80&clusterName=b&enabled=false", "")
	mustOK(t, r, "PUT", ns+"/service?serviceName=svc&metadata=o%3D%3Cme%3E", "")
	for _, svc := range []string{"svc", "nope"} {
		for _, clusters := range []string{"", "a", "a, b", `"<x>"`} {
			for _, healthyOnly := range []bool{false, true} {
				for _, env := range []string{"", `pro"d<`} {
					q := fmt.Sprintf("serviceName=%s&clusters=%s&healthyOnly=%v&env=%s", svc, url.QueryEscape(clusters), healthyOnly, url.QueryEscape(env))
					for range 2 { // uncached, then cached
						got := mustOK(t, r, "GET", ns+"/instance/list?"+q, "")
						ref := serviceRef{namespace: DefaultNamespace, group: DefaultGroup, name: svc}
						r.mu.RLock()
						e := r.entries[ref.key()]
						r.mu.RUnlock()
						res := r.listOf(ref, e, clusters, healthyOnly)
						res.CacheMillis, res.Env = defaultCacheMillis, env
						want, err := json.Marshal(res)
						if err != nil {
							t.Fatal(err)
						}
						if string(got) != string(want) {
							t.Fatalf("%s:\n got %s\nwant %s", q, got, want)
						}
					}
				}
			}
		}
	}
	if used := r.listCacheUsed.Load(); used <= 0 {
		t.Fatalf("nothing cached (%d bytes)", used)
	}
}

// Every change of the datum invalidates the cached lists, lastRefTime stays
// the state's while it does not change, and the bytes return to the budget.
func TestListCacheFollowsChanges(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	list := func() sdkService {
		return decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc", ""))
	}
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	first := list()
	clk.Advance(1500 * time.Millisecond)
	second := list()
	if hostIPs(second) != "10.0.0.1+" || second.LastRefTime != first.LastRefTime {
		t.Fatalf("cached answer: %+v after %+v", second, first)
	}
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	if got := list(); hostIPs(got) != "10.0.0.1+ 10.0.0.2+" || got.Checksum == second.Checksum {
		t.Fatalf("after a register: %+v", got)
	}
	if err := r.setHealth(datumKey(DefaultNamespace, DefaultGroup, "svc"), "10.0.0.2:80:DEFAULT", false); err != nil {
		t.Fatal(err)
	}
	if got := hostIPs(list()); got != "10.0.0.1+ 10.0.0.2-" {
		t.Fatalf("after a health change: %q", got)
	}
	// A change that arrives by replication.
	pc := newFakeCluster()
	pc.ver.Store(10_000)
	peer := newTestRegistry(t, pc, nil)
	mustOK(t, peer, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.9&port=80", "")
	d, _ := peer.Get(datumKey(DefaultNamespace, DefaultGroup, "svc"))
	if !r.Apply(d) {
		t.Fatal("apply changed nothing")
	}
	if got := hostIPs(list()); got != "10.0.0.1+ 10.0.0.9+ 10.0.0.2-" {
		t.Fatalf("after a pushed change: %q", got)
	}
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.9&port=80", "")
	mustOK(t, r, "DELETE", ns+"/service?serviceName=svc", "")
	if got := list(); len(got.Hosts) != 0 || got.Checksum != "" {
		t.Fatalf("after deletion: %+v", got)
	}
	r.Sweep(^uint64(0))
	if used := r.listCacheUsed.Load(); used != 0 {
		t.Fatalf("%d bytes still accounted after every entry left", used)
	}
}

// Clusters is client-controlled: variants per service and bytes in all are bounded.
func TestListCacheIsBounded(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.ListCacheBytes = 1 << 20 })
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	for i := range 50 {
		got := decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+fmt.Sprintf("/instance/list?serviceName=svc&clusters=c%d,DEFAULT", i), ""))
		if hostIPs(got) != "10.0.0.1+" || !strings.HasPrefix(got.Clusters, fmt.Sprintf("c%d,", i)) {
			t.Fatalf("variant %d: %+v", i, got)
		}
	}
	r.mu.RLock()
	e := r.entries[datumKey(DefaultNamespace, DefaultGroup, "svc")]
	r.mu.RUnlock()
	e.lists.mu.RLock()
	n := len(e.lists.m)
	e.lists.mu.RUnlock()
	if n != maxListsPerEntry {
		t.Fatalf("%d variants cached, want %d", n, maxListsPerEntry)
	}

	small := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.ListCacheBytes = 100 })
	mustOK(t, small, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	for range 2 {
		if got := hostIPs(decodeJSON[sdkService](t, mustOK(t, small, "GET", ns+"/instance/list?serviceName=svc", ""))); got != "10.0.0.1+" {
			t.Fatalf("over budget: %q", got)
		}
	}
	if used := small.listCacheUsed.Load(); used != 0 {
		t.Fatalf("cached %d bytes over a 100-byte budget", used)
	}
}

// Regression: lastRefTime was the answering node's clock, while clients
// compare it across answers from different nodes (nacos-sdk-go v1.1.6 picks a
// server at random per request and skips the callback of an answer whose
// lastRefTime is below the one it holds). It follows the data instead: the
// same state answers the same value on every node, a later state no lower
// one, whatever the nodes' clocks say.
func TestListLastRefTimeFollowsTheDataNotTheNode(t *testing.T) {
	base := uint64(time.Unix(1_700_000_000, 0).UnixNano()) // versions are hybrid-clock unix nanoseconds
	owner := newFakeCluster()
	owner.ver.Store(base)
	w := newTestRegistry(t, owner, nil) // where the writes happen
	ahead, behind := newTestRegistry(t, newFakeCluster(), nil), newTestRegistry(t, newFakeCluster(), nil)
	withClock(ahead).Advance(time.Minute)
	withClock(behind)
	list := func(r *Registry) sdkService {
		return decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc", ""))
	}
	replicate := func() {
		d, _ := w.Get(svcKey)
		for _, r := range []*Registry{ahead, behind} {
			r.Apply(d)
		}
	}

	mustOK(t, w, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	replicate()
	a1, b1 := list(ahead), list(behind)
	if a1.LastRefTime == 0 || a1.LastRefTime != b1.LastRefTime {
		t.Fatalf("one state, lastRefTime %d on the node a minute ahead, %d on the other", a1.LastRefTime, b1.LastRefTime)
	}
	if a1.LastRefTime >= 1<<53 {
		t.Fatalf("lastRefTime %d does not survive a float64 round trip", a1.LastRefTime)
	}
	owner.ver.Add(uint64(time.Millisecond)) // the next write, a millisecond later
	mustOK(t, w, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	replicate()
	if b2 := list(behind); b2.LastRefTime <= a1.LastRefTime {
		t.Fatalf("a later state answers lastRefTime %d, below the earlier state's %d: the client skips it", b2.LastRefTime, a1.LastRefTime)
	}
}
