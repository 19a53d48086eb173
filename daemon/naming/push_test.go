package naming

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

// udpClient is a test's push receiver on 127.0.0.1.
type udpClient struct {
	t    *testing.T
	conn *net.UDPConn
}

func newUDPClient(t *testing.T) *udpClient {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("listen udp: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t: t, conn: conn}
}

func (c *udpClient) port() int { return c.conn.LocalAddr().(*net.UDPAddr).Port }

type pushMsg struct {
	Type        string `json:"type"`
	Data        string `json:"data"`
	LastRefTime int64  `json:"lastRefTime"`
	raw         []byte
	from        *net.UDPAddr
	gzipped     bool
}

// read waits (bounded by a socket deadline) for one push and decodes it like nacos-sdk-go.
func (c *udpClient) read() pushMsg {
	c.t.Helper()
	buf := make([]byte, 64*1024)
	if err := c.conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		c.t.Fatal(err)
	}
	n, from, err := c.conn.ReadFromUDP(buf)
	if err != nil {
		c.t.Fatalf("no push received: %v", err)
	}
	m := pushMsg{raw: append([]byte(nil), buf[:n]...), from: from}
	data := m.raw
	if len(data) > 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			c.t.Fatalf("gzip: %v", err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			c.t.Fatalf("gunzip: %v", err)
		}
		m.gzipped = true
	}
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("push %q: %v", data, err)
	}
	return m
}

// ack answers a push the way nacos-sdk-go's push receiver does.
func (c *udpClient) ack(m pushMsg) {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"type": "push-ack", "lastRefTime": fmt.Sprint(m.LastRefTime), "data": ""})
	if _, err := c.conn.WriteToUDP(b, m.from); err != nil {
		c.t.Fatalf("ack: %v", err)
	}
}

// acked is nil once no push awaits its ack.
func acked(r *Registry) error {
	if n := r.push.pendingCount(); n != 0 {
		return fmt.Errorf("%d pushes await an ack", n)
	}
	return nil
}

func newPushRegistry(t *testing.T, cfgFn func(*Config)) *Registry {
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) {
		c.UDPAddr = "127.0.0.1:0"
		if cfgFn != nil {
			cfgFn(c)
		}
	})
	r.Start()
	return r
}

// newClockedPushRegistry is newPushRegistry on a fake clock that only the
// test moves. Jumps of the clock are not stalls, and no instance expires, so
// every push the test reads is caused by the test's own writes.
func newClockedPushRegistry(t *testing.T, cfgFn func(*Config)) (*Registry, *fakeClock) {
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) {
		c.UDPAddr = "127.0.0.1:0"
		c.StallThreshold = 24 * time.Hour
		c.BeatTimeout, c.DeleteTimeout = 24*time.Hour, 24*time.Hour
		if cfgFn != nil {
			cfgFn(c)
		}
	})
	clk := withClock(r)
	r.Start()
	return r, clk
}

// registerHost registers 10.0.0.i:80 in svc, a change pushed to its subscribers.
func registerHost(t *testing.T, r *Registry, i int) {
	t.Helper()
	mustOK(t, r, "POST", fmt.Sprintf("%s/instance?serviceName=svc&ip=10.0.0.%d&port=80", ns, i), "")
}

func subscribe(t *testing.T, r *Registry, c *udpClient, extra string) {
	t.Helper()
	raw := mustOK(t, r, "GET", fmt.Sprintf("%s/instance/list?serviceName=DEFAULT_GROUP@@svc&clusters=&udpPort=%d%s", ns, c.port(), extra), "")
	if got := decodeJSON[sdkService](t, raw).CacheMillis; got != pushCacheMillis {
		t.Fatalf("subscribed list has cacheMillis %d", got)
	}
}

