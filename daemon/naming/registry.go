// Package naming is the service registry: the instance model, the store that
// distro replicates, the Nacos v1 naming API, write forwarding, heartbeat
// expiry and UDP push.
//
// One datum per service (key namespace##group@@name); its value is a merged
// CRDT (see Service), so writes accepted by two nodes during a membership
// change both survive. Beat times are local to the node, never replicated;
// health is replicated. Writes run on the responsible node (forwarded once,
// with X-Distrod-Forwarded); reads run anywhere once the node is ready.
//
// Deliberate choices where Nacos 1.4 is loose or the clients disagree:
//   - ip may be IPv4, IPv6 or a DNS host name (Nacos checks only
//     digits-and-dots strings as IPv4);
//   - parameters are split leniently (nacos-sdk-go v1 sends them unescaped);
//   - PUT /instance replaces the instance, and registers it unless the client
//     is the Java client 1.x, which Nacos requires to update an existing one;
//   - DELETE /service refuses a service that still has instances, as Nacos does;
//   - a beat with beat info for an instance that was deregistered (its
//     tombstone is still kept) answers 20404 instead of registering it again:
//     the client registers explicitly if it is really alive (see beat);
//   - dom and hosts[].serviceName are the grouped name for every client.
package naming

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/distrod/distrod/daemon/httpx"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/internal/fielderr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Owner is the node responsible for a key.
type Owner struct {
	Name     string
	HTTPAddr string
	Self     bool
}

// Cluster is what the registry needs from the node it runs in; the daemon supplies it.
type Cluster interface {
	// Ready reports whether this node loaded its snapshot and may serve reads.
	Ready() bool
	// OwnerOf returns the responsible node for a datum key; ok is false while no member is ready.
	OwnerOf(key string) (o Owner, ok bool)
	// Changed tells distro that key was written locally and must be pushed.
	Changed(key string)
	// NextVersion issues a version for a local write (distro's hybrid clock).
	NextVersion() uint64
	// Servers lists the cluster's members for /operator/servers.
	Servers() []Server
	// ViewsSettledSince is when this node last saw evidence that the members'
	// views of the ring differ: its own last ring change, or a peer's verify
	// message carrying another ring version, whichever is later (zero: never).
	// Heartbeat expiry removes nothing until that is SettleHold in the past.
	ViewsSettledSince() time.Time
	// MemberAddr reports whether ip is an address of a current member: without
	// a Secret, the only evidence that a forwarded request comes from a peer.
	MemberAddr(ip net.IP) bool
}

// Server is one member as /nacos/v1/ns/operator/servers reports it.
type Server struct {
	Name     string
	HTTPAddr string
	State    string
}

