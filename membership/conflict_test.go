package membership

import (
	"errors"
	"fmt"
	"testing"

	"github.com/distrod/distrod/internal/testutil"
)

// TestSecondNodeWithLiveNameRefusesToJoin pins issue 8 item 5: a second
// process started under a live member's name (a cloned VM keeps the
// hostname) fails with the other address instead of running beside it, never
// sees a peer, and leaves the live member and its view undisturbed, whether
// it joins a peer or the holder itself.
func TestSecondNodeWithLiveNameRefusesToJoin(t *testing.T) {
	for _, tc := range []struct {
		name string
		via  int // index of the node the impostor joins: 1 is the holder b
	}{{"join-a-peer", 0}, {"join-the-holder", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startCluster(t, nil)
			b := nodes[1]
			holder := b.Local()

			cfg := testConfig(t, "b")
			cfg.HTTPAddr = "127.0.0.1:9999" // tells the impostor from the holder
			cfg.Join = []string{nodes[tc.via].GossipAddr()}
			b2 := startNode(t, cfg)
			testutil.Eventually(t, converge, "the impostor reports the conflict", func() error {
				select {
				case <-b2.Failed():
					return nil
				default:
					return errors.New("the impostor has not failed")
				}
			})
			var ce *NameConflictError
			if err := b2.Err(); !errors.As(err, &ce) || !errors.Is(err, ErrNameConflict) {
				t.Fatalf("impostor Err() = %v, want a *NameConflictError", err)
			}
			if ce.Name != "b" || ce.Addr != holder.GossipAddr || ce.Local != b2.GossipAddr() {
				t.Errorf("conflict = %+v, want name b held at %s, local %s", ce, holder.GossipAddr, b2.GossipAddr())
			}
			if got := b2.Others(); len(got) != 0 {
				t.Errorf("the impostor sees peers %v: events must wait for the name check", names(got))
			}
			if err := b.Err(); err != nil {
				t.Errorf("the holder failed: %v", err)
			}
			if err := b2.SetReady(true); err == nil {
				t.Error("the impostor still publishes metadata after failing")
			}
			if err := b2.Shutdown(t.Context()); err != nil {
				t.Errorf("shutdown of the impostor: %v", err)
			}
			for _, n := range nodes {
				mb, ok := n.Lookup("b")
				if !ok || mb.State != StateAlive || mb.GossipAddr != holder.GossipAddr ||
					mb.HTTPAddr != holder.HTTPAddr || mb.Incarnation != holder.Incarnation {
					t.Errorf("%s sees b as %+v (known %t), want the holder %+v", n.Local().Name, mb, ok, holder)
				}
			}
			if err := allAlive(nodes, "a", "b", "c"); err != nil {
				t.Errorf("the cluster lost a member to the impostor: %v", err)
			}
		})
	}
}

// TestRestartIsNotANameConflict: a node killed and restarted under its name,
// at once on the same address or on a new one, joins as before; the peers
// learn the new process's incarnation.
func TestRestartIsNotANameConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		sameAddr bool
	}{{"same-address", true}, {"new-address", false}} {
		t.Run(tc.name, func(t *testing.T) {
			nodes := startCluster(t, nil)
			a, c := nodes[0], nodes[2]
			old := c.Local()
			c.crash() // no leave: the peers may still hold c alive at its address

			cfg := testConfig(t, "c")
			if tc.sameAddr {
				cfg.BindAddr = old.GossipAddr
			}
			cfg.Join = []string{a.GossipAddr()}
			c2 := startNode(t, cfg)
			if tc.sameAddr != (c2.GossipAddr() == old.GossipAddr) {
				t.Fatalf("restarted c bound %s, old %s", c2.GossipAddr(), old.GossipAddr)
			}
			testutil.Eventually(t, converge, "every peer sees the new c alive", func() error {
				if err := c2.Err(); err != nil {
					t.Fatalf("the restarted node failed: %v", err)
				}
				for _, n := range []*Membership{a, nodes[1]} {
					mb, ok := n.Lookup("c")
					if !ok || mb.State != StateAlive || mb.Incarnation != c2.Local().Incarnation ||
						mb.GossipAddr != c2.GossipAddr() {
						return fmt.Errorf("%s sees c as %+v (known %t), want alive at %s with incarnation %s",
							n.Local().Name, mb, ok, c2.GossipAddr(), c2.Local().Incarnation)
					}
				}
				return allAlive([]*Membership{a, nodes[1], c2}, "a", "b", "c")
			})
			if old.Incarnation == c2.Local().Incarnation {
				t.Errorf("the restart kept incarnation %s", old.Incarnation)
			}
		})
	}
}
