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
	clk := withClock(r)
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
						res.CacheMillis, res.LastRefTime, res.Env = defaultCacheMillis, clk.Now().UnixMilli(), env
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

// Every change of the datum invalidates the cached lists, lastRefTime is the
// time of each answer, and the bytes return to the budget.
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
	if hostIPs(second) != "10.0.0.1+" || second.LastRefTime != first.LastRefTime+1500 {
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
