package naming

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gzipAbove is the payload size from which a push is gzipped (Nacos: 1 KB);
// clients recognise gzip by its magic bytes.
const gzipAbove = 1024

// subscriber is a client that asked for pushes of one service (and cluster list).
type subscriber struct {
	ref      serviceRef
	clusters string
	addr     *net.UDPAddr
	expires  time.Time
}

// pendingPush is a sent push waiting for its ack.
type pendingPush struct {
	sub     string // the subscriber's id: its ack renews the subscription
	addr    *net.UDPAddr
	packet  []byte
	sentAt  time.Time
	retried bool
}

// pusher sends UDP pushes to subscribers (Nacos 1.x PushService): a change of
// a subscribed service is pushed to every subscriber, acks are tracked and an
// unacknowledged push is sent once more.
//
// A subscription lives SubscriberTTL after the subscriber's last sign of
// life: a list query with udpPort, or an ack of one of its pushes. Nacos 1.4
// expires it cacheMillis (10 s) after the last query, and so did we; but
// nacos-sdk-go v1.1.6 re-queries only when
//
//	uint64(util.CurrentMillis())-lastRefTime.(uint64) > service.CacheMillis
//
// checked every second (host_reactor.go asyncUpdateService), where
// lastRefTime is set by every answer or push it processes
// (ProcessServiceJson: hr.updateTimeMap.Set(cacheKey, ...)). After a push
// its next query comes 10-11 s later, after a 10 s subscription lapsed, and
// while pushes come more often than cacheMillis it never queries at all.
// Hence acks renew, and the TTL is three refresh periods (30 s): a lost
// query or ack is tolerated, and a client that went away (no queries, no
// acks) still expires within 30 s. The Java and npm clients query every
// cacheMillis whatever the pushes, also a little over 10 s apart.
//
// The pusher is a component with its own lifecycle: newPusher binds the
// socket and subscribes to its source's change notifications, Start launches
// its three goroutines (send, read acks, retransmit and expire), Shutdown
// stops them and waits. It reads the registry only through pushSource; the
// subscriptions are its own. Its lock mu is a leaf: nothing is called with
// it held but the pusher's own bookkeeping.
type pusher struct {
	cfg    pushConfig
	src    pushSource
	now    func() time.Time
	log    *slog.Logger
	pushes *prometheus.CounterVec // result: sent | error | retransmitted | unacked
	acks   prometheus.Counter
	conn   *net.UDPConn
	cancel func() // ends the subscription to src's changes

	mu      sync.Mutex
	subs    map[string]*subscriber     // id → subscriber
	byKey   map[string]map[string]bool // datum key → subscriber ids
	dirty   map[string]bool            // datum keys changed since the last push round
	pending map[string]*pendingPush    // addr|lastRefTime → push
	lastRef int64                      // last lastRefTime issued (see nextRefLocked)

	signal chan struct{} // a dirty key waits for sendLoop (buffered 1: signals merge)

	lifeMu  sync.Mutex // guards started and stopped; orders Start's wg.Add before Shutdown's Wait
	started bool
	stopped bool
	stop    chan struct{} // closed by Shutdown
	wg      sync.WaitGroup
}

// pushSource is what the pusher needs from the registry core (Registry
// implements it); a test supplies a fake.
type pushSource interface {
	// Subscribe calls fn with the datum key of every applied change until
	// cancel; fn must not block (Registry.Subscribe).
	Subscribe(fn func(key string)) (cancel func())
	// pushData is the list JSON pushed to a subscriber of ref and clusters:
	// /instance/list's answer with healthyOnly false and cacheMillis pushCacheMillis.
	pushData(ref serviceRef, clusters string) ([]byte, error)
}

// pushConfig is the pusher's part of Config.
type pushConfig struct {
	Addr           string        // Config.UDPAddr: the local address to bind
	AckTimeout     time.Duration // Config.PushAckTimeout
	SubscriberTTL  time.Duration // Config.SubscriberTTL
	MaxSubscribers int           // Config.MaxSubscribers
}

// pushDeps is what the pusher uses and does not own.
type pushDeps struct {
	source pushSource
	now    func() time.Time // the clock of subscription expiry and retransmission
	log    *slog.Logger
	pushes *prometheus.CounterVec // counts pushes by result: sent | error | retransmitted | unacked
	acks   prometheus.Counter     // counts matched acks
}

