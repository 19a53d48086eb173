package e2e

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestNameConflictRefusedAtStart pins issue 8 item 5 with real processes: a
// fourth agent started under a live member's name on new ports (a cloned VM
// keeps the hostname, the default name) exits with code 2 and a one-line
// error naming the conflict and the holder's address, and the cluster's
// members, ring, data and verdict are as before. A kill -9 and a restart on
// the same address is not a conflict: the node rejoins, and the peers take
// the new process's pushes.
func TestNameConflictRefusedAtStart(t *testing.T) {
	// Instances are registered once and not beaten: they must outlive the test.
	opts := Options{Profile: "local", Args: []string{"--beat-timeout=10m", "--delete-timeout=10m"}}
	c := StartCluster(t, 3, opts)
	all := c.Nodes
	var version string
	Eventually(t, 30*time.Second, "3 alive members and one ring on every node", func() (err error) {
		version, err = AgreeOnMembers(all, "node1", "node2", "node3")
		return err
	})
	const first = 30
	for i := range first {
		if _, err := loadRegister(client, all[i%len(all)], loadInstance(i)); err != nil {
			t.Fatal(err)
		}
	}
	var digest string
	Eventually(t, 30*time.Second, "every node holds the registered instances", func() (err error) {
		digest, err = sameData(all, first)
		return err
	})

	holder := c.Nodes[1]
	code, last := RunAgentToExit(t, holder.Name, opts, 30*time.Second, c.Nodes[0].GossipAddr)
	t.Logf("impostor exited %d: %s", code, last)
	if code != 2 {
		t.Errorf("impostor exit code %d, want 2", code)
	}
	for _, want := range []string{"--name", `"node2"`, "held by a live node", holder.GossipAddr} {
		if !strings.Contains(last, want) {
			t.Errorf("impostor's last line %q does not name %q", last, want)
		}
	}

	if v, err := AgreeOnMembers(all, "node1", "node2", "node3"); err != nil || v != version {
		t.Errorf("after the impostor: ring %s, %v; want %s as before", v, err, version)
	}
	if err := EverySees(all, holder.Name, func(m Member) bool {
		return m.State == "alive" && m.Ready && m.HTTPAddr == holder.HTTPAddr && m.GossipAddr == holder.GossipAddr
	}); err != nil {
		t.Errorf("the holder is not what every node sees: %v", err)
	}
	if d, err := sameData(all, first); err != nil || d != digest {
		t.Errorf("after the impostor: digest %s, %v; want %s as before", d, err, digest)
	}
	if out, err := exec.Command(binary, "status", "--http", c.Nodes[0].HTTPAddr).CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "converged") {
		t.Errorf("distrod status after the impostor: %v\n%s", err, out)
	}

	oldGossip := holder.GossipAddr
	holder.Kill()
	holder.Restart()
	if holder.GossipAddr != oldGossip {
		t.Fatalf("restarted node2 on %s, not its old %s (port taken meanwhile)", holder.GossipAddr, oldGossip)
	}
	Eventually(t, 60*time.Second, "node2 rejoins and all agree on the ring", func() error {
		v, err := AgreeOnMembers(all, "node1", "node2", "node3")
		if err == nil && v != version {
			return fmt.Errorf("ring version %s, want %s", v, version)
		}
		return err
	})
	// Writes through the restarted node reach every peer: they accept its new incarnation.
	const more = 10
	for i := first; i < first+more; i++ {
		if _, err := loadRegister(client, holder, loadInstance(i)); err != nil {
			t.Fatal(err)
		}
	}
	Eventually(t, 30*time.Second, "every node holds the instances registered before and after the restart", func() error {
		_, err := sameData(all, first+more)
		return err
	})
}

// sameData checks that every node is ready with want instances and one
// digest, which it returns.
func sameData(nodes []*Node, want int) (string, error) {
	var digest string
	var errs []error
	for _, n := range nodes {
		st, err := n.Status()
		switch {
		case err != nil:
			errs = append(errs, err)
		case !st.Ready || st.Instances != want:
			errs = append(errs, fmt.Errorf("%s: ready %t with %d instances, want %d", n.Name, st.Ready, st.Instances, want))
		case digest == "":
			digest = st.Digest
		case st.Digest != digest:
			errs = append(errs, fmt.Errorf("%s: digest %s, another node %s", n.Name, st.Digest, digest))
		}
	}
	return digest, errors.Join(errs...)
}