// Config tunes the registry.
type Config struct {
	// BeatInterval is the client beat period the registry asks for (clientBeatInterval).
	BeatInterval time.Duration
	// BeatTimeout marks an instance unhealthy after this long without a beat.
	BeatTimeout time.Duration
	// DeleteTimeout removes an instance after this long without a beat.
	DeleteTimeout time.Duration
	// ExpiryInterval is how often the responsible node checks beats.
	ExpiryInterval time.Duration
	// SettleHold is how long the views of the ring must have agreed before
	// expiry removes an instance (it may still mark it unhealthy); 0 means
	// DeleteTimeout/2. See expireOnce for why.
	SettleHold time.Duration
	// FailureHold is how long after a member failed (dead, not left) expiry
	// removes nothing, only marks unhealthy: from this side a partition looks
	// like a crash, and the beats may be going to the other side. See failhold.go.
	FailureHold time.Duration
	// StallThreshold: a gap this long in the registry's 100 ms ticker (or
	// between its last tick and a write or an expiry round) means the process
	// was stopped (SIGSTOP, a VM pause, swap): its view of beats and of the
	// ring is stale.
	StallThreshold time.Duration
	// StallHold is how long after a detected stall the node refuses reads and
	// local writes (503) and skips expiry while gossip and verify refresh its
	// view; every instance's beat clock restarts when the hold ends. The
	// daemon's default is at least a verify interval (plus gossip's readmission).
	StallHold time.Duration
	// ForwardTimeout bounds a forwarded write; past it the write runs here
	// (forward.go runInsteadOf).
	ForwardTimeout time.Duration
	// ForwardDialTimeout bounds the connect to the owner, at most ForwardTimeout:
	// a dead host drops the SYN instead of refusing it.
	ForwardDialTimeout time.Duration
	// Secret, when set, is sent with forwarded writes and required on received ones.
	Secret string
	// UDPAddr is the local address for UDP push ("127.0.0.1:0" picks a port; empty disables push).
	UDPAddr string
	// PushTrustClientIP sends pushes to the clientIP parameter instead of the request's source address.
	PushTrustClientIP bool
	// PushAckTimeout is how long a push waits for its ack before its one retransmission.
	PushAckTimeout time.Duration
	// SubscriberTTL expires a UDP subscriber that neither queried (list with
	// udpPort) nor acked a push for this long. More than the advertised
	// cacheMillis (10 s): clients refresh no more often (see pusher).
	SubscriberTTL time.Duration
	// MaxSubscribers caps UDP push subscriptions on this node; past it a list
	// query is answered without subscribing (the client keeps polling).
	MaxSubscribers int
	// MaxServiceBytes caps a service's encoded value; a write that would pass it
	// is refused (413). At most distro.MaxValueLen, the largest datum peers accept.
	MaxServiceBytes int
	// MaxMetadataBytes caps an instance's (and a service's) metadata.
	MaxMetadataBytes int
	// ListCacheBytes bounds the rendered /instance/list answers kept until
	// their service changes (listcache.go); 0 caches nothing.
	ListCacheBytes int64
	// Logger receives the registry's logs.
	Logger *slog.Logger
	// Metrics registers the registry's collectors; nil registers nothing.
	Metrics prometheus.Registerer
}

// DefaultConfig returns Nacos's timings.
func DefaultConfig() Config {
	return Config{
		BeatInterval:     5 * time.Second,  // Nacos clientBeatInterval
		BeatTimeout:      15 * time.Second, // Nacos heart-beat-timeout: three missed beats
		DeleteTimeout:    30 * time.Second, // Nacos ip-delete-timeout
		ExpiryInterval:   time.Second,      // coarse enough to be cheap, fine enough for 15 s timeouts
		SettleHold:       0,                // DeleteTimeout/2: three beat intervals for beats to reach the settled owner
		FailureHold:      2 * time.Minute,  // outlasts typical network partitions; a dead client's instance stays unhealthy meanwhile
		StallThreshold:   2 * time.Second,  // 20 missed ticks: far beyond scheduling jitter and GC pauses
		StallHold:        5 * time.Second,  // a few gossip rounds and one verify interval to refresh the view
		ForwardTimeout:   3 * time.Second,  // below the clients' 5-10 s request timeouts
		UDPAddr:          "127.0.0.1:0",
		PushAckTimeout:   time.Second,                            // one retransmission after 1 s (Nacos waits 10 s)
		SubscriberTTL:    3 * pushCacheMillis * time.Millisecond, // 30 s: a lost refresh or ack is tolerated (see pusher)
		MaxServiceBytes:  distro.MaxValueLen,
		MaxSubscribers:   100_000, // ~100 B each: 10 MB at most
		MaxMetadataBytes: 4096,
		ListCacheBytes:   32 << 20, // ~8 000 polled services of 10 instances; small beside the store

		// A connect within a LAN takes well under a millisecond and Linux
		// resends a lost SYN after 1 s: an owner silent that long is taken as
		// unreachable, so the client waits 1 s for a dead host, not ForwardTimeout.
		ForwardDialTimeout: time.Second,
	}
}

