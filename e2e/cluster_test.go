package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m)) }

// TestClusterFoundation is issue 2's end-to-end check with real processes:
// three agents joined with --join agree on members and ring; a kill -9 is
// detected and the survivors agree on a new ring; the killed node restarted
// under the same name rejoins and all agree again.
func TestClusterFoundation(t *testing.T) {
	c := StartCluster(t, 3, Options{Profile: "local"})
	all := c.Nodes

	var v3 string
	Eventually(t, 30*time.Second, "3 alive members and one ring on every node", func() (err error) {
		v3, err = AgreeOnMembers(all, "node1", "node2", "node3")
		return err
	})

	killed := c.Nodes[1]
	killed.Kill()
	survivors := []*Node{c.Nodes[0], c.Nodes[2]}
	Eventually(t, 60*time.Second, "survivors see node2 gone and agree on a new ring", func() error {
		v2, err := AgreeOnMembers(survivors, "node1", "node3")
		if err == nil && v2 == v3 {
			return fmt.Errorf("ring version still %s", v3)
		}
		return err
	})

	killed.Restart()
	Eventually(t, 60*time.Second, "node2 rejoins and all agree", func() error {
		v, err := AgreeOnMembers(all, "node1", "node2", "node3")
		if err == nil && v != v3 {
			return fmt.Errorf("ring version %s, want %s (same member names as before)", v, v3)
		}
		return err
	})

	if err := c.Nodes[2].Stop(); err != nil {
		t.Errorf("node3 exit after SIGTERM: %v", err)
	}
	Eventually(t, 30*time.Second, "node3's graceful leave is seen as left", func() error {
		return EverySees(c.Nodes[:2], "node3", func(m Member) bool { return m.State == "left" })
	})
}