// newPusher binds the push socket and subscribes to the source's changes;
// pushes start with Start. Shutdown releases both, started or not.
func newPusher(cfg pushConfig, deps pushDeps) (*pusher, error) {
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("naming: resolve push address %q: %w", cfg.Addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("naming: bind push socket %q: %w", cfg.Addr, err)
	}
	p := &pusher{
		cfg: cfg, src: deps.source, now: deps.now, log: deps.log,
		pushes: deps.pushes, acks: deps.acks, conn: conn,
		subs: map[string]*subscriber{}, byKey: map[string]map[string]bool{},
		dirty: map[string]bool{}, pending: map[string]*pendingPush{},
		signal: make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	p.cancel = deps.source.Subscribe(p.changed)
	return p, nil
}

// Addr is the bound push socket's address: pushes come from it, acks go to it.
func (p *pusher) Addr() net.Addr { return p.conn.LocalAddr() }

// Start launches the pusher's goroutines; idempotent, and a no-op after Shutdown.
func (p *pusher) Start() {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.started || p.stopped {
		return
	}
	p.started = true
	p.wg.Add(3)
	go p.sendLoop()
	go p.readLoop()
	go p.every(max(p.cfg.AckTimeout/4, 10*time.Millisecond), p.retransmitOnce)
}

// Shutdown ends the change subscription, closes the socket, stops the
// pusher's goroutines and waits for them until ctx ends; idempotent.
func (p *pusher) Shutdown(ctx context.Context) error {
	p.lifeMu.Lock()
	if !p.stopped {
		p.stopped = true
		p.cancel()
		close(p.stop)
		_ = p.conn.Close() // ends readLoop's blocking read
	}
	p.lifeMu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("naming: push shutdown: %w", ctx.Err())
	}
}

// every calls f(p.now()) every d until Shutdown. The caller has counted it in p.wg.
func (p *pusher) every(d time.Duration, f func(now time.Time)) {
	defer p.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			f(p.now())
		}
	}
}

// subscribe adds or refreshes a subscriber; it reports whether pushes are on.
func (p *pusher) subscribe(ref serviceRef, clusters string, ip net.IP, port int) bool {
	if ip == nil || ip.IsUnspecified() {
		return false
	}
	addr := &net.UDPAddr{IP: ip, Port: port}
	key := ref.key()
	id := subscriberID(key, clusters, addr)
	exp := p.now().Add(p.cfg.SubscriberTTL)
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.subs[id]; ok {
		s.expires = exp
		return true
	}
	if len(p.subs) >= p.cfg.MaxSubscribers {
		// Bounded memory against a client subscribing to ever new ports; the
		// caller still answers the list, and the client falls back to polling.
		return false
	}
	p.subs[id] = &subscriber{ref: ref, clusters: clusters, addr: addr, expires: exp}
	if p.byKey[key] == nil {
		p.byKey[key] = map[string]bool{}
	}
	p.byKey[key][id] = true
	return true
}

// subscriberID identifies a subscription: one service, cluster list and address.
func subscriberID(key, clusters string, addr *net.UDPAddr) string {
	return key + "|" + clusters + "|" + addr.String()
}

func (p *pusher) subscriberCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// changed is the pusher's change notification (pushSource.Subscribe): it
// marks key for the next push round if anyone subscribed to it, and wakes
// sendLoop. It never blocks.
func (p *pusher) changed(key string) {
	p.mu.Lock()
	if len(p.byKey[key]) == 0 {
		p.mu.Unlock()
		return
	}
	p.dirty[key] = true
	p.mu.Unlock()
	select {
	case p.signal <- struct{}{}:
	default:
	}
}

func (p *pusher) sendLoop() {
	defer p.wg.Done()
	for {
		select {
		case <-p.stop:
			return
		case <-p.signal:
			p.pushOnce()
		}
	}
}

// pushOnce pushes every dirty key to its live subscribers.
func (p *pusher) pushOnce() {
	now := p.now()
	p.mu.Lock()
	type job struct {
		id string
		s  subscriber
	}
	var work []job
	for key := range p.dirty {
		for id := range p.byKey[key] {
			s := p.subs[id]
			if now.After(s.expires) {
				p.dropLocked(id)
				continue
			}
			work = append(work, job{id, *s})
		}
	}
	p.dirty = map[string]bool{}
	p.mu.Unlock()

	built := map[string][]byte{} // key|clusters → list JSON
	for _, w := range work {
		s := &w.s
		bk := s.ref.key() + "|" + s.clusters
		data, ok := built[bk]
		if !ok {
			var err error
			if data, err = p.src.pushData(s.ref, s.clusters); err != nil {
				p.log.Error("encode push", "service", s.ref.key(), "err", err)
				continue
			}
			built[bk] = data
		}
		p.send(w.id, s.addr, data, now)
	}
}

// nextRefLocked is the lastRefTime of the next push: the push's id, which
// the client echoes in its ack and the ack is matched on exactly. Clients do
// not compare it with anything (the staleness checks of nacos-sdk-go, the
// Java and the npm clients use the lastRefTime inside the pushed data), but
// the npm client parses it as a JavaScript number and echoes that, so it
// must be an integer below 2^53 to come back unchanged. Nacos uses
// System.nanoTime(), boot-relative: exact only for 104 days of uptime, and
// it restarts lower with the machine. Wall-clock microseconds stay below
// 2^53 until the year 2255 and do not go back when the node restarts; the
// +1 keeps them strictly increasing (per node, hence per service) when the
// clock steps back or pushes come faster than one a microsecond.
func (p *pusher) nextRefLocked(now time.Time) int64 {
	p.lastRef = max(now.UnixMicro(), p.lastRef+1)
	return p.lastRef
}

