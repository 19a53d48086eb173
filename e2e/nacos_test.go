package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Short registry timings so expiry fits in a test: unhealthy after 3 s
// without a beat, removed after 6 s.
const (
	nacosBeatTimeout   = 3 * time.Second
	nacosDeleteTimeout = 6 * time.Second
)

var nacosArgs = []string{
	"--beat-timeout=" + nacosBeatTimeout.String(),
	"--delete-timeout=" + nacosDeleteTimeout.String(),
	"--verify-interval=2s",
	"--log-level=info",
}

// TestNacosSDK drives a three-node cluster with the real Nacos client,
// nacos-sdk-go v1.1.6, each application in its own process (nacos_driver):
// register through node1, subscribe through node2 and get the change by UDP
// push, query through node3, stay alive by the client's beats past the
// delete timeout, deregister, and expire after the application dies.
func TestNacosSDK(t *testing.T) {
	driver := buildNacosDriver(t)
	c := StartCluster(t, 3, Options{Args: nacosArgs})
	Eventually(t, 30*time.Second, "3 members and one ring", func() error {
		_, err := AgreeOnMembers(c.Nodes, "node1", "node2", "node3")
		return err
	})
	nacosScenario(t, driver, c.Nodes)
}

// nacosScenario runs the client steps against nodes (three of them).
func nacosScenario(t *testing.T, driver string, nodes []*Node) {
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	_ = n3
	hc := nacosHTTPClient(t)

	const svc = "e2e.orders"
	const grouped = "DEFAULT_GROUP@@" + svc
	// The Nacos preserved key: the server answers beats with this interval,
	// and the client then beats at it (the default 5 s exceeds the 3 s timeout).
	meta := map[string]string{"version": "1.4.2", "zone": "z1", "preserved.heart.beat.interval": "1000"}

	appA := startSDKApp(t, driver, "appA", n1) // the registering application
	appB := startSDKApp(t, driver, "appB", n2) // the subscriber
	appC := startSDKApp(t, driver, "appC", n3) // queries
	appD := startSDKApp(t, driver, "appD", n3) // registers, then dies

	// Subscribe before anything is registered: what appB learns later can
	// only come by push (a subscribed client polls every 10 s).
	acks0, _, err := n2.Metric("distrod_naming_udp_push_acks_total", "")
	if err != nil {
		t.Fatal(err)
	}
	appB.mustCall(sdkRequest{Op: "subscribe", Service: svc})
	Eventually(t, 5*time.Second, "node2 lists appB as a UDP subscriber", func() error {
		n, _, err := n2.Metric("distrod_naming_udp_subscribers", "")
		if err == nil && n < 1 {
			err = fmt.Errorf("%v subscribers", n)
		}
		return err
	})

	registered := time.Now()
	appA.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 18080, Weight: 2, Metadata: meta})
	var pushed time.Time
	Eventually(t, 5*time.Second, "appB's subscribe callback sees appA's instance", func() error {
		for _, ev := range appB.Events() {
			if h := findSDKHost(ev.Hosts, "127.0.0.1", 18080); h != nil {
				if h.Metadata["version"] != "1.4.2" || !h.Healthy || h.Weight != 2 {
					return fmt.Errorf("pushed host %+v", *h)
				}
				pushed = ev.at
				return nil
			}
		}
		return fmt.Errorf("callbacks so far: %+v", appB.Events())
	})
	acks, _, err := n2.Metric("distrod_naming_udp_push_acks_total", "")
	if err != nil {
		t.Fatal(err)
	}
	if acks <= acks0 {
		t.Errorf("node2 push acks %v, before %v: the callback did not come by UDP push", acks, acks0)
	}
	t.Logf("register through node1 → appB's callback (UDP push from node2): %s", pushed.Sub(registered).Round(time.Millisecond))

	// Reads through node3 with the client's query API (which caches its
	// first answer, so wait until node3 has the instance).
	Eventually(t, 5*time.Second, "appA's instance on every node", func() error {
		return nacosCheckInstances(hc, nodes, svc, []int{18080}, true)
	})
	sel := appC.mustCall(sdkRequest{Op: "selectInstances", Service: svc, HealthyOnly: true})
	if h := findSDKHost(sel.Hosts, "127.0.0.1", 18080); len(sel.Hosts) != 1 || h == nil || h.Metadata["zone"] != "z1" || !h.Enabled {
		t.Errorf("SelectInstances through node3: %+v", sel.Hosts)
	}
	one := appC.mustCall(sdkRequest{Op: "selectOneHealthyInstance", Service: svc})
	if len(one.Hosts) != 1 || one.Hosts[0].IP != "127.0.0.1" || one.Hosts[0].Port != 18080 {
		t.Errorf("SelectOneHealthyInstance through node3: %+v", one.Hosts)
	}
	gs := appC.mustCall(sdkRequest{Op: "getService", Service: svc})
	if gs.Service != grouped || findSDKHost(gs.Hosts, "127.0.0.1", 18080) == nil {
		t.Errorf("GetService through node3: name %q hosts %+v", gs.Service, gs.Hosts)
	}
	all := appC.mustCall(sdkRequest{Op: "getAllServicesInfo", PageSize: 100})
	if all.Count < 1 || !nacosHasService(all.Doms, svc) {
		t.Errorf("GetAllServicesInfo through node3: count %d doms %v", all.Count, all.Doms)
	}

	// A second application registers through node3; appB hears of it too.
	appD.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 18081, Weight: 1, Metadata: meta})
	Eventually(t, 5*time.Second, "appB's callback sees both instances", func() error {
		last := nacosLastEvent(appB)
		if findSDKHost(last.Hosts, "127.0.0.1", 18080) == nil || findSDKHost(last.Hosts, "127.0.0.1", 18081) == nil {
			return fmt.Errorf("last callback %+v", last.Hosts)
		}
		return nil
	})

	// The clients' beats keep both instances on every node past the delete
	// timeout, and never let them go unhealthy. (Lists cannot show that: with
	// the default protection threshold 0 an all-unhealthy service is listed
	// healthy, as in Nacos. The owner's expiry counter can.)
	want := []int{18080, 18081}
	Eventually(t, 10*time.Second, "both instances on every node", func() error {
		return nacosCheckInstances(hc, nodes, svc, want, true)
	})
	sick0 := nacosClusterMetric(t, nodes, "distrod_naming_expirations_total", `kind="unhealthy"`)
	for end := time.Now().Add(nacosDeleteTimeout + 2*time.Second); time.Now().Before(end); {
		if err := nacosCheckInstances(hc, nodes, svc, want, true); err != nil {
			t.Fatalf("while the clients beat: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // sampling period of the keep-alive check, not synchronisation
	}
	if sick := nacosClusterMetric(t, nodes, "distrod_naming_expirations_total", `kind="unhealthy"`); sick != sick0 {
		t.Errorf("instances marked unhealthy while their clients beat every %s: %v (the client beats at the "+
			"clientBeatInterval the server answers; it must honour the instance's preserved.heart.beat.interval)",
			time.Duration(1000)*time.Millisecond, sick-sick0)
	}

	// Deregister: gone from every node, for good.
	appA.mustCall(sdkRequest{Op: "deregister", Service: svc, IP: "127.0.0.1", Port: 18080})
	Eventually(t, 10*time.Second, "deregistered instance gone from every node", func() error {
		return nacosCheckInstances(hc, nodes, svc, []int{18081}, false)
	})
	Eventually(t, 5*time.Second, "appB's callback without the deregistered instance", func() error {
		last := nacosLastEvent(appB)
		if findSDKHost(last.Hosts, "127.0.0.1", 18080) != nil || findSDKHost(last.Hosts, "127.0.0.1", 18081) == nil {
			return fmt.Errorf("last callback %+v", last.Hosts)
		}
		return nil
	})
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if err := nacosCheckInstances(hc, nodes, svc, []int{18081}, false); err != nil {
			t.Fatalf("after deregistration: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // sampling period
	}

	// The application dies: its beats stop and its instance expires everywhere.
	killed := time.Now()
	appD.Kill()
	Eventually(t, nacosDeleteTimeout+15*time.Second, "dead application's instance removed from every node", func() error {
		return nacosCheckInstances(hc, nodes, svc, nil, false)
	})
	t.Logf("application killed → its instance gone from all 3 nodes: %s (delete timeout %s)",
		time.Since(killed).Round(time.Millisecond), nacosDeleteTimeout)
	if removed := nacosClusterMetric(t, nodes, "distrod_naming_expirations_total", `kind="removed"`); removed != 1 {
		t.Errorf("expirations removed across the cluster: %v, want 1", removed)
	}
}

// nacosClusterMetric sums a metric (see Node.Metric) over the distinct nodes.
func nacosClusterMetric(t *testing.T, nodes []*Node, name, labelSubstr string) float64 {
	t.Helper()
	var sum float64
	seen := map[*Node]bool{}
	for _, n := range nodes {
		if seen[n] {
			continue
		}
		seen[n] = true
		v, _, err := n.Metric(name, labelSubstr)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	return sum
}

// nacosCheckInstances checks that every node lists exactly the instances
// 127.0.0.1:ports of service (healthy ones, when healthy is set).
func nacosCheckInstances(hc *http.Client, nodes []*Node, service string, ports []int, healthy bool) error {
	var errs []error
	for _, n := range nodes {
		hosts, err := nacosList(hc, n, service)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(hosts) != len(ports) {
			errs = append(errs, fmt.Errorf("%s lists %d instances %+v, want ports %v", n.Name, len(hosts), hosts, ports))
			continue
		}
		for _, p := range ports {
			h := nacosFindHost(hosts, "127.0.0.1", p)
			switch {
			case h == nil:
				errs = append(errs, fmt.Errorf("%s lacks 127.0.0.1:%d", n.Name, p))
			case healthy && !h.Healthy:
				errs = append(errs, fmt.Errorf("%s lists 127.0.0.1:%d unhealthy", n.Name, p))
			}
		}
	}
	return errors.Join(errs...)
}

// nacosLastEvent is app's latest subscribe callback (empty when none yet).
func nacosLastEvent(app *sdkApp) sdkReply {
	evs := app.Events()
	if len(evs) == 0 {
		return sdkReply{}
	}
	return evs[len(evs)-1]
}

func findSDKHost(hosts []sdkHost, ip string, port uint64) *sdkHost {
	for i := range hosts {
		if hosts[i].IP == ip && hosts[i].Port == port {
			return &hosts[i]
		}
	}
	return nil
}

func nacosHasService(ss []string, s string) bool {
	for _, x := range ss {
		if x == s || strings.HasSuffix(x, "@@"+s) {
			return true
		}
	}
	return false
}