func TestPushOnChangeAndAck(t *testing.T) {
	r := newPushRegistry(t, nil)
	c := newUDPClient(t)
	subscribe(t, r, c, "")

	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	m := c.read()
	if m.Type != "dom" || m.LastRefTime == 0 || m.gzipped {
		t.Fatalf("push: %+v", m)
	}
	svc := decodeJSON[sdkService](t, []byte(m.Data))
	if svc.Name != "DEFAULT_GROUP@@svc" || svc.Clusters != "" || len(svc.Hosts) != 1 || svc.Hosts[0].IP != "10.0.0.1" || svc.CacheMillis != pushCacheMillis {
		t.Fatalf("pushed service: %+v", svc)
	}
	if m.from.String() != r.PushAddr().String() {
		t.Fatalf("push came from %v, not the push socket %v", m.from, r.PushAddr())
	}
	c.ack(m)
	testutil.Eventually(t, 5*time.Second, "the ack to be matched", func() error { return acked(r) })

	// A change that arrives by replication is pushed too.
	other := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, other, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	d, _ := other.Get(svcKey)
	if !r.Apply(d) {
		t.Fatalf("apply changed nothing")
	}
	m = c.read()
	if got := len(decodeJSON[sdkService](t, []byte(m.Data)).Hosts); got != 2 {
		t.Fatalf("pushed after replication: %d hosts", got)
	}
	c.ack(m)
	testutil.Eventually(t, 5*time.Second, "the second ack", func() error { return acked(r) })
}

func TestPushRetransmitsOnceAndGzipsLargePayloads(t *testing.T) {
	r := newPushRegistry(t, func(c *Config) { c.PushAckTimeout = time.Hour }) // only the test retransmits
	c := newUDPClient(t)
	subscribe(t, r, c, "")
	big := strings.Repeat("x", 1500)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata=k="+big, "")
	first := c.read()
	if !first.gzipped {
		t.Fatalf("a %d-byte payload was not gzipped", len(first.Data))
	}
	if got := decodeJSON[sdkService](t, []byte(first.Data)).Hosts[0].Metadata["k"]; got != big {
		t.Fatalf("metadata lost in the gzipped push")
	}

	now := time.Now()
	r.push.retransmitOnce(now.Add(2 * time.Hour))
	again := c.read()
	if !bytes.Equal(again.raw, first.raw) {
		t.Fatalf("retransmission differs from the original push")
	}
	r.push.retransmitOnce(now.Add(4 * time.Hour)) // no ack after the retransmission: give up
	if n := r.push.pendingCount(); n != 0 {
		t.Fatalf("%d pushes still pending after giving up", n)
	}
	// The subscription expired (no refresh for longer than SubscriberTTL).
	if n := r.push.subscriberCount(); n != 0 {
		t.Fatalf("%d subscribers after the TTL", n)
	}
}

func TestPushTargetTrustsClientIPOnlyWhenConfigured(t *testing.T) {
	if DefaultConfig().PushTrustClientIP {
		t.Fatalf("trusting clientIP must be opt-in: a registry must not become a UDP reflector")
	}
	for _, trust := range []bool{false, true} {
		r := newPushRegistry(t, func(c *Config) { c.PushTrustClientIP = trust })
		callFrom(t, r, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5555}, "GET",
			ns+"/instance/list?serviceName=svc&udpPort=40001&clientIP=192.0.2.7", "")
		var addrs []string
		r.push.mu.Lock()
		for _, s := range r.push.subs {
			addrs = append(addrs, s.addr.String())
		}
		r.push.mu.Unlock()
		want := "127.0.0.1:40001"
		if trust {
			want = "192.0.2.7:40001"
		}
		if len(addrs) != 1 || addrs[0] != want {
			t.Errorf("trust=%v: subscribers %v, want [%s]", trust, addrs, want)
		}
	}
}

func TestPushIgnoresForeignAcks(t *testing.T) {
	r := newPushRegistry(t, func(c *Config) { c.PushAckTimeout = time.Hour })
	c := newUDPClient(t)
	subscribe(t, r, c, "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	m := c.read()
	stranger := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: c.port() + 1}
	ack := []byte(fmt.Sprintf(`{"type":"push-ack","lastRefTime":"%d"}`, m.LastRefTime))
	if r.push.handleAck(ack, stranger) {
		t.Fatalf("an ack from another address was accepted")
	}
	if r.push.handleAck([]byte("garbage"), m.from) {
		t.Fatalf("garbage accepted as an ack")
	}
	if !r.push.handleAck(ack, c.conn.LocalAddr().(*net.UDPAddr)) {
		t.Fatalf("the subscriber's own ack was refused")
	}
}

