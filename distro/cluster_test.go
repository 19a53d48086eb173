package distro

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/internal/testutil"
)

// In-process clusters over real HTTP: each node is an Engine with a MemStore,
// a fasthttp server on 127.0.0.1:0 serving its peer endpoints, and a Client
// as its transport. The test plays membership: it hands every node the view.

const clSecret = "cluster-secret"

type clNode struct {
	name   string
	addr   string
	eng    *Engine
	store  *MemStore
	client *Client
	down   bool
	stop   func()
}

type clCluster struct {
	t          testing.TB
	partitions int
	mod        func(*Config)
	wrap       func(name string, s *MemStore) Store // the engine's view of the store (nil = s)
	mu         sync.Mutex
	nodes      map[string]*clNode
}

// clConfig runs the protocol on its own, fast: pushes go out at once, verify
// runs every 200 ms, snapshot loads retry within 100 ms.
func clConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.SyncDelay = time.Millisecond
	cfg.SyncRetryDelay = 10 * time.Millisecond
	cfg.SyncRetryMax = 100 * time.Millisecond
	cfg.VerifyInterval = 200 * time.Millisecond
	cfg.TombstoneTTL = time.Minute
	cfg.SnapshotRetryMin = 10 * time.Millisecond
	cfg.SnapshotRetryMax = 100 * time.Millisecond
	cfg.RequestTimeout = 2 * time.Second
	cfg.RemoveGrace = 0
	cfg.Logger = clSlog(t)
	return cfg
}

func clSlog(t testing.TB) *slog.Logger {
	w := &htWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func newCLCluster(t testing.TB, partitions int, mod func(*Config)) *clCluster {
	return &clCluster{t: t, partitions: partitions, mod: mod, nodes: map[string]*clNode{}}
}

// start runs a node named name with an empty store, replacing a stopped node
// of that name. A standalone node is loaded at once; otherwise it loads a
// snapshot from the ready peers of the view it is given.
func (c *clCluster) start(name string, standalone bool) *clNode {
	t := c.t
	t.Helper()
	cfg := clConfig(t)
	cfg.Standalone = standalone
	if c.mod != nil {
		c.mod(&cfg)
	}
	store := NewMemStore()
	client := NewClient(ClientConfig{Secret: clSecret, Timeout: 2 * time.Second, MaxIdleConnDuration: time.Second})
	var es Store = store
	if c.wrap != nil {
		es = c.wrap(name, store)
	}
	eng, err := New(cfg, es, client)
	if err != nil {
		t.Fatalf("new engine %s: %v", name, err)
	}
	addr, stopServer := htStart(t, eng.HTTPHandler(HTTPConfig{Secret: clSecret, Logger: cfg.Logger}), http.StatusNotFound)
	n := &clNode{name: name, addr: addr, eng: eng, store: store, client: client}
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := eng.Shutdown(ctx); err != nil {
				t.Errorf("shutdown engine %s: %v", name, err)
			}
			stopServer()
			client.Close()
		})
	}
	t.Cleanup(n.stop)

	c.mu.Lock()
	c.nodes[name] = n
	c.mu.Unlock()
	c.applyTopology()
	eng.Start()
	return n
}

// kill stops a node; the others keep it in their view (its old address),
// as gossip would until it notices, so their pushes to it fail and retry.
func (c *clCluster) kill(name string) {
	c.mu.Lock()
	n := c.nodes[name]
	n.down = true
	c.mu.Unlock()
	n.stop()
}

// applyTopology hands every running node the current view: peers are all
// other nodes, ready ones are those loaded, the ring is over the loaded nodes.
func (c *clCluster) applyTopology() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ready []string
	for name, n := range c.nodes {
		if n.down || n.eng.Loaded() {
			ready = append(ready, name) // a dead node stays ready until "gossip" notices
		}
	}
	sort.Strings(ready)
	var ring *hashring.Ring
	if len(ready) > 0 {
		r, err := hashring.New(c.partitions, ready)
		if err != nil {
			c.t.Fatalf("ring: %v", err)
		}
		ring = r
	}
	for name, n := range c.nodes {
		if n.down {
			continue
		}
		topo := Topology{Self: name, Ring: ring}
		for other, o := range c.nodes {
			if other == name {
				continue
			}
			p := Peer{Name: other, Addr: o.addr}
			topo.Peers = append(topo.Peers, p)
			if o.down || o.eng.Loaded() {
				topo.Ready = append(topo.Ready, p)
			}
		}
		n.eng.SetTopology(topo)
	}
}

