package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// npmDriver returns node and the path of npm_driver/driver.js (an application
// using the npm `nacos` client 2.6.3), or skips the test saying why.
func npmDriver(t *testing.T) (node, script string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not found: the npm nacos client test needs Node.js, and `make npm-driver` to install the client")
	}
	if _, err := os.Stat(filepath.Join("npm_driver", "node_modules", "nacos", "package.json")); err != nil {
		t.Skip("the npm nacos client is not installed: run `make npm-driver` (npm ci in e2e/npm_driver)")
	}
	script, err = filepath.Abs(filepath.Join("npm_driver", "driver.js"))
	if err != nil {
		t.Fatal(err)
	}
	return node, script
}

// TestNacosNPMClient drives a two-node cluster with the npm `nacos` client
// (a JavaScript application knowing both nodes): register, subscribe, a change
// pushed and acked (the client echoes lastRefTime as a JavaScript number, so
// it must survive a float64 round trip), then the node holding its
// subscription is killed: the client's requests and its next refresh fail
// over to the survivor, which pushes the next change, acked too.
func TestNacosNPMClient(t *testing.T) {
	node, script := npmDriver(t)
	c := StartCluster(t, 2, Options{Args: []string{"--log-level=info"}})
	Eventually(t, 30*time.Second, "2 members and one ring", func() error {
		_, err := AgreeOnMembers(c.Nodes, "node1", "node2")
		return err
	})
	hc := nacosHTTPClient(t)
	dir := t.TempDir()
	app := startDriverApp(t, "npm-app", dir,
		exec.Command(node, script, "-server", c.Nodes[0].HTTPAddr+","+c.Nodes[1].HTTPAddr, "-dir", dir))
	const svc = "e2e.npm"

	app.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 19080, Weight: 1})
	Eventually(t, 5*time.Second, "the instance on both nodes", func() error {
		return nacosCheckInstances(hc, c.Nodes, svc, []int{19080}, false)
	})
	app.mustCall(sdkRequest{Op: "subscribe", Service: svc})
	Eventually(t, 5*time.Second, "the first callback", func() error { return sdkSees(app, 19080) })
	var holder, survivor *Node // the node the client subscribed through (its query went to one at random)
	Eventually(t, 5*time.Second, "a node lists the client as a UDP subscriber", func() error {
		for i, n := range c.Nodes {
			if metric(t, n, "distrod_naming_udp_subscribers", "") >= 1 {
				holder, survivor = n, c.Nodes[1-i]
				return nil
			}
		}
		return fmt.Errorf("no subscriber on either node")
	})

	app.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 19081, Weight: 1})
	if err := testutil.Poll(pushedWithin, func() error { return sdkSees(app, 19081) }); err != nil {
		t.Fatalf("the change was not pushed (no callback within %s): %v", pushedWithin, err)
	}
	for _, n := range c.Nodes {
		checkPushesAcked(t, n, 0)
	}
	if metric(t, holder, "distrod_naming_udp_push_acks_total", "") < 1 {
		t.Errorf("%s holds the subscription but got no ack", holder.Name)
	}

	// Failover.
	killed := time.Now()
	holder.Kill()
	Eventually(t, 30*time.Second, survivor.Name+" alone in its ring", func() error {
		_, err := AgreeOnMembers([]*Node{survivor}, survivor.Name)
		return err
	})
	Eventually(t, 20*time.Second, "the client's refresh subscribes through "+survivor.Name, func() error {
		if metric(t, survivor, "distrod_naming_udp_subscribers", "") < 1 {
			return fmt.Errorf("no subscriber on %s", survivor.Name)
		}
		return nil
	})
	t.Logf("%s killed → the client subscribed through %s after %s", holder.Name, survivor.Name, time.Since(killed).Round(time.Millisecond))
	app.mustCall(sdkRequest{Op: "register", Service: svc, IP: "127.0.0.1", Port: 19082, Weight: 1})
	if err := testutil.Poll(pushedWithin, func() error { return sdkSees(app, 19082) }); err != nil {
		t.Fatalf("after failover the change was not pushed (no callback within %s): %v", pushedWithin, err)
	}
	checkPushesAcked(t, survivor, 1)
}
