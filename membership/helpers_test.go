package membership

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLog is an slog handler writing to t.Log that also records records, and
// drops whatever memberlist logs after the test has finished.
type testLog struct {
	t     testing.TB
	attrs []slog.Attr
	sh    *testLogShared
}

type testLogShared struct {
	mu      sync.Mutex
	done    bool
	records []string
}

func newTestLogger(t testing.TB) (*slog.Logger, *testLogShared) {
	sh := &testLogShared{}
	t.Cleanup(func() { sh.mu.Lock(); sh.done = true; sh.mu.Unlock() })
	return slog.New(&testLog{t: t, sh: sh}), sh
}

func (h *testLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *testLog) WithGroup(string) slog.Handler            { return h }
func (h *testLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &testLog{t: h.t, sh: h.sh, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *testLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	add := func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true }
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	line := b.String()
	h.sh.mu.Lock()
	defer h.sh.mu.Unlock()
	if h.sh.done {
		return nil
	}
	h.sh.records = append(h.sh.records, line)
	if r.Level >= slog.LevelInfo {
		h.t.Log(line)
	}
	return nil
}

// has reports whether some record contains every one of parts.
func (sh *testLogShared) has(parts ...string) bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, rec := range sh.records {
		if containsAll(rec, parts) {
			return true
		}
	}
	return false
}

// logged is nil when a record contains every one of parts.
func (sh *testLogShared) logged(parts ...string) error {
	if !sh.has(parts...) {
		return fmt.Errorf("no record contains all of %q", parts)
	}
	return nil
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// testConfig is a node on 127.0.0.1:0 with the local profile made fast.
func testConfig(t testing.TB, name string) Config {
	logger, _ := newTestLogger(t)
	c := DefaultConfig()
	c.Name = name
	c.BindAddr = "127.0.0.1:0"
	c.HTTPAddr = "127.0.0.1:8848"
	c.Profile = ProfileLocal
	c.ProbeInterval = 50 * time.Millisecond
	c.ProbeTimeout = 25 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.SuspicionMult = 2
	// Anti-entropy repairs what lost UDP gossip missed (a refutation, say);
	// the local profile's 15 s would outlast the tests' patience.
	c.PushPullInterval = 200 * time.Millisecond
	c.JoinRetryMin = 10 * time.Millisecond
	c.JoinRetryMax = 100 * time.Millisecond
	c.LeaveTimeout = 2 * time.Second
	c.DeadNodeReclaimTime = time.Millisecond
	c.Logger = logger.With("node", name)
	return c
}

// startNode creates and starts a node, shut down when the test ends.
func startNode(t testing.TB, cfg Config) *Membership {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Shutdown(ctx); err != nil {
			t.Logf("shutdown %s: %v", cfg.Name, err)
		}
	})
	m.Start()
	return m
}

// memberState is name's state in m's view, "" when unknown.
func memberState(m *Membership, name string) State {
	for _, mb := range m.Members() {
		if mb.Name == name {
			return mb.State
		}
	}
	return ""
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, mb := range ms {
		out[i] = mb.Name
	}
	return out
}

// allAlive is nil when every node sees exactly want, all alive; otherwise it
// says which node sees what.
func allAlive(nodes []*Membership, want ...string) error {
	for _, n := range nodes {
		ms := n.Members()
		if got := names(ms); !slices.Equal(got, want) {
			return fmt.Errorf("%s sees %v, want %v", n.Local().Name, got, want)
		}
		for _, mb := range ms {
			if mb.State != StateAlive {
				return fmt.Errorf("%s sees %s %s", n.Local().Name, mb.Name, mb.State)
			}
		}
	}
	return nil
}

// hasState is nil when m sees member name in state want.
func hasState(m *Membership, name string, want State) error {
	if got := memberState(m, name); got != want {
		return fmt.Errorf("%s sees %s as %q, want %q", m.Local().Name, name, got, want)
	}
	return nil
}

// attemptsAtLeast is nil once m's join loop has called Join at least min times.
func attemptsAtLeast(m *Membership, min int64) error {
	if got := m.joinAttempts.Load(); got < min {
		return fmt.Errorf("%d join attempts, want at least %d", got, min)
	}
	return nil
}

// joinProxy is a TCP endpoint on 127.0.0.1:0 that a node can be told to join:
// while closed it hangs up on every connection (the join fails); once opened
// it forwards to target, so the join succeeds without any port being freed
// and rebound.
type joinProxy struct {
	ln     net.Listener
	target atomic.Pointer[string]
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	tried  atomic.Int64
}

func newJoinProxy(t testing.TB) *joinProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &joinProxy{ln: ln, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *joinProxy) addr() string       { return p.ln.Addr().String() }
func (p *joinProxy) open(target string) { p.target.Store(&target) }

func (p *joinProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.tried.Add(1)
		target := p.target.Load()
		if target == nil {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", *target)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, up)
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *joinProxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *joinProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}

func (p *joinProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// linkCut is a switch a test flips to cut gossip from the nodes whose
// transports it wraps to certain addresses: packets to them vanish (as UDP
// does in a partition) and TCP dials to them fail; what the other side sends
// is cut by its own linkCut.
type linkCut struct {
	mu      sync.Mutex
	to      map[string]bool // gossip addresses cut
	streams bool            // cut TCP as well as UDP
	dropped atomic.Int64    // packets and dials refused, to show the cut bit
}

func newLinkCut() *linkCut { return &linkCut{to: make(map[string]bool)} }

// cut cuts packets (and, with streams, dials) to addrs; heal restores all.
func (c *linkCut) cut(streams bool, addrs ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streams = streams
	for _, a := range addrs {
		c.to[a] = true
	}
}

func (c *linkCut) heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.to)
}

func (c *linkCut) blocked(addr string, stream bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.to[addr] && (!stream || c.streams) {
		c.dropped.Add(1)
		return true
	}
	return false
}

// install makes cfg's node send through c.
func (c *linkCut) install(cfg *Config) {
	cfg.wrapTransport = func(t memberlist.NodeAwareTransport) memberlist.NodeAwareTransport {
		return &cutTransport{NodeAwareTransport: t, cut: c}
	}
}

type cutTransport struct {
	memberlist.NodeAwareTransport
	cut *linkCut
}

func (t *cutTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *cutTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.cut.blocked(a.Addr, false) {
		return time.Now(), nil // sent, as far as UDP can tell
	}
	return t.NodeAwareTransport.WriteToAddress(b, a)
}

func (t *cutTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *cutTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	if t.cut.blocked(a.Addr, true) {
		return nil, fmt.Errorf("dial %s: link cut by the test", a.Addr)
	}
	return t.NodeAwareTransport.DialAddressTimeout(a, timeout)
}
