package naming

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
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
	eventually(t, 5*time.Second, "the ack to be matched", func() bool { return r.push.pendingCount() == 0 })

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
	eventually(t, 5*time.Second, "the second ack", func() bool { return r.push.pendingCount() == 0 })
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
