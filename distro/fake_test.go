package distro

import (
	"context"
	"encoding/json"

	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
)

// fault is what the fake network does to one kind of request to one address.
type fault struct {
	fail  bool          // the request returns an error, nothing delivered
	drop  bool          // a push is answered OK but never delivered
	block chan struct{} // the request waits until this closes (or its ctx ends)
}

// fakeNet wires engines together in-process: a Transport per node that calls
// the target engine's Handle* methods directly, with per-address faults and counters.
type fakeNet struct {
	mu      sync.Mutex
	nodes   map[string]*Engine // by address
	faults  map[string]fault   // by op+" "+addr
	calls   map[string]int     // by op+" "+addr, faulted calls included
	batches map[string][][]Datum
	// checksumBytes counts the JSON encoding of verify requests by source and phase (1 or 2).
	checksumBytes map[string]map[int]int
}

func newFakeNet() *fakeNet {
	return &fakeNet{
		nodes: map[string]*Engine{}, faults: map[string]fault{}, calls: map[string]int{},
		batches: map[string][][]Datum{}, checksumBytes: map[string]map[int]int{},
	}
}

func (n *fakeNet) setFault(op, addr string, f fault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if f == (fault{}) {
		delete(n.faults, op+" "+addr)
		return
	}
	n.faults[op+" "+addr] = f
}

func (n *fakeNet) count(op, addr string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls[op+" "+addr]
}

// callsAtLeast is nil once at least min op requests went to addr.
func (n *fakeNet) callsAtLeast(op, addr string, min int) error {
	if got := n.count(op, addr); got < min {
		return fmt.Errorf("%d %s requests to %s, want at least %d", got, op, addr, min)
	}
	return nil
}

// callsExactly is nil while exactly want op requests have gone to addr.
func (n *fakeNet) callsExactly(op, addr string, want int) error {
	if got := n.count(op, addr); got != want {
		return fmt.Errorf("%d %s requests to %s, want %d", got, op, addr, want)
	}
	return nil
}

func (n *fakeNet) pushed(addr string) [][]Datum {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]Datum(nil), n.batches[addr]...)
}

func (n *fakeNet) verifyBytes(from string, phase int) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.checksumBytes[from][phase]
}

// enter records a call and applies the fault; it returns the target or an error.
func (n *fakeNet) enter(ctx context.Context, op, addr string) (*Engine, bool, error) {
	n.mu.Lock()
	n.calls[op+" "+addr]++
	f := n.faults[op+" "+addr]
	target := n.nodes[addr]
	n.mu.Unlock()
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return nil, false, ctx.Err()
		}
	}
	if f.fail {
		return nil, false, fmt.Errorf("fake %s to %s: injected failure", op, addr)
	}
	if target == nil {
		return nil, false, fmt.Errorf("fake %s to %s: no such address", op, addr)
	}
	return target, f.drop, nil
}

type fakeTransport struct {
	net  *fakeNet
	from string
}

func (t *fakeTransport) Push(ctx context.Context, to Peer, batch []Datum) error {
	target, drop, err := t.net.enter(ctx, "push", to.Addr)
	if err != nil || drop {
		return err
	}
	t.net.mu.Lock()
	t.net.batches[to.Addr] = append(t.net.batches[to.Addr], append([]Datum(nil), batch...))
	t.net.mu.Unlock()
	return target.HandlePush(batch)
}

func (t *fakeTransport) Query(ctx context.Context, to Peer, keys []string) ([]Datum, error) {
	target, _, err := t.net.enter(ctx, "query", to.Addr)
	if err != nil {
		return nil, err
	}
	return target.HandleQuery(keys), nil
}

func (t *fakeTransport) Checksum(ctx context.Context, to Peer, req ChecksumRequest) (ChecksumResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ChecksumResponse{}, err
	}
	phase := 1
	if len(req.Partitions) > 0 {
		phase = 2
	}
	t.net.mu.Lock()
	if t.net.checksumBytes[t.from] == nil {
		t.net.checksumBytes[t.from] = map[int]int{}
	}
	t.net.checksumBytes[t.from][phase] += len(body)
	t.net.mu.Unlock()
	target, _, err := t.net.enter(ctx, "checksum", to.Addr)
	if err != nil {
		return ChecksumResponse{}, err
	}
	var decoded ChecksumRequest // what a real receiver sees: no shared maps
	if err := json.Unmarshal(body, &decoded); err != nil {
		return ChecksumResponse{}, err
	}
	return target.HandleChecksum(ctx, decoded)
}

func (t *fakeTransport) Snapshot(ctx context.Context, from Peer, fn func(Datum) error) (Origin, error) {
	target, _, err := t.net.enter(ctx, "snapshot", from.Addr)
	if err != nil {
		return Origin{}, err
	}
	o := target.Origin()
	return o, target.HandleSnapshot(fn)
}

