package membership

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

const converge = 10 * time.Second

// startCluster starts nodes a, b, c; b and c join a.
func startCluster(t *testing.T, mutate func(*Config)) []*Membership {
	t.Helper()
	var nodes []*Membership
	for _, name := range []string{"a", "b", "c"} {
		cfg := testConfig(t, name)
		if len(nodes) > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		if mutate != nil {
			mutate(&cfg)
		}
		nodes = append(nodes, startNode(t, cfg))
	}
	testutil.Eventually(t, converge, "a, b, c all alive everywhere", func() error { return allAlive(nodes, "a", "b", "c") })
	return nodes
}

func TestThreeNodesJoin(t *testing.T) {
	var changes [3]atomic.Int64
	i := 0
	nodes := startCluster(t, func(c *Config) {
		n := &changes[i]
		i++
		c.OnChange = func() { n.Add(1) }
	})

	for i, n := range nodes {
		self := n.Local().Name
		for _, mb := range n.Members() {
			if mb.Self != (mb.Name == self) {
				t.Errorf("%s: member %s has Self=%t", self, mb.Name, mb.Self)
			}
			if mb.HTTPAddr != "127.0.0.1:8848" || mb.Partitions != 1024 || mb.Protocol != ProtocolVersion {
				t.Errorf("%s: member %+v lacks its metadata", self, mb)
			}
		}
		others := names(n.Others())
		want := slices.DeleteFunc([]string{"a", "b", "c"}, func(s string) bool { return s == self })
		if !slices.Equal(others, want) {
			t.Errorf("%s: Others() = %v, want %v", self, others, want)
		}
		if r := n.Ready(); len(r) != 0 {
			t.Errorf("%s: Ready() = %v before anyone is ready", self, names(r))
		}
		if changes[i].Load() == 0 {
			t.Errorf("%s: OnChange never called after the joins", self)
		}
	}
	if g := nodes[1].Members()[0].GossipAddr; g != nodes[0].GossipAddr() {
		t.Errorf("b sees a at %s, a is bound to %s", g, nodes[0].GossipAddr())
	}
}

func TestSetReadySeenByPeers(t *testing.T) {
	nodes := startCluster(t, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]

	if err := b.SetReady(true); err != nil {
		t.Fatalf("SetReady: %v", err)
	}
	if got := names(b.Ready()); !slices.Equal(got, []string{"b"}) {
		t.Errorf("b.Ready() = %v right after SetReady, want [b]", got)
	}
	for _, n := range []*Membership{a, c} {
		testutil.Eventually(t, converge, n.Local().Name+" sees b ready", func() error {
			if got := names(n.Ready()); !slices.Equal(got, []string{"b"}) {
				return fmt.Errorf("ready members %v, want [b]", got)
			}
			return nil
		})
	}
	if got := names(a.Others()); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("a.Others() = %v: readiness must not change Others", got)
	}

	if err := b.SetReady(false); err != nil {
		t.Fatalf("SetReady(false): %v", err)
	}
	testutil.Eventually(t, converge, "a sees b not ready", func() error {
		if got := names(a.Ready()); len(got) != 0 {
			return fmt.Errorf("ready members %v, want none", got)
		}
		return nil
	})
}