// send pushes data to subscriber id at addr with a fresh lastRefTime and records it for acking.
func (p *pusher) send(id string, addr *net.UDPAddr, data []byte, now time.Time) {
	p.mu.Lock()
	ref := p.nextRefLocked(now)
	p.mu.Unlock()
	packet, err := pushPacket(data, ref)
	if err != nil {
		p.log.Error("encode push", "err", err)
		return
	}
	// Record before sending: a client on loopback can ack before WriteToUDP returns.
	k := ackKey(addr, ref)
	p.mu.Lock()
	p.pending[k] = &pendingPush{sub: id, addr: addr, packet: packet, sentAt: now}
	p.mu.Unlock()
	if _, err := p.conn.WriteToUDP(packet, addr); err != nil {
		p.mu.Lock()
		delete(p.pending, k)
		p.mu.Unlock()
		p.pushes.WithLabelValues("error").Inc()
		p.log.Debug("push failed", "addr", addr, "err", err)
		return
	}
	p.pushes.WithLabelValues("sent").Inc()
}

// pushPacket is {"type":"dom","data":"<list JSON>","lastRefTime":n}, gzipped when large.
func pushPacket(data []byte, lastRef int64) ([]byte, error) {
	b, err := json.Marshal(struct {
		Type        string `json:"type"`
		Data        string `json:"data"`
		LastRefTime int64  `json:"lastRefTime"`
	}{"dom", string(data), lastRef})
	if err != nil {
		return nil, err
	}
	if len(b) <= gzipAbove {
		return b, nil
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func ackKey(addr *net.UDPAddr, lastRef int64) string {
	return addr.String() + "|" + strconv.FormatInt(lastRef, 10)
}

// retransmitOnce resends pushes unacknowledged for PushAckTimeout once, gives
// up on those already resent, and drops expired subscribers.
func (p *pusher) retransmitOnce(now time.Time) {
	timeout := p.cfg.AckTimeout
	var resend []*pendingPush
	p.mu.Lock()
	for k, pp := range p.pending {
		if now.Sub(pp.sentAt) < timeout {
			continue
		}
		if pp.retried {
			delete(p.pending, k)
			p.pushes.WithLabelValues("unacked").Inc()
			continue
		}
		pp.retried, pp.sentAt = true, now
		resend = append(resend, pp)
	}
	for id, s := range p.subs {
		if now.After(s.expires) {
			p.dropLocked(id)
		}
	}
	p.mu.Unlock()
	for _, pp := range resend {
		p.pushes.WithLabelValues("retransmitted").Inc()
		if _, err := p.conn.WriteToUDP(pp.packet, pp.addr); err != nil {
			p.log.Debug("push retransmission failed", "addr", pp.addr, "err", err)
		}
	}
}

func (p *pusher) dropLocked(id string) {
	s, ok := p.subs[id]
	if !ok {
		return
	}
	delete(p.subs, id)
	key := s.ref.key()
	delete(p.byKey[key], id)
	if len(p.byKey[key]) == 0 {
		delete(p.byKey, key)
	}
}

// readLoop reads acks until the socket is closed by Shutdown.
func (p *pusher) readLoop() {
	defer p.wg.Done()
	buf := make([]byte, 64*1024)
	for {
		n, from, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-p.stop:
				return
			default:
			}
			p.log.Debug("read push ack", "err", err)
			continue
		}
		p.handleAck(buf[:n], from)
	}
}

// handleAck accepts {"type":"push-ack","lastRefTime":"n",...} (n quoted by
// the Go and Java clients, a bare number from the npm client) from the
// address the push went to, and renews the subscription the push was for;
// anything else is ignored. A subscription that expired meanwhile stays
// gone: an ack never adds one, so MaxSubscribers holds.
func (p *pusher) handleAck(b []byte, from *net.UDPAddr) bool {
	var ack struct {
		Type        string          `json:"type"`
		LastRefTime json.RawMessage `json:"lastRefTime"`
	}
	if json.Unmarshal(b, &ack) != nil || !strings.HasSuffix(ack.Type, "-ack") {
		return false
	}
	ref, err := strconv.ParseInt(strings.Trim(string(ack.LastRefTime), `"`), 10, 64)
	if err != nil {
		return false
	}
	k := ackKey(from, ref)
	now := p.now()
	p.mu.Lock()
	pp, ok := p.pending[k]
	delete(p.pending, k)
	if ok {
		if s := p.subs[pp.sub]; s != nil && !now.After(s.expires) {
			s.expires = now.Add(p.cfg.SubscriberTTL)
		}
	}
	p.mu.Unlock()
	if ok {
		p.acks.Inc()
	}
	return ok
}

// pendingCount is the number of pushes waiting for an ack.
func (p *pusher) pendingCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}
