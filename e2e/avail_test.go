package e2e

// Availability at the clients' edge (issue 9, items 3 and 4): writes are
// accepted while the owner of their service is dying, and a node that was
// stopped refuses reads on its stale view instead of answering them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// availArgs: expiry is not the subject here, and no client beats (a beat
// carrying beat info would register a lost instance again and hide the loss),
// so the timeouts outlast the test.
var availArgs = []string{"--verify-interval=1s", "--beat-timeout=2m", "--delete-timeout=4m", "--log-level=info"}

// availServicesOwnedBy names n services (avail.svc-NNN) that owner owns in owners.
func availServicesOwnedBy(owners []string, owner string, n int) []string {
	var out []string
	for i := 0; len(out) < n; i++ {
		svc := fmt.Sprintf("avail.svc-%03d", i)
		if loadOwnerOf(owners, "public##DEFAULT_GROUP@@"+svc) == owner {
			out = append(out, svc)
		}
	}
	return out
}

// TestAvailWritesAcceptedWhileOwnerDies: kill -9 the owner of 40 services and
// at once, before gossip declares it dead, register 200 instances of them
// through the two others. Every registration is acknowledged, every instance
// is listed on both survivors once they settle, and on all three nodes once
// the killed owner is back: none is lost. Before the fix every one of them
// was refused with 503 "owner node1 unreachable" until the owner was declared dead.
func TestAvailWritesAcceptedWhileOwnerDies(t *testing.T) {
	c := StartCluster(t, 3, Options{Args: availArgs})
	nodes := c.Nodes
	joinAll(nodes) // the victim, node1, rejoins through the others
	Eventually(t, 30*time.Second, "3 members and one ring", func() error {
		_, err := AgreeOnMembers(nodes, "node1", "node2", "node3")
		return err
	})
	owners, err := loadRingOwners(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	victim, survivors := nodes[0], nodes[1:]
	var insts []loadInst
	for s, svc := range availServicesOwnedBy(owners, victim.Name, 40) {
		for j := 0; j < 5; j++ {
			i := s*5 + j
			insts = append(insts, loadInst{svc: svc, ip: fmt.Sprintf("10.9.%d.%d", i/250, i%250+1), port: 30000 + i})
		}
	}
	hc := nacosHTTPClient(t)

	victim.Kill()
	killed := time.Now()
	var mu sync.Mutex
	var refused []string
	loadForEach(len(insts), loadWorkers, func(i int) {
		if _, err := loadRegister(hc, survivors[i%len(survivors)], insts[i]); err != nil {
			mu.Lock()
			refused = append(refused, err.Error())
			mu.Unlock()
		}
	})
	burst := time.Since(killed)
	// The registrations must have run inside the window they are about: the
	// owner dead, but not yet declared dead (crash detection takes ~4 s here).
	if err := EverySees(survivors, victim.Name, func(m Member) bool { return m.State == "alive" || m.State == "suspect" }); err != nil {
		t.Fatalf("the %d registrations took %s and %s was declared dead meanwhile, so they did not test the window: %v",
			len(insts), burst.Round(time.Millisecond), victim.Name, err)
	}
	t.Logf("FIGURES avail-writes: kill -9 %s, then %d registrations of its services through the others in %s: %d refused",
		victim.Name, len(insts), burst.Round(time.Millisecond), len(refused))
	for i, r := range refused {
		if i == 5 {
			t.Errorf("... and %d more refused", len(refused)-5)
			break
		}
		t.Errorf("refused while the owner was dying: %s", r)
	}
	if len(refused) > 0 {
		t.FailNow()
	}
	applied := 0.0
	for _, n := range survivors {
		v, _, err := n.Metric("distrod_naming_forwarded_requests_total", `result="applied_here"`)
		if err != nil {
			t.Fatal(err)
		}
		applied += v
	}
	if applied != float64(len(insts)) {
		t.Errorf("forwarded_requests_total{applied_here} on the survivors = %v, want %d", applied, len(insts))
	}

	allListed := func(on []*Node) func() error {
		return func() error {
			for _, n := range on {
				missing, err := loadMissing(hc, n, insts)
				if err != nil {
					return err
				}
				if len(missing) > 0 {
					return fmt.Errorf("%s lacks %d of %d, e.g. %s", n.Name, len(missing), len(insts), missing[0])
				}
			}
			return nil
		}
	}
	Eventually(t, 10*time.Second, "every acknowledged instance listed on both survivors", allListed(survivors))
	Eventually(t, 30*time.Second, "survivors declare "+victim.Name+" dead and agree on the ring", func() error {
		_, err := AgreeOnMembers(survivors, "node2", "node3")
		return err
	})
	Eventually(t, 10*time.Second, "every instance still listed on both survivors after the ring changed", allListed(survivors))

	victim.Restart()
	Eventually(t, 30*time.Second, "3 members and one ring after the restart", func() error {
		_, err := AgreeOnMembers(nodes, "node1", "node2", "node3")
		return err
	})
	Eventually(t, 30*time.Second, "all 200 listed on all 3 nodes, one digest", func() error {
		if err := loadConverged(nodes, len(insts)); err != nil {
			return err
		}
		return allListed(nodes)()
	})
}

// availList asks n for service's instances: the status, and the listed ip:port set when 200.
func availList(n *Node, service string) (int, map[string]bool, string, error) {
	q := url.Values{"serviceName": {service}, "healthyOnly": {"false"}}
	status, body, err := n.DoWith(pollClient, http.MethodGet, "/nacos/v1/ns/instance/list?"+q.Encode(), nil)
	if err != nil || status != http.StatusOK {
		return status, nil, string(bytes.TrimSpace(body)), err
	}
	var resp struct {
		Hosts []nacosHost `json:"hosts"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return status, nil, "", fmt.Errorf("%s: list %s: %w", n.Name, service, err)
	}
	listed := map[string]bool{}
	for _, h := range resp.Hosts {
		listed[h.IP+":"+strconv.Itoa(h.Port)] = true
	}
	return status, listed, "", nil
}

// staleVerify is the stale-read test's verify interval: longer than the
// stall hold's 5 s default, as an operator may set it.
const staleVerify = 8 * time.Second

// TestAvailNoStaleReadsAfterPause: SIGSTOP a node until the others declare it
// dead, deregister 20 instances meanwhile, SIGCONT it right after the owner's
// verify round, so that the next one, which repairs its view, is a whole
// verify interval away. From then on, whenever it answers a list 200, none of
// the 20 is in it, and /health says STALE while it refuses. Before the fix it
// answered 200 at once and listed them for up to a verify interval.
func TestAvailNoStaleReadsAfterPause(t *testing.T) {
	c := StartCluster(t, 3, Options{Args: []string{"--verify-interval=" + staleVerify.String(),
		"--beat-timeout=2m", "--delete-timeout=4m", "--log-level=info"}})
	nodes := c.Nodes
	Eventually(t, 30*time.Second, "3 members and one ring", func() error {
		_, err := AgreeOnMembers(nodes, "node1", "node2", "node3")
		return err
	})
	owners, err := loadRingOwners(nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	victim, others := nodes[2], nodes[:2]
	svc := availServicesOwnedBy(owners, others[0].Name, 1)[0] // the deregistrations do not depend on the victim
	var insts []loadInst
	for i := 0; i < 20; i++ {
		insts = append(insts, loadInst{svc: svc, ip: "10.8.0." + strconv.Itoa(i+1), port: 31000 + i})
	}
	hc := nacosHTTPClient(t)
	for _, in := range insts {
		if _, err := loadRegister(hc, others[0], in); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, 10*time.Second, "the 20 instances listed on "+victim.Name, func() error {
		missing, err := loadMissing(hc, victim, insts)
		if err == nil && len(missing) > 0 {
			err = fmt.Errorf("%d missing", len(missing))
		}
		return err
	})

	if err := pause(victim); err != nil {
		t.Fatalf("SIGSTOP %s: %v", victim.Name, err)
	}
	t.Cleanup(func() { _ = resume(victim) }) // before the harness's kill: a stopped process must not linger
	Eventually(t, 60*time.Second, "the others declare "+victim.Name+" dead", func() error {
		return EverySees(others, victim.Name, func(m Member) bool { return m.State == "dead" })
	})
	for _, in := range insts {
		status, body, err := others[1].Do(http.MethodDelete, "/nacos/v1/ns/instance?"+url.Values{
			"serviceName": {in.svc}, "ip": {in.ip}, "port": {strconv.Itoa(in.port)}}.Encode(), nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("deregister %s: %d %s %v", in, status, body, err)
		}
	}
	owner := others[0]
	rounds := func() float64 {
		v, _, err := owner.Metric("distro_verify_rounds_total", "")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := rounds()
	Eventually(t, 2*staleVerify, owner.Name+" starts a verify round", func() error {
		if rounds() == before {
			return fmt.Errorf("still %v rounds", before)
		}
		return nil
	})
	if err := resume(victim); err != nil {
		t.Fatalf("SIGCONT %s: %v", victim.Name, err)
	}
	resumed := time.Now()

	// Poll the woken node until it has answered a clean list for 3 s (bounded: 40 s).
	// Eventually polls every 25 ms: the round started at most that long before SIGCONT.
	var refused, stale, staleHealth int
	var firstStatus int
	var clean time.Time
	for time.Since(resumed) < 40*time.Second && (clean.IsZero() || time.Since(clean) < 3*time.Second) {
		status, listed, body, err := availList(victim, svc)
		if err != nil {
			t.Fatalf("list on %s after SIGCONT: %v", victim.Name, err)
		}
		if firstStatus == 0 {
			firstStatus = status
		}
		switch status {
		case http.StatusOK:
			n := 0
			for _, in := range insts {
				if listed[in.ip+":"+strconv.Itoa(in.port)] {
					n++
				}
			}
			if n > 0 {
				if stale++; stale <= 3 {
					t.Errorf("t+%.2fs: %s answered 200 listing %d of the 20 deregistered instances", time.Since(resumed).Seconds(), victim.Name, n)
				}
				clean = time.Time{}
			} else if clean.IsZero() {
				clean = time.Now()
			}
		case http.StatusServiceUnavailable:
			refused++
			if !strings.Contains(body, "stale") && !strings.Contains(body, "not ready") {
				t.Errorf("503 without saying why: %q", body)
			}
			hs, h, err := victim.Health(pollClient)
			if err == nil && hs == http.StatusServiceUnavailable && h.Status == "STALE" && h.Reason != "" {
				staleHealth++
			}
		default:
			t.Fatalf("list on %s after SIGCONT: %d %s", victim.Name, status, body)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	t.Logf("FIGURES avail-stale: after SIGCONT %s answered the list 503 %d times (/health STALE %d times), "+
		"200 with deregistered instances %d times; clean 200 from t+%.2fs",
		victim.Name, refused, staleHealth, stale, clean.Sub(resumed).Seconds())
	if clean.IsZero() {
		t.Fatalf("%s never answered a clean list within 40 s of SIGCONT", victim.Name)
	}
	if firstStatus != http.StatusServiceUnavailable || staleHealth == 0 {
		t.Errorf("first list after SIGCONT answered %d, /health STALE seen %d times: want the stale view refused and said so",
			firstStatus, staleHealth)
	}
}
