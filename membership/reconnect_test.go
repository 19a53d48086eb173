package membership

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/hashicorp/memberlist"
)

// TestPartitionHeals pins the e2e's partition that never healed: memberlist
// contacts no member it declared dead, so once the network is back each side
// kept seeing the other dead; the reconnect loop joins them again.
func TestPartitionHeals(t *testing.T) {
	const gossipToTheDead = 100 * time.Millisecond
	names := []string{"a", "b", "c", "d"}
	var nodes []*Membership
	var cuts []*linkCut
	for _, name := range names {
		cfg := testConfig(t, name)
		cfg.ReconnectInterval = 200 * time.Millisecond
		// The e2e's partition outlasts GossipToTheDeadTime (15 s on local),
		// after which memberlist sends nothing to the dead: no gossip heals
		// it. Shortened here so the test needs no 15 s wait.
		cfg.tuneMemberlist = func(mc *memberlist.Config) { mc.GossipToTheDeadTime = gossipToTheDead }
		if len(nodes) > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		cut := newLinkCut()
		cut.install(&cfg)
		nodes = append(nodes, startNode(t, cfg))
		cuts = append(cuts, cut)
	}
	testutil.Eventually(t, converge, "all alive", func() error { return allAlive(nodes, names...) })

	left, right := nodes[:2], nodes[2:]
	addrs := func(ns []*Membership) (out []string) {
		for _, n := range ns {
			out = append(out, n.GossipAddr())
		}
		return out
	}
	for i := range nodes {
		other := right
		if i >= 2 {
			other = left
		}
		cuts[i].cut(true, addrs(other)...)
	}
	seesOthersDead := func(side, other []*Membership) error {
		for _, n := range side {
			for _, o := range other {
				if err := hasState(n, o.Local().Name, StateDead); err != nil {
					return err
				}
			}
		}
		return nil
	}
	testutil.Eventually(t, converge, "each side sees the other dead", func() error {
		return errors.Join(seesOthersDead(left, right), seesOthersDead(right, left))
	})
	// Heal only once every node has seen the other side dead for longer
	// than GossipToTheDeadTime: from then on memberlist sends them nothing.
	testutil.Eventually(t, converge, "the other side dead past GossipToTheDeadTime everywhere", func() error {
		for _, n := range nodes {
			n.mu.Lock()
			for name, mb := range n.members {
				if dead := time.Since(n.since[name]); mb.State == StateDead && dead < 3*gossipToTheDead {
					n.mu.Unlock()
					return fmt.Errorf("%s has seen %s dead for only %s", n.Local().Name, name, dead)
				}
			}
			n.mu.Unlock()
		}
		return nil
	})
	for _, n := range nodes {
		if got := len(n.Others()); got != 1 {
			t.Errorf("%s: Others() has %d members during the partition, want 1", n.Local().Name, got)
		}
	}

	healed := time.Now()
	for _, c := range cuts {
		c.heal()
	}
	testutil.Eventually(t, converge, "every node sees every other alive after the heal", func() error {
		return allAlive(nodes, names...)
	})
	t.Logf("partition healed: all alive everywhere %s after the network came back",
		time.Since(healed).Round(time.Millisecond))
}

// TestReconnectTargets: dead members within ReconnectTimeout, at most
// reconnectBatch of them, and the Join addresses only while members are missing.
func TestReconnectTargets(t *testing.T) {
	cfg := testConfig(t, "self")
	cfg.Join = []string{"10.0.0.1:7946"}
	cfg.ReconnectTimeout = time.Hour
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(t.Context()) })

	meta := func(leaving bool) []byte {
		return meta{Protocol: ProtocolVersion, Partitions: 1024, HTTPAddr: "h:1", Leaving: leaving}.encode()
	}
	ev := func(kind eventKind, name string, leaving bool) nodeEvent {
		return nodeEvent{kind: kind, name: name, addr: "10.0.1." + name + ":7946", meta: meta(leaving)}
	}
	addrsOf := func(tgs []reconnectTarget) []string {
		var out []string
		for _, tg := range tgs {
			out = append(out, tg.addr)
		}
		slices.Sort(out)
		return out
	}
	now := time.Now()

	m.apply([]nodeEvent{ev(eventJoin, "1", false), ev(eventJoin, "2", false)})
	if got := m.reconnectTargets(now); len(got) != 0 {
		t.Fatalf("all alive: targets %v, want none", got)
	}

	m.apply([]nodeEvent{ev(eventLeave, "2", true)})
	if got := m.reconnectTargets(now); len(got) != 0 {
		t.Fatalf("a member left: targets %v, want none (left is not missing)", got)
	}

	m.apply([]nodeEvent{ev(eventLeave, "1", false)})
	if got, want := addrsOf(m.reconnectTargets(now)), []string{"10.0.0.1:7946", "10.0.1.1:7946"}; !slices.Equal(got, want) {
		t.Fatalf("a member died: targets %v, want %v (the dead member and the join address)", got, want)
	}
	if got := m.reconnectTargets(now.Add(2 * time.Hour)); len(got) != 1 || got[0].name != "" {
		t.Fatalf("dead beyond ReconnectTimeout: targets %v, want only the join address", got)
	}

	var many []nodeEvent
	for _, n := range []string{"3", "4", "5", "6", "7"} {
		many = append(many, ev(eventJoin, n, false))
	}
	m.apply(many)
	for i := range many {
		many[i].kind = eventLeave
	}
	m.apply(many)
	if got := m.reconnectTargets(now); len(got) != reconnectBatch {
		t.Fatalf("6 dead members: %d targets, want the batch bound %d", len(got), reconnectBatch)
	}
}