func TestGracefulShutdownSeenAsLeft(t *testing.T) {
	nodes := startCluster(t, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := c.SetReady(true); err != ErrShutdown {
		t.Errorf("SetReady after Shutdown = %v, want ErrShutdown", err)
	}
	for _, n := range []*Membership{a, b} {
		testutil.Eventually(t, converge, n.Local().Name+" sees c left", func() error { return hasState(n, "c", StateLeft) })
		for _, mb := range n.Others() {
			if mb.Name == "c" {
				t.Errorf("%s: Others() still lists c", n.Local().Name)
			}
		}
	}
}

func TestCrashSeenAsDeadAndRestartRejoins(t *testing.T) {
	nodes := startCluster(t, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	oldAddr := c.GossipAddr()

	c.crash()
	for _, n := range []*Membership{a, b} {
		testutil.Eventually(t, converge, n.Local().Name+" sees c dead", func() error { return hasState(n, "c", StateDead) })
		if got := names(n.Others()); slices.Contains(got, "c") {
			t.Errorf("%s: Others() = %v still lists dead c", n.Local().Name, got)
		}
	}

	cfg := testConfig(t, "c")
	cfg.Join = []string{a.GossipAddr()}
	c2 := startNode(t, cfg)
	if c2.GossipAddr() == oldAddr {
		t.Fatalf("restarted c reuses %s; the test wants a new address", oldAddr)
	}
	testutil.Eventually(t, converge, "restarted c alive everywhere", func() error {
		return allAlive([]*Membership{a, b, c2}, "a", "b", "c")
	})
	for _, mb := range a.Members() {
		if mb.Name == "c" && mb.GossipAddr != c2.GossipAddr() {
			t.Errorf("a sees c at %s, want its new address %s", mb.GossipAddr, c2.GossipAddr())
		}
	}
}

func TestLeftNodeRestartRejoins(t *testing.T) {
	nodes := startCluster(t, nil)
	a, b, c := nodes[0], nodes[1], nodes[2]
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, converge, "a sees c left", func() error { return hasState(a, "c", StateLeft) })

	cfg := testConfig(t, "c")
	cfg.Join = []string{b.GossipAddr()}
	c2 := startNode(t, cfg)
	testutil.Eventually(t, converge, "c alive again everywhere", func() error {
		return allAlive([]*Membership{a, b, c2}, "a", "b", "c")
	})
}

func TestDifferentPartitionsRefused(t *testing.T) {
	aCfg := testConfig(t, "a")
	logger, rec := newTestLogger(t)
	aCfg.Logger = logger
	a := startNode(t, aCfg)

	bCfg := testConfig(t, "b")
	bCfg.Partitions = 512
	bCfg.Join = []string{a.GossipAddr()}
	b := startNode(t, bCfg)

	testutil.Eventually(t, converge, "b tried to join 3 times", func() error { return attemptsAtLeast(b, 3) })
	testutil.Eventually(t, converge, "a logged the refusal", func() error {
		return rec.logged("WARN", "refusing incompatible member", "node=b", "partitions=512", "local_partitions=1024")
	})
	if got := names(a.Members()); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a.Members() = %v, want only a", got)
	}
	if got := names(b.Members()); !slices.Equal(got, []string{"b"}) {
		t.Errorf("b.Members() = %v, want only b", got)
	}
}

func TestSecret(t *testing.T) {
	nodes := startCluster(t, func(c *Config) { c.Secret = "s3cret" })
	a := nodes[0]

	for _, secret := range []string{"", "wrong"} {
		cfg := testConfig(t, "intruder-"+secret)
		cfg.Secret = secret
		cfg.Join = []string{a.GossipAddr()}
		x := startNode(t, cfg)
		testutil.Eventually(t, converge, "intruder tried 3 times", func() error { return attemptsAtLeast(x, 3) })
		if got := names(a.Members()); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Errorf("secret %q: a.Members() = %v, want [a b c]", secret, got)
		}
		if got := names(x.Members()); len(got) != 1 {
			t.Errorf("secret %q: intruder sees %v", secret, got)
		}
	}
}

func TestJoinRetriesUntilSeedAnswers(t *testing.T) {
	a := startNode(t, testConfig(t, "a"))
	proxy := newJoinProxy(t)

	cfg := testConfig(t, "b")
	logger, rec := newTestLogger(t)
	cfg.Logger = logger
	cfg.Join = []string{proxy.addr()}
	b := startNode(t, cfg)

	testutil.Eventually(t, converge, "b retried 3 times", func() error { return attemptsAtLeast(b, 3) })
	if !rec.has("WARN", "join failed", proxy.addr()) {
		t.Error("join failures not logged with the address")
	}
	if got := names(b.Members()); !slices.Equal(got, []string{"b"}) {
		t.Errorf("b.Members() = %v while its seed refuses, want [b]", got)
	}

	proxy.open(a.GossipAddr())
	testutil.Eventually(t, converge, "a and b see each other", func() error { return allAlive([]*Membership{a, b}, "a", "b") })
	// The loop logs "joined cluster" as it returns: no further attempts.
	testutil.Eventually(t, converge, "join loop reported success", func() error { return rec.logged("INFO", "joined cluster") })
	if got := b.joinAttempts.Load(); got < 4 {
		t.Errorf("%d join attempts, want the 3 failures plus the success", got)
	}
}

func TestShutdownInterruptsJoinBackoff(t *testing.T) {
	proxy := newJoinProxy(t)
	cfg := testConfig(t, "b")
	cfg.Join = []string{proxy.addr()}
	cfg.JoinRetryMin, cfg.JoinRetryMax = time.Hour, time.Hour
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Start()
	testutil.Eventually(t, converge, "first join attempt", func() error {
		if got := m.joinAttempts.Load(); got != 1 {
			return fmt.Errorf("%d join attempts, want 1", got)
		}
		return nil
	})

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Shutdown took %s while the join loop slept for an hour", d)
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	m, err := New(testConfig(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	m.Start() // no-op after Shutdown: nothing to leak
	if got := names(m.Members()); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Members() = %v, want [a]", got)
	}
}

func TestGossipAddrIsBoundPort(t *testing.T) {
	m := startNode(t, testConfig(t, "a"))
	if g := m.GossipAddr(); g == "127.0.0.1:0" || g[:10] != "127.0.0.1:" {
		t.Errorf("GossipAddr() = %q, want 127.0.0.1 with the real port", g)
	}
}
