package distro

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
)

// countingTransport records which calls reached it; every call succeeds.
type countingTransport struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTransport) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[op]++
}

func (c *countingTransport) count(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

func (c *countingTransport) Push(context.Context, Peer, []Datum) error { c.add("push"); return nil }
func (c *countingTransport) Query(context.Context, Peer, []string) ([]Datum, error) {
	c.add("query")
	return []Datum{{Key: "q", Version: 1}}, nil
}
func (c *countingTransport) Checksum(context.Context, Peer, ChecksumRequest) (ChecksumResponse, error) {
	c.add("checksum")
	return ChecksumResponse{Mismatched: []int{7}}, nil
}
func (c *countingTransport) Snapshot(_ context.Context, _ Peer, fn func(Datum) error) (Origin, error) {
	c.add("snapshot")
	return Origin{Horizon: 1, Lineage: Lineage{1}}, fn(Datum{Key: "s", Version: 1})
}

func TestDropPushesZeroRatioIsTheTransportItself(t *testing.T) {
	inner := &countingTransport{}
	if got := DropPushes(inner, 0, 1); got != Transport(inner) {
		t.Fatalf("DropPushes(ratio 0) = %T, want the inner transport unchanged", got)
	}
	if got := LosePushes(inner, -1, 1); got != Transport(inner) {
		t.Fatalf("LosePushes(ratio -1) = %T, want the inner transport unchanged", got)
	}
}

func TestDropPushesAllFailWithoutSendingOthersPassThrough(t *testing.T) {
	inner := &countingTransport{}
	tr := DropPushes(inner, 1, 42)
	ctx := context.Background()
	p := Peer{Name: "b", Addr: "b:1"}
	for i := 0; i < 50; i++ {
		err := tr.Push(ctx, p, []Datum{{Key: "k", Version: uint64(i + 1)}})
		if !errors.Is(err, ErrPushDropped) {
			t.Fatalf("push %d: err = %v, want ErrPushDropped", i, err)
		}
	}
	if n := inner.count("push"); n != 0 {
		t.Fatalf("%d dropped pushes reached the inner transport, want 0", n)
	}

	if ds, err := tr.Query(ctx, p, []string{"q"}); err != nil || len(ds) != 1 || ds[0].Key != "q" {
		t.Fatalf("query through the wrapper = %v, %v; want the inner answer", ds, err)
	}
	if r, err := tr.Checksum(ctx, p, ChecksumRequest{Source: "a"}); err != nil || len(r.Mismatched) != 1 || r.Mismatched[0] != 7 {
		t.Fatalf("checksum through the wrapper = %v, %v; want the inner answer", r, err)
	}
	var streamed []string
	if _, err := tr.Snapshot(ctx, p, func(d Datum) error { streamed = append(streamed, d.Key); return nil }); err != nil || len(streamed) != 1 {
		t.Fatalf("snapshot through the wrapper streamed %v, %v; want the inner datum", streamed, err)
	}
	for _, op := range []string{"query", "checksum", "snapshot"} {
		if inner.count(op) != 1 {
			t.Fatalf("%s reached the inner transport %d times, want 1", op, inner.count(op))
		}
	}
	pushes, faulted := tr.(*FaultyPushes).Counts()
	if pushes != 50 || faulted != 50 {
		t.Fatalf("counts = %d pushes, %d faulted; want 50, 50", pushes, faulted)
	}
}

func TestLosePushesAnswerSuccessWithoutSending(t *testing.T) {
	inner := &countingTransport{}
	tr := LosePushes(inner, 1, 7)
	for i := 0; i < 20; i++ {
		if err := tr.Push(context.Background(), Peer{Name: "b"}, []Datum{{Key: "k", Version: 1}}); err != nil {
			t.Fatalf("lost push %d returned %v, want nil (a silent loss)", i, err)
		}
	}
	if n := inner.count("push"); n != 0 {
		t.Fatalf("%d lost pushes reached the inner transport, want 0", n)
	}
}

// outcomes runs n pushes through a fresh wrapper and returns which ones were sent.
func outcomes(t *testing.T, ratio float64, seed int64, n int) []bool {
	t.Helper()
	tr := DropPushes(&countingTransport{}, ratio, seed)
	out := make([]bool, n)
	for i := range out {
		err := tr.Push(context.Background(), Peer{Name: "b"}, nil)
		if err != nil && !errors.Is(err, ErrPushDropped) {
			t.Fatalf("push %d: unexpected error %v", i, err)
		}
		out[i] = err == nil
	}
	return out
}

func TestDropPushesShareAndReplayableBySeed(t *testing.T) {
	const n = 4000
	a := outcomes(t, 0.5, 99, n)
	b := outcomes(t, 0.5, 99, n)
	c := outcomes(t, 0.5, 100, n)
	sent, same, differ := 0, true, false
	for i := range a {
		if a[i] {
			sent++
		}
		same = same && a[i] == b[i]
		differ = differ || a[i] != c[i]
	}
	// Binomial(4000, 0.5): σ ≈ 32, so ±200 is over 6σ.
	if sent < n/2-200 || sent > n/2+200 {
		t.Fatalf("ratio 0.5 sent %d of %d pushes, want about half", sent, n)
	}
	if !same {
		t.Fatal("two wrappers with the same seed chose different pushes to drop")
	}
	if !differ {
		t.Fatal("seeds 99 and 100 dropped exactly the same pushes")
	}
	for _, r := range []float64{0.1, 0.9} {
		kept := 0
		for _, ok := range outcomes(t, r, 5, n) {
			if ok {
				kept++
			}
		}
		want := int(float64(n) * (1 - r))
		if kept < want-150 || kept > want+150 {
			t.Fatalf("ratio %.1f sent %d of %d, want about %d", r, kept, n, want)
		}
	}
}

func TestDropPushesConcurrentUse(t *testing.T) {
	inner := &countingTransport{}
	tr := DropPushes(inner, 0.3, 3)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_ = tr.Push(context.Background(), Peer{Name: "b"}, nil)
			}
		}()
	}
	wg.Wait()
	pushes, faulted := tr.(*FaultyPushes).Counts()
	if pushes != 1600 || int64(inner.count("push")) != pushes-faulted {
		t.Fatalf("counts %d pushes, %d faulted, %d sent; want 1600 = faulted + sent", pushes, faulted, inner.count("push"))
	}
}