// Validate reports a configuration the registry cannot run with; the error
// names the field (ConfigField), so a caller can name its flag for it.
func (c Config) Validate() error {
	switch {
	case c.BeatInterval <= 0:
		return configErr("BeatInterval", "naming: BeatInterval must be positive")
	case c.BeatTimeout <= 0:
		return configErr("BeatTimeout", "naming: need 0 < BeatTimeout <= DeleteTimeout")
	case c.DeleteTimeout < c.BeatTimeout:
		return configErr("DeleteTimeout", "naming: need 0 < BeatTimeout <= DeleteTimeout")
	case c.ExpiryInterval <= 0:
		return configErr("ExpiryInterval", "naming: ExpiryInterval must be positive")
	case c.SettleHold < 0:
		return configErr("SettleHold", "naming: SettleHold must not be negative")
	case c.FailureHold < 0:
		return configErr("FailureHold", "naming: FailureHold must not be negative")
	case c.StallThreshold <= stallTickEvery:
		return configErr("StallThreshold", "naming: StallThreshold must exceed the stall ticker's %v", stallTickEvery)
	case c.StallHold < 0:
		return configErr("StallHold", "naming: StallHold must not be negative")
	case c.ForwardTimeout <= 0:
		return configErr("ForwardTimeout", "naming: ForwardTimeout must be positive")
	case c.ForwardDialTimeout <= 0 || c.ForwardDialTimeout > c.ForwardTimeout:
		return configErr("ForwardDialTimeout", "naming: need 0 < ForwardDialTimeout <= ForwardTimeout")
	case c.PushAckTimeout <= 0:
		return configErr("PushAckTimeout", "naming: PushAckTimeout must be positive")
	case c.SubscriberTTL <= pushCacheMillis*time.Millisecond:
		return configErr("SubscriberTTL", "naming: SubscriberTTL must exceed the advertised cacheMillis (%d ms): clients refresh no more often", pushCacheMillis)
	case c.MaxMetadataBytes <= 0:
		return configErr("MaxMetadataBytes", "naming: MaxMetadataBytes must be positive")
	case c.MaxSubscribers <= 0:
		return configErr("MaxSubscribers", "naming: MaxSubscribers must be positive")
	case c.MaxServiceBytes <= 0 || c.MaxServiceBytes > distro.MaxValueLen:
		return configErr("MaxServiceBytes", "naming: MaxServiceBytes must be in 1..%d, got %d", distro.MaxValueLen, c.MaxServiceBytes)
	case c.ListCacheBytes < 0:
		return configErr("ListCacheBytes", "naming: ListCacheBytes must not be negative")
	}
	return nil
}

// configErr is a Validate error naming the Config field at fault.
func configErr(field, format string, args ...any) error { return fielderr.New(field, format, args...) }

// Config is the configuration the registry runs with.
func (r *Registry) Config() Config { return r.cfg }