func (c *clCluster) node(name string) *clNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

func (c *clCluster) live() []*clNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*clNode
	for _, n := range c.nodes {
		if !n.down {
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// write is a local write as the daemon does it: apply a new version, then mark.
func (c *clCluster) write(name, key, value string) {
	n := c.node(name)
	n.store.Apply(Datum{Key: key, Value: []byte(value), Version: n.eng.Clock().Next()})
	n.eng.Changed(key)
}

// converged reports whether every running node is loaded and has wantKeys
// live keys and the same digest.
func (c *clCluster) converged(wantKeys int) bool {
	digest := ""
	for _, n := range c.live() {
		st := n.eng.Status()
		if !st.Ready || st.Keys != wantKeys {
			return false
		}
		if digest == "" {
			digest = st.Digest
		} else if st.Digest != digest {
			return false
		}
	}
	return true
}

func (c *clCluster) describe() string {
	s := ""
	for _, n := range c.live() {
		st := n.eng.Status()
		s += fmt.Sprintf(" %s(ready=%v keys=%d digest=%s pending=%v)", n.name, st.Ready, st.Keys, st.Digest, st.PendingPushes)
	}
	return s
}

func (c *clCluster) waitConverged(wantKeys int, timeout time.Duration) {
	c.t.Helper()
	testutil.Eventually(c.t, timeout, fmt.Sprintf("converge on %d keys", wantKeys), func() error {
		if !c.converged(wantKeys) {
			return fmt.Errorf("not converged:%s", c.describe())
		}
		return nil
	})
}

// owner is the node responsible for key under the current ring of n.
func (c *clCluster) ownerOf(key string, names []string) string {
	r, err := hashring.New(c.partitions, names)
	if err != nil {
		c.t.Fatal(err)
	}
	return r.Owner(r.Partition(key))
}

func TestClusterConcurrentWritesConverge(t *testing.T) {
	c := newCLCluster(t, 256, nil)
	names := []string{"n1", "n2", "n3"}
	for _, name := range names {
		c.start(name, true)
	}
	const perNode, shared = 200, 20
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			for i := range perNode {
				c.write(name, fmt.Sprintf("%s-key-%d", name, i), fmt.Sprintf("v%d", i))
				if i%10 == 0 { // every node also writes the same shared keys
					c.write(name, fmt.Sprintf("shared-%d", i/10), name)
				}
			}
		})
	}
	wg.Wait()
	c.waitConverged(len(names)*perNode+shared, 15*time.Second)
	for _, n := range c.live() {
		if st := n.client.Stats(); st.Push.Calls == 0 || st.Push.BytesSent == 0 {
			t.Errorf("%s pushed nothing over HTTP: %+v", n.name, st.Push)
		}
	}
}

func TestClusterLateNodeLoadsSnapshot(t *testing.T) {
	c := newCLCluster(t, 256, nil)
	c.start("n1", true)
	c.start("n2", true)
	const keys = 500
	for i := range keys {
		c.write([]string{"n1", "n2"}[i%2], fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i))
	}
	c.waitConverged(keys, 10*time.Second)

	n3 := c.start("n3", false)
	testutil.Eventually(t, 10*time.Second, "n3 did not load a snapshot", func() error { return loaded(n3.eng) })
	if n3.store.Len() < keys {
		t.Fatalf("n3 loaded %d datums, want at least %d", n3.store.Len(), keys)
	}
	if st := n3.client.Stats().Snapshot; st.Calls == 0 || st.BytesReceived < keys*10 {
		t.Fatalf("n3 snapshot stats %+v", st)
	}
	c.applyTopology() // n3 is ready now and enters the ring
	c.write("n1", "after-join", "x")
	c.waitConverged(keys+1, 10*time.Second)
}

func TestClusterRestartedNodeConverges(t *testing.T) {
	c := newCLCluster(t, 256, nil)
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name, true)
	}
	const total = 400
	phase := make(chan int)
	resume := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := range total {
			if i == 100 || i == 200 {
				phase <- i
				<-resume
			}
			c.write([]string{"n1", "n2"}[i%2], fmt.Sprintf("key-%d", i), fmt.Sprintf("value-%d", i))
		}
	}()

	<-phase // pushes of the first 100 keys are in flight
	c.kill("n3")
	resume <- struct{}{}
	<-phase // 100 keys were written while n3 was down; pushes to it failed
	n3 := c.start("n3", false)
	resume <- struct{}{} // keep writing while n3 loads
	testutil.Eventually(t, 10*time.Second, "restarted n3 did not load a snapshot", func() error { return loaded(n3.eng) })
	c.applyTopology()
	<-writerDone
	c.waitConverged(total, 15*time.Second)
	if st := n3.client.Stats().Snapshot; st.Calls == 0 {
		t.Fatal("restarted n3 converged without a snapshot")
	}
}