// Past MaxSubscribers a list query is answered without subscribing: memory
// stays bounded and the client is told to poll (the short cacheMillis).
func TestSubscribersAreCapped(t *testing.T) {
	r := newPushRegistry(t, func(c *Config) { c.MaxSubscribers = 1 })
	a, b := newUDPClient(t), newUDPClient(t)
	subscribe(t, r, a, "")
	raw := mustOK(t, r, "GET", fmt.Sprintf("%s/instance/list?serviceName=DEFAULT_GROUP@@svc&clusters=&udpPort=%d", ns, b.port()), "")
	if got := decodeJSON[sdkService](t, raw).CacheMillis; got != defaultCacheMillis {
		t.Fatalf("list past the cap has cacheMillis %d, want the polling %d", got, defaultCacheMillis)
	}
	if n := r.push.subscriberCount(); n != 1 {
		t.Fatalf("%d subscribers, want the cap of 1", n)
	}
	subscribe(t, r, a, "") // refreshing an existing subscription still works at the cap
}

// sdkRefreshGap is the longest time nacos-sdk-go v1.1.6 goes without a list
// query after a push: it re-queries once cacheMillis passed since its last
// update (a push counts), checked by a 1 s ticker (host_reactor.go
// asyncUpdateService), plus the query's own latency.
const sdkRefreshGap = pushCacheMillis*time.Millisecond + 1500*time.Millisecond

// Regression: a subscription lapsed 10 s after its last query, while
// nacos-sdk-go v1.1.6 queries again only 10-11 s after its last push, so the
// next change was not pushed. A subscriber that acks pushes stays subscribed
// across that gap, even when (pushes coming more often than cacheMillis) it
// never queries again: here 4 gaps, longer than SubscriberTTL itself.
func TestSubscriptionDoesNotLapseBetweenSDKRefreshes(t *testing.T) {
	r, clk := newClockedPushRegistry(t, func(c *Config) { c.PushAckTimeout = time.Hour })
	c := newUDPClient(t)
	subscribe(t, r, c, "") // the client's only query
	var silent time.Duration
	for i := 1; i <= 4; i++ {
		clk.Advance(sdkRefreshGap)
		silent += sdkRefreshGap
		r.push.retransmitOnce(clk.Now()) // an expiry round at the new time
		if n := r.push.subscriberCount(); n != 1 {
			t.Fatalf("%d subscribers %v after the client's last query (acking every push): the subscription lapsed", n, silent)
		}
		registerHost(t, r, i)
		m := c.read()
		if got := len(decodeJSON[sdkService](t, []byte(m.Data)).Hosts); got != i {
			t.Fatalf("push %d has %d hosts", i, got)
		}
		c.ack(m)
		testutil.Eventually(t, 5*time.Second, "the ack to be matched", func() error { return acked(r) })
	}
	if silent <= r.cfg.SubscriberTTL {
		t.Fatalf("the test must outlast SubscriberTTL %v to show that acks renew (it ran %v)", r.cfg.SubscriberTTL, silent)
	}
}

// A client that went away (no queries, no acks: its pushes go unanswered)
// still expires, SubscriberTTL after its last query; until then it stays
// subscribed even if one of its refreshes (a query 10-11 s after the last)
// was lost.
func TestSilentSubscriberExpires(t *testing.T) {
	r, clk := newClockedPushRegistry(t, func(c *Config) { c.PushAckTimeout = time.Hour })
	ttl := r.cfg.SubscriberTTL
	c := newUDPClient(t)
	subscribe(t, r, c, "")
	registerHost(t, r, 1)
	c.read() // never acked

	clk.Advance(2 * sdkRefreshGap)
	r.push.retransmitOnce(clk.Now())
	if n := r.push.subscriberCount(); n != 1 {
		t.Fatalf("%d subscribers %v after the last query, want 1: one lost refresh must not unsubscribe", n, 2*sdkRefreshGap)
	}
	clk.Advance(ttl + time.Second - 2*sdkRefreshGap)
	r.push.retransmitOnce(clk.Now())
	if n := r.push.subscriberCount(); n != 0 {
		t.Fatalf("%d subscribers %v after the last query without an ack: a client that went away must expire", n, ttl+time.Second)
	}
}