// Registry is one node's registry. It implements distro.Store.
//
// Lock order. A path that holds more than one of these takes them in this order:
//  1. the key's write lock (lockFor): every change of a key's entry holds it —
//     local writes (write), peer applies (Apply) and Sweep (sweepKey) — while
//     it decodes, merges and encodes the value;
//  2. r.mu, the registry-wide lock, held only to read or replace map entries
//     (replaceLocked), never while decoding, encoding or doing I/O;
//  3. an entry's list-cache lock (entry.lists.mu), taken under r.mu when the
//     entry is retired (retireListsLocked) or alone by a list query.
//
// beatMu, holdMu and reassertMu are never held with r.mu nor with each other;
// beatMu may be taken under a key's write lock (expire's build).
type Registry struct {
	cfg     Config
	cluster Cluster
	log     *slog.Logger
	now     func() time.Time // injectable clock for expiry tests
	epoch   time.Time        // beatClock's zero

	mu      sync.RWMutex // guards entries
	entries map[string]*entry

	listCacheUsed atomic.Int64 // bytes of rendered lists cached on entries (listcache.go)

	writeLocks [64]sync.Mutex // serialize the changes of a key's entry (by hash; see the lock order)

	// beforeReplace, when set (tests only), runs on a key's write path once
	// the new value is encoded, before r.mu is taken to store it
	// (mergeWriteLocked, sweepKey).
	beforeReplace func(key string)

	beatMu   sync.Mutex
	lastBeat map[string]map[string]beatRecord // datum key → instance key → beats seen here

	holdMu    sync.Mutex
	holdUntil time.Time // no removals by expiry before this (failhold.go)

	// Instances a peer expired while they beat here, queued by Apply for the
	// reassert loop (reassert.go): datum key → instance key → the instance as
	// it lived here. reassertSignal (capacity 1) wakes the loop.
	reassertMu      sync.Mutex
	reassertPending map[string]map[string]*Instance
	reassertSignal  chan struct{}

	// The stall guard (stall.go): the stall ticker's last tick (nil until
	// Start) and the end of the hold after a detected stall (nil: none yet).
	lastTick     atomic.Pointer[time.Time]
	stalledUntil atomic.Pointer[time.Time]

	fwd    *fasthttp.Client
	secret distro.PeerSecret // checks the secret of a forwarded write, as distro's peer endpoints do
	push   *pusher           // nil when UDP push is disabled; fed by changes, started and stopped with the registry
	stats  *metrics

	changes changeFeed // every applied change is announced here (changes.go)

	routes *httpx.Router // the Nacos API, path below apiPrefix → method → handler

	stop      chan struct{}
	wg        sync.WaitGroup
	startOnce sync.Once
	stopOnce  sync.Once
}

var _ distro.Store = (*Registry)(nil)

// maxForwardAnswer caps the owner's answer to a forwarded write that is read
// into memory ("ok", a beat answer or an error text are far smaller).
const maxForwardAnswer = 1 << 20

// New validates cfg and binds the UDP push socket.
func New(cfg Config, cluster Cluster) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cluster == nil {
		return nil, errors.New("naming: nil Cluster")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Registry{
		cfg:      cfg,
		cluster:  cluster,
		log:      log.With("component", "naming"),
		now:      time.Now,
		entries:  map[string]*entry{},
		lastBeat: map[string]map[string]beatRecord{},
		epoch:    time.Now(),
		stop:     make(chan struct{}),
		stats:    newMetrics(),

		reassertSignal: make(chan struct{}, 1),
		secret:         distro.NewPeerSecret(cfg.Secret),
	}
	dialTimeout := cfg.ForwardDialTimeout
	r.fwd = &fasthttp.Client{
		Name:                          "distrod-forward",
		Dial:                          func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, dialTimeout) },
		ReadTimeout:                   cfg.ForwardTimeout,
		WriteTimeout:                  cfg.ForwardTimeout,
		MaxIdleConnDuration:           30 * time.Second,
		MaxResponseBodySize:           maxForwardAnswer,
		DisablePathNormalizing:        true,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: false,
	}
	if cfg.UDPAddr != "" {
		p, err := newPusher(pushConfig{
			Addr:           cfg.UDPAddr,
			AckTimeout:     cfg.PushAckTimeout,
			SubscriberTTL:  cfg.SubscriberTTL,
			MaxSubscribers: cfg.MaxSubscribers,
		}, pushDeps{
			source: r,
			now:    func() time.Time { return r.now() }, // read per call: tests swap the clock after New
			log:    r.log,
			pushes: r.stats.pushes,
			acks:   r.stats.pushAcks,
		})
		if err != nil {
			return nil, err
		}
		r.push = p
	}
	if cfg.Metrics != nil {
		if err := r.stats.register(cfg.Metrics, r); err != nil {
			if r.push != nil {
				_ = r.push.Shutdown(context.Background()) // never started: returns at once
			}
			return nil, fmt.Errorf("naming: register metrics: %w", err)
		}
	}
	r.routes = r.buildRoutes()
	return r, nil
}

// PushAddr is the bound UDP push address, nil when push is disabled.
func (r *Registry) PushAddr() net.Addr {
	if r.push == nil {
		return nil
	}
	return r.push.Addr()
}