// clSteady builds a 3-node cluster over DefaultPartitions whose nodes all
// hold the same keys keys; verify runs only when the test asks.
func clSteady(t testing.TB, keys int) *clCluster {
	c := newCLCluster(t, hashring.DefaultPartitions, func(cfg *Config) {
		cfg.VerifyInterval = time.Hour
		cfg.TombstoneTTL = 3 * time.Hour
	})
	for _, name := range []string{"n1", "n2", "n3"} {
		c.start(name, true)
	}
	// Put the datums in place directly: pushes are not what this measures.
	version := c.node("n1").eng.Clock().Next()
	for i := range keys {
		d := Datum{Key: clKey(i), Version: version + uint64(i),
			Value: fmt.Appendf(nil, `{"hosts":[{"ip":"10.0.%d.%d","port":8080}]}`, i/256%256, i%256)}
		for _, n := range c.live() {
			n.store.Apply(d)
			n.eng.Clock().Observe(d.Version)
		}
	}
	c.waitConverged(keys, 10*time.Second)
	return c
}

func clKey(i int) string { return fmt.Sprintf("public##DEFAULT_GROUP@@service-%06d", i) }

// diverge changes count of the keys on their owner without marking them, so
// only verify can carry the change.
func (c *clCluster) diverge(keys, count int, round int) {
	names := []string{"n1", "n2", "n3"}
	for i := range count {
		k := clKey(i * (keys / max(count, 1)))
		n := c.node(c.ownerOf(k, names))
		n.store.Apply(Datum{Key: k, Value: fmt.Appendf(nil, "changed-%d", round), Version: n.eng.Clock().Next()})
	}
}

// verifyRound runs one verify round on every node and returns the verify
// traffic (checksums and the queries they triggered) of all clients.
func (c *clCluster) verifyRound(t testing.TB) (total CallStats, perNode map[string]CallStats) {
	before := map[string]ClientStats{}
	for _, n := range c.live() {
		before[n.name] = n.client.Stats()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range c.live() {
		if err := n.eng.VerifyOnce(ctx); err != nil {
			t.Fatalf("verify on %s: %v", n.name, err)
		}
	}
	perNode = map[string]CallStats{}
	for _, n := range c.live() {
		d := n.client.Stats().Sub(before[n.name]).Verify()
		perNode[n.name] = d
		total.Calls += d.Calls
		total.Errors += d.Errors
		total.BytesSent += d.BytesSent
		total.BytesReceived += d.BytesReceived
	}
	return total, perNode
}

func TestClusterVerifyTrafficDoesNotGrowWithKeys(t *testing.T) {
	small, _ := clSteady(t, 10).verifyRound(t)
	large, perNode := clSteady(t, 10000).verifyRound(t)
	t.Logf("one verify round, 3 nodes: 10 keys %d bytes (%d calls), 10 000 keys %d bytes (%d calls); per node %+v",
		small.Bytes(), small.Calls, large.Bytes(), large.Calls, perNode)
	if small.Bytes() == 0 || small.Errors != 0 || large.Errors != 0 {
		t.Fatalf("verify rounds: small %+v large %+v", small, large)
	}
	if large.Calls != 6 {
		t.Fatalf("steady round made %d calls, want 6 (one digest exchange per ordered pair)", large.Calls)
	}
	if large.Bytes() > 2*small.Bytes() {
		t.Fatalf("steady verify bytes grew with keys: %d for 10 keys, %d for 10 000", small.Bytes(), large.Bytes())
	}
}

// A change that no push carried is repaired by one verify round over HTTP.
func TestClusterVerifyRepairsUnpushedChanges(t *testing.T) {
	const keys, differing = 1000, 10
	c := clSteady(t, keys)
	c.diverge(keys, differing, 1)
	if c.converged(keys) {
		t.Fatal("cluster converged before verify: diverge did nothing")
	}
	traffic, _ := c.verifyRound(t)
	c.waitConverged(keys, 10*time.Second)
	if traffic.Calls <= 6 {
		t.Fatalf("repair round made %d calls, want key checksums and queries beyond the 6 digest exchanges", traffic.Calls)
	}
}