// TestVerifyAloneRepairsLostPushes: every push of the owner is lost (answered
// OK, never delivered), so the peer learns of a write and of a deletion only
// through the owner's verify round.
func TestVerifyAloneRepairsLostPushes(t *testing.T) {
	net := newFakeNet()
	names := []string{"a", "b"}
	engines := map[string]*Engine{}
	stores := map[string]*MemStore{}
	c := &testCluster{t: t, net: net, partitions: 16}
	for _, name := range names {
		cfg := testConfig(t)
		st := NewMemStore()
		var tr Transport = &fakeTransport{net: net, from: name}
		if name == "a" {
			tr = LosePushes(tr, 1, 1)
		}
		e, err := New(cfg, st, tr)
		if err != nil {
			t.Fatalf("new engine %s: %v", name, err)
		}
		engines[name], stores[name] = e, st
		net.mu.Lock()
		net.nodes[name] = e
		net.mu.Unlock()
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", name, err)
			}
		})
	}
	c.engines, c.stores = engines, stores
	for _, name := range names {
		engines[name].SetTopology(c.topo(name, names, names))
		engines[name].Start()
	}
	key := keyOwnedBy(t, "svc", map[*hashring.Ring]string{c.ring(names...): "a"})

	c.write("a", key, "v1")
	engines["a"].SyncNow()
	if got := c.value("b", key); got != "" {
		t.Fatalf("b has %q after a lost push, want nothing yet", got)
	}
	if n := net.count("push", "b"); n != 0 {
		t.Fatalf("%d pushes reached b, want 0 (all lost)", n)
	}
	if err := engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got := c.value("b", key); got != "v1" {
		t.Fatalf("b has %q after verify, want v1", got)
	}

	c.remove("a", key)
	engines["a"].SyncNow()
	if got := c.value("b", key); got != "v1" {
		t.Fatalf("b has %q after a lost deletion push, want still v1", got)
	}
	if err := engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if got := c.value("b", key); got != "" {
		t.Fatalf("b has %q after verify of the deletion, want it gone", got)
	}
}