// Start launches heartbeat expiry, the stall guard, re-assertion and the UDP push loops.
func (r *Registry) Start() {
	r.startOnce.Do(func() {
		now := r.now()
		r.lastTick.Store(&now) // arms the stall guard
		r.wg.Add(3)
		go r.every(stallTickEvery, r.stallTick)
		go r.every(r.cfg.ExpiryInterval, r.expireOnce)
		go r.reassertLoop()
		if r.push != nil {
			r.push.Start()
		}
	})
}

// every calls f(r.now()) every d until Shutdown. The caller has counted it in r.wg.
func (r *Registry) every(d time.Duration, f func(now time.Time)) {
	defer r.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
			f(r.now())
		}
	}
}

// Shutdown stops the registry's goroutines and the pusher's, and waits; idempotent.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.stopOnce.Do(func() {
		close(r.stop)
		r.fwd.CloseIdleConnections()
	})
	if r.push != nil {
		if err := r.push.Shutdown(ctx); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("naming: shutdown: %w", ctx.Err())
	}
}

const apiPrefix = "/nacos/v1/ns"

// Handle serves /nacos/v1/ns/... and reports whether the path was the registry's.
func (r *Registry) Handle(ctx *fasthttp.RequestCtx) bool {
	path := string(ctx.Path())
	if path != apiPrefix && !strings.HasPrefix(path, apiPrefix+"/") {
		return false
	}
	r.routes.Serve(ctx, strings.TrimSuffix(strings.TrimPrefix(path, apiPrefix), "/"))
	return true
}

// buildRoutes is the Nacos API under apiPrefix, rendered as Nacos does (nacosText).
func (r *Registry) buildRoutes() *httpx.Router {
	rt := httpx.NewRouter(nacosText{log: r.log}, r.log)
	for path, methods := range map[string]map[string]handlerFunc{
		"/instance": {
			"POST":   r.register,
			"PUT":    r.update,
			"DELETE": r.deregister,
			"GET":    r.readOnly(r.detail),
		},
		"/instance/list": {"GET": r.readOnly(r.list)},
		"/instance/beat": {"PUT": r.beat},
		"/service": {
			"POST":   r.createService,
			"PUT":    r.updateService,
			"DELETE": r.deleteService,
			"GET":    r.readOnly(r.getService),
		},
		"/service/list":     {"GET": r.readOnly(r.listServices)},
		"/catalog/services": {"GET": r.readOnly(r.catalogServices)},
		"/operator/servers": {"GET": r.servers},
		"/operator/metrics": {"GET": r.operatorMetrics},
	} {
		for method, h := range methods {
			rt.Handle(method, path, api(h))
		}
	}
	return rt
}

// readOnly answers 503 while the node has not loaded its snapshot, and while
// it knows its view is stale after a stall (stall.go).
func (r *Registry) readOnly(h handlerFunc) handlerFunc {
	return func(ctx *fasthttp.RequestCtx, p *params) (any, error) {
		if !r.cluster.Ready() {
			return nil, ErrNotReady
		}
		if r.stalled(r.now()) {
			return nil, ErrStale
		}
		return h(ctx, p)
	}
}

// OwnershipGained gives the instances of newly owned partitions a fresh beat (grace).
func (r *Registry) OwnershipGained(partitionOf func(key string) int, gained map[int]bool) {
	if len(gained) == 0 {
		return
	}
	owned := r.entriesWhere(func(k string, _ *entry) bool { return gained[partitionOf(k)] })
	r.graceLive(owned, r.now())
}

// Counts reports live services and instances for status and metrics.
func (r *Registry) Counts() (services, instances int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, e := range r.entries {
		if e.exists {
			services++
			instances += e.live
		}
	}
	return services, instances
}

func (r *Registry) lockFor(key string) *sync.Mutex {
	return &r.writeLocks[xxhash.Sum64String(key)%uint64(len(r.writeLocks))]
}