// setOrigin replaces e's horizon and lineage, as a load would.
func setOrigin(e *Engine, o Origin) {
	e.mu.Lock()
	e.horizon, e.lineage = o.Horizon, o.Lineage
	e.mu.Unlock()
}

// testLineage is the lineage of every test cluster's first nodes.
var testLineage = Lineage{1}

// testCluster is a set of engines on one fake network, each with a MemStore.
type testCluster struct {
	t          *testing.T
	net        *fakeNet
	partitions int
	engines    map[string]*Engine
	stores     map[string]*MemStore
}

// testConfig drives the protocol by hand: pushes wait for SyncNow (or a retry),
// verify waits for VerifyOnce, and every node is loaded at once.
func testConfig(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.SyncDelay = time.Hour
	cfg.SyncRetryDelay = time.Millisecond
	cfg.SyncRetryMax = 10 * time.Millisecond
	cfg.VerifyInterval = time.Hour
	cfg.TombstoneTTL = 3 * time.Hour
	cfg.SnapshotRetryMin = time.Millisecond
	cfg.SnapshotRetryMax = 5 * time.Millisecond
	cfg.RemoveGrace = 0
	cfg.Standalone = true
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	return cfg
}

// newCluster builds, connects and starts one engine per name; mod adjusts each config.
func newCluster(t *testing.T, partitions int, names []string, mod func(name string, cfg *Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, net: newFakeNet(), partitions: partitions, engines: map[string]*Engine{}, stores: map[string]*MemStore{}}
	for _, name := range names {
		c.add(name, func(cfg *Config) {
			if mod != nil {
				mod(name, cfg)
			}
		})
	}
	for _, name := range names {
		c.engines[name].SetTopology(c.topo(name, names, names))
	}
	for _, name := range names {
		c.engines[name].Start()
	}
	return c
}

// add builds one engine on the network without a topology and without starting it.
func (c *testCluster) add(name string, mod func(cfg *Config)) *Engine {
	t := c.t
	t.Helper()
	cfg := testConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	st := NewMemStore()
	e, err := New(cfg, st, &fakeTransport{net: c.net, from: name})
	if err != nil {
		t.Fatalf("new engine %s: %v", name, err)
	}
	// Tests write datums with small versions: the test cluster's nodes are the
	// cluster's first ones, of one lineage, complete from the beginning of time.
	if e.Loaded() {
		setOrigin(e, Origin{Lineage: testLineage})
	}
	c.engines[name], c.stores[name] = e, st
	c.net.mu.Lock()
	c.net.nodes[name] = e
	c.net.mu.Unlock()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
	})
	return e
}

// topo is self's view: every other name in peers is alive and ready, the ring is over members.
func (c *testCluster) topo(self string, peers, members []string) Topology {
	t := Topology{Self: self}
	for _, p := range peers {
		if p != self {
			t.Peers = append(t.Peers, Peer{Name: p, Addr: p})
			t.Ready = append(t.Ready, Peer{Name: p, Addr: p})
		}
	}
	if len(members) > 0 {
		t.Ring = c.ring(members...)
	}
	return t
}

func (c *testCluster) ring(members ...string) *hashring.Ring {
	r, err := hashring.New(c.partitions, members)
	if err != nil {
		c.t.Fatalf("ring %v: %v", members, err)
	}
	return r
}

// write applies a new version of key on node and marks it, as the daemon does.
func (c *testCluster) write(node, key, value string) Datum {
	d := Datum{Key: key, Value: []byte(value), Version: c.engines[node].Clock().Next()}
	if !c.stores[node].Apply(d) {
		c.t.Fatalf("write %s on %s: not applied", key, node)
	}
	c.engines[node].Changed(key)
	return d
}

// remove tombstones key on node and marks it.
func (c *testCluster) remove(node, key string) Datum {
	d := Datum{Key: key, Version: c.engines[node].Clock().Next(), Deleted: true}
	if !c.stores[node].Apply(d) {
		c.t.Fatalf("delete %s on %s: not applied", key, node)
	}
	c.engines[node].Changed(key)
	return d
}

// value is key's live value on node, or "" when missing or deleted.
func (c *testCluster) value(node, key string) string {
	d, ok := c.stores[node].Get(key)
	if !ok || d.Deleted {
		return ""
	}
	return string(d.Value)
}

// valueIs is nil when node holds want under key.
func (c *testCluster) valueIs(node, key, want string) error {
	if got := c.value(node, key); got != want {
		return fmt.Errorf("%s holds %s=%q, want %q", node, key, got, want)
	}
	return nil
}

// keyOwnedBy finds a key with prefix whose owner is owner in every given ring.
func keyOwnedBy(t *testing.T, prefix string, owners map[*hashring.Ring]string) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		k := fmt.Sprintf("%s-%d", prefix, i)
		ok := true
		for r, o := range owners {
			if r.OwnerOf(k) != o {
				ok = false
				break
			}
		}
		if ok {
			return k
		}
	}
	t.Fatalf("no key with prefix %s has owners %v", prefix, owners)
	return ""
}