// Renewal by acks keeps the cap: a renewed subscriber holds its slot, the
// slot frees when it goes silent, and a late ack from a dropped subscriber
// does not bring it back past the cap.
func TestAckRenewalKeepsTheSubscriberCap(t *testing.T) {
	r, clk := newClockedPushRegistry(t, func(c *Config) { c.MaxSubscribers = 1; c.PushAckTimeout = time.Hour })
	ttl := r.cfg.SubscriberTTL
	a, b := newUDPClient(t), newUDPClient(t)
	subscribe(t, r, a, "")
	listB := func() uint64 {
		raw := mustOK(t, r, "GET", fmt.Sprintf("%s/instance/list?serviceName=DEFAULT_GROUP@@svc&clusters=&udpPort=%d", ns, b.port()), "")
		return decodeJSON[sdkService](t, raw).CacheMillis
	}

	clk.Advance(ttl - time.Second)
	registerHost(t, r, 1)
	a.ack(a.read()) // renews a's subscription
	testutil.Eventually(t, 5*time.Second, "a's ack to be matched", func() error { return acked(r) })
	clk.Advance(2 * time.Second) // past a's query + TTL, within its ack + TTL
	r.push.retransmitOnce(clk.Now())
	if n := r.push.subscriberCount(); n != 1 {
		t.Fatalf("%d subscribers after a's ack renewed it, want 1", n)
	}
	if got := listB(); got != defaultCacheMillis || r.push.subscriberCount() != 1 {
		t.Fatalf("b subscribed past the cap (cacheMillis %d, %d subscribers)", got, r.push.subscriberCount())
	}

	registerHost(t, r, 2)
	late := a.read() // a goes silent: this push stays unacked
	clk.Advance(ttl)
	r.push.retransmitOnce(clk.Now())
	if n := r.push.subscriberCount(); n != 0 {
		t.Fatalf("%d subscribers after a went silent for SubscriberTTL", n)
	}
	if got := listB(); got != pushCacheMillis {
		t.Fatalf("b not subscribed once a's slot freed (cacheMillis %d)", got)
	}
	a.ack(late)
	testutil.Eventually(t, 5*time.Second, "a's late ack to be read", func() error { return acked(r) })
	if n := r.push.subscriberCount(); n != 1 {
		t.Fatalf("%d subscribers after a dropped subscriber's late ack, want b alone", n)
	}
}

// Regression: lastRefTime was UnixNano (~1.7e18 > 2^53); JavaScript clients
// (npm nacos) parse it as a double and echo it rounded, so no ack matched.
// Every push's lastRefTime survives a float64 round trip and increases.
func TestPushAckMatchesAfterFloat64RoundTrip(t *testing.T) {
	r, clk := newClockedPushRegistry(t, func(c *Config) { c.PushAckTimeout = time.Hour })
	clk.Advance(123_456_789 * time.Nanosecond) // a clock reading that is not a round number
	c := newUDPClient(t)
	subscribe(t, r, c, "")
	var last int64
	for i := 1; i <= 3; i++ {
		registerHost(t, r, i)
		m := c.read()
		if m.LastRefTime <= last {
			t.Fatalf("push %d lastRefTime %d after %d: must increase", i, m.LastRefTime, last)
		}
		last = m.LastRefTime
		// The npm client's ack: JSON.stringify({lastRefTime: <a double>}).
		js := strconv.FormatFloat(float64(m.LastRefTime), 'f', -1, 64)
		ack := []byte(`{"type":"push-ack","lastRefTime":` + js + `,"data":""}`)
		if _, err := c.conn.WriteToUDP(ack, m.from); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, 2*time.Second, fmt.Sprintf("the float64-echoed ack %s of lastRefTime %d to match", js, m.LastRefTime), func() error { return acked(r) })
	}
}

