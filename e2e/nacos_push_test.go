package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// The UDP push path against nacos-sdk-go v1.1.6's real refresh pattern. The
// client re-queries a service (renewing its subscription) only once
// cacheMillis (10 s) passed since its last update, and a push is an update
// (host_reactor.go asyncUpdateService / ProcessServiceJson): while changes
// come more often than every 10 s it never queries, and after a push its next
// query is 10-11 s away.

// pushedWithin is how soon after a change the subscriber's callback must see
// it for the change to count as pushed: a push takes milliseconds, the
// client's own polling at least 10 s.
const pushedWithin = 2 * time.Second

// TestNacosSDKPushAcrossRefreshes: a subscriber made its only query, then
// changes come every 6 s; each is pushed (the callback sees it within 2 s),
// including those 12, 18 and 24 s after the query, when a subscription that
// only queries renew has lapsed (the client's next query would come 10-11 s
// after the push before). Every push is acked: none is counted unacked.
func TestNacosSDKPushAcrossRefreshes(t *testing.T) {
	driver := buildNacosDriver(t)
	n := StartNode(t, "node1", Options{Args: []string{"--log-level=info"}})
	owner := startSDKApp(t, driver, "owner", n) // registers the instances: the changes
	sub := startSDKApp(t, driver, "subscriber", n)
	const svc = "e2e.refresh"

	// One instance from the start: the client ignores an empty list once it has one.
	owner.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 18080, Weight: 1})
	Eventually(t, 5*time.Second, "the first instance listed", func() error {
		return nacosCheckInstances(nacosHTTPClient(t), []*Node{n}, svc, []int{18080}, false)
	})
	sub.mustCall(sdkRequest{Op: "subscribe", Service: svc})
	lastQuery := time.Now() // the subscribe call's query is the client's last one: every change below comes < 10 s after the previous push

	for i, after := range []time.Duration{6 * time.Second, 12 * time.Second, 18 * time.Second, 24 * time.Second} {
		<-time.After(time.Until(lastQuery.Add(after))) // the scenario's schedule, not a synchronisation
		port := uint64(18081 + i)
		owner.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: port, Weight: 1})
		changed := time.Now()
		if err := testutil.Poll(pushedWithin, func() error { return sdkSees(sub, port) }); err != nil {
			t.Errorf("change %s after the subscriber's last query (instance :%d) not pushed: no callback within %s: %v",
				after, port, pushedWithin, err)
			continue
		}
		t.Logf("change %s after the last query: callback after %s", after, time.Since(changed).Round(time.Millisecond))
	}

	// Acks match: every push sent is acked, none given up on.
	checkPushesAcked(t, n, 4)
}

// checkPushesAcked waits until every push n sent was acked or given up on
// (2 x PushAckTimeout after sending) and fails the test unless at least
// min pushes were sent and every one was acked.
func checkPushesAcked(t *testing.T, n *Node, min float64) {
	t.Helper()
	var sent, acks, unacked float64
	Eventually(t, 10*time.Second, n.Name+": every push acked or given up on", func() error {
		sent, acks, unacked = pushMetric(t, n, "sent"), metric(t, n, "distrod_naming_udp_push_acks_total", ""), pushMetric(t, n, "unacked")
		if acks+unacked < sent {
			return fmt.Errorf("%v pushes sent, %v acked, %v unacked", sent, acks, unacked)
		}
		return nil
	})
	if sent < min || unacked != 0 || acks != sent {
		t.Errorf("%s: %v pushes sent (want >= %v), %v acked, %v counted unacked (want 0)", n.Name, sent, min, acks, unacked)
	}
}

// TestMeasureNacosSDKPushRate prints the share of changes pushed to a
// nacos-sdk-go v1.1.6 subscriber (its callback within 2 s) over a 60 s run
// with a change every 3 s. It runs only when asked:
//
//	cd e2e && DISTROD_MEASURE=1 go test -count=1 -run TestMeasureNacosSDKPushRate -v .
func TestMeasureNacosSDKPushRate(t *testing.T) {
	if os.Getenv("DISTROD_MEASURE") == "" {
		t.Skip("set DISTROD_MEASURE=1 to measure")
	}
	driver := buildNacosDriver(t)
	n := StartNode(t, "node1", Options{Args: []string{"--log-level=info"}})
	owner := startSDKApp(t, driver, "owner", n)
	sub := startSDKApp(t, driver, "subscriber", n)
	const svc = "e2e.measure.push"
	owner.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 18080, Weight: 1})
	Eventually(t, 5*time.Second, "the first instance listed", func() error {
		return nacosCheckInstances(nacosHTTPClient(t), []*Node{n}, svc, []int{18080}, false)
	})
	sub.mustCall(sdkRequest{Op: "subscribe", Service: svc})
	start := time.Now()
	const every, changes = 3 * time.Second, 20
	var pushed int
	var missed []string
	for i := 1; i <= changes; i++ {
		<-time.After(time.Until(start.Add(time.Duration(i) * every))) // the schedule
		// Each change is a new value of the second instance's metadata, so a
		// missed one is not made up for by the next.
		seq := fmt.Sprint(i)
		sent := pushMetric(t, n, "sent")
		owner.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 18081, Weight: 1, Metadata: map[string]string{"seq": seq}})
		err := testutil.Poll(pushedWithin, func() error {
			if h := findSDKHost(nacosLastEvent(sub).Hosts, "127.0.0.1", 18081); h == nil || h.Metadata["seq"] != seq {
				return fmt.Errorf("callback without seq %s", seq)
			}
			return nil
		})
		if err == nil && pushMetric(t, n, "sent") > sent {
			pushed++
		} else {
			missed = append(missed, fmt.Sprintf("+%s", time.Duration(i)*every))
		}
	}
	t.Logf("nacos-sdk-go v1.1.6 subscriber, a change every %s for %s: %d of %d pushed (sent and seen by the callback within %s: %.0f %%); "+
		"not: %v; pushes sent %v, acked %v, unacked %v",
		every, changes*every, pushed, changes, pushedWithin, 100*float64(pushed)/changes, missed,
		pushMetric(t, n, "sent"), metric(t, n, "distrod_naming_udp_push_acks_total", ""), pushMetric(t, n, "unacked"))
}

// sdkSees checks that app's latest subscribe callback lists 127.0.0.1:port.
func sdkSees(app *sdkApp, port uint64) error {
	if last := nacosLastEvent(app); findSDKHost(last.Hosts, "127.0.0.1", port) == nil {
		return fmt.Errorf("%s's last callback lists %+v", app.Name, last.Hosts)
	}
	return nil
}

// pushMetric is n's distrod_naming_udp_pushes_total for one result (sent, unacked, ...).
func pushMetric(t *testing.T, n *Node, result string) float64 {
	t.Helper()
	return metric(t, n, "distrod_naming_udp_pushes_total", `result="`+result+`"`)
}

// metric is Node.Metric failing the test on error; a metric not yet exported is 0.
func metric(t *testing.T, n *Node, name, labels string) float64 {
	t.Helper()
	v, _, err := n.Metric(name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