// fakePushSource is a pushSource without a registry: the test announces
// changes and decides the pushed data.
type fakePushSource struct {
	mu    sync.Mutex
	fn    func(key string) // the pusher's subscription; nil once cancelled
	data  []byte
	calls []string // "key|clusters" of every pushData call
}

func (f *fakePushSource) Subscribe(fn func(key string)) func() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn = fn
	return func() {
		f.mu.Lock()
		f.fn = nil
		f.mu.Unlock()
	}
}

func (f *fakePushSource) pushData(ref serviceRef, clusters string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, ref.key()+"|"+clusters)
	return f.data, nil
}

// change announces a change of key the way Registry.Subscribe does; false when nobody is subscribed.
func (f *fakePushSource) change(key string) bool {
	f.mu.Lock()
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		return false
	}
	fn(key)
	return true
}

func (f *fakePushSource) pushDataCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// The pusher is driven only through pushSource: a change notification from
// a fake source pushes the source's data to a subscriber, whose ack is
// matched; Shutdown ends its subscription and stops its goroutines.
func TestPusherIsDrivenThroughItsSource(t *testing.T) {
	before := goleak.IgnoreCurrent()
	src := &fakePushSource{data: []byte(`{"hosts":["fake"]}`)}
	m := newMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.pushes, m.pushAcks)
	p, err := newPusher(pushConfig{Addr: "127.0.0.1:0", AckTimeout: time.Hour, SubscriberTTL: time.Minute, MaxSubscribers: 10},
		pushDeps{source: src, now: time.Now, log: testLogger(t), pushes: m.pushes, acks: m.pushAcks})
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	p.Start() // idempotent

	c := newUDPClient(t)
	ref := serviceRef{namespace: "public", group: "DEFAULT_GROUP", name: "svc"}
	if !p.subscribe(ref, "c1", net.IPv4(127, 0, 0, 1), c.port()) {
		t.Fatalf("subscription refused")
	}
	src.change("public##DEFAULT_GROUP@@other") // nobody subscribed to it: no push
	src.change(ref.key())
	msg := c.read()
	if msg.Type != "dom" || msg.Data != string(src.data) || msg.from.String() != p.Addr().String() {
		t.Fatalf("push %+v from %v, want the source's data from %v", msg, msg.from, p.Addr())
	}
	if got := src.pushDataCalls(); len(got) != 1 || got[0] != ref.key()+"|c1" {
		t.Fatalf("pushData calls %v, want one for the subscribed service and clusters", got)
	}
	c.ack(msg)
	testutil.Eventually(t, 5*time.Second, "the ack to be matched", func() error {
		if n := p.pendingCount(); n != 0 {
			return fmt.Errorf("%d pushes await an ack", n)
		}
		return nil
	})
	got := gathered(t, reg)
	if got["distrod_naming_udp_pushes_total{result=sent}"] != 1 || got["distrod_naming_udp_push_acks_total"] != 1 {
		t.Fatalf("metrics %v, want one push sent and one ack", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if src.change(ref.key()) {
		t.Fatalf("the pusher is still subscribed to changes after Shutdown")
	}
	p.Start() // after Shutdown: starts nothing
	goleak.VerifyNone(t, before)
}

// A pusher that never started releases its socket and subscription on Shutdown.
func TestPusherShutdownWithoutStart(t *testing.T) {
	src := &fakePushSource{}
	m := newMetrics()
	p, err := newPusher(pushConfig{Addr: "127.0.0.1:0", AckTimeout: time.Second, SubscriberTTL: time.Minute, MaxSubscribers: 1},
		pushDeps{source: src, now: time.Now, log: testLogger(t), pushes: m.pushes, acks: m.pushAcks})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if src.change("k") {
		t.Fatalf("still subscribed to changes")
	}
	conn, err := net.ListenUDP("udp", p.Addr().(*net.UDPAddr))
	if err != nil {
		t.Fatalf("the push socket was not released: %v", err)
	}
	conn.Close()
}
