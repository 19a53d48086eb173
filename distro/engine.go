package distro

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/internal/fielderr"
)

// ErrNotLoaded is returned for requests a node cannot serve before its snapshot is loaded.
var ErrNotLoaded = errors.New("distro: snapshot not loaded")

// Config tunes the engine. Zero values are invalid; start from DefaultConfig.
type Config struct {
	// SyncDelay is the minimum wait before a marked key is pushed, merging bursts (0 = push at once).
	SyncDelay time.Duration
	// SyncRetryDelay is the first backoff after a failed push batch; it doubles up to SyncRetryMax.
	SyncRetryDelay time.Duration
	// SyncRetryMax caps the push backoff.
	SyncRetryMax time.Duration
	// VerifyInterval is how often a node sends its owned checksums to each peer.
	VerifyInterval time.Duration
	// TombstoneTTL is how long a deletion is remembered; at least 3 verify intervals.
	TombstoneTTL time.Duration
	// SnapshotRetryMin and SnapshotRetryMax bound the snapshot load backoff.
	SnapshotRetryMin, SnapshotRetryMax time.Duration
	// BootstrapWait is how long the members this node sees must all be loading before the
	// lowest-named of them declares itself loaded (a new cluster started with --join everywhere).
	BootstrapWait time.Duration
	// RequestTimeout bounds each peer request except snapshot streaming.
	RequestTimeout time.Duration
	// RemoveGrace: a datum younger than this that its owner does not list is pushed back to the
	// owner instead of removed (0 = always remove; tests use it to see removals at once).
	RemoveGrace time.Duration
	// MaxBatch caps the keys sent in one push request and asked for in one query.
	MaxBatch int
	// MaxClockSkew refuses datums from peers whose version is more than this ahead of the local wall clock.
	MaxClockSkew time.Duration
	// Standalone starts a new cluster: the node is loaded at once, its view complete from its boot.
	Standalone bool
	// Logger receives the engine's logs (nil = discard).
	Logger *slog.Logger
	// Metrics is where the engine registers its collectors (nil = none).
	Metrics prometheus.Registerer
	// Now reads wall time for versions, tombstone ages and the removal grace (nil = time.Now).
	Now func() time.Time
}

// DefaultConfig returns the design's defaults.
func DefaultConfig() Config {
	return Config{
		// Merges bursts of writes to one key into one push, far below Nacos's 1-2 s.
		SyncDelay: 5 * time.Millisecond,
		// A peer that failed a batch is usually restarting or partitioned: retry soon, then back off.
		SyncRetryDelay: time.Second,
		SyncRetryMax:   30 * time.Second,
		// Nacos's verify period; verify repairs what pushes missed, so it bounds convergence.
		VerifyInterval: 5 * time.Second,
		// Far beyond the 3 verify intervals a late push needs: a deletion must also outlive a network
		// partition, or the side that never saw it brings the key back when the partition heals.
		// Tombstones are small; 5 minutes covers the registry's 2-minute failure hold with room.
		TombstoneTTL: 5 * time.Minute,
		// A joining node wants its data soon, but must not hammer peers that are themselves starting.
		SnapshotRetryMin: time.Second,
		SnapshotRetryMax: 10 * time.Second,
		// Long enough for gossip to report ready peers on a healthy network, short enough that a
		// cluster started with --join everywhere comes up without an operator. A node that sees
		// no other member never bootstraps (load.go).
		BootstrapWait: 3 * time.Second,
		// A peer that does not answer in 5 s is treated as failed; the next round retries.
		RequestTimeout: 5 * time.Second,
		// Equal to TombstoneTTL: had the owner deleted a datum this young, its tombstone would still
		// be listed, so the owner's silence means it never saw the datum (a partition healed, a push
		// was lost), and the datum goes back to it rather than being thrown away.
		RemoveGrace: 5 * time.Minute,
		// Keeps a push body around a megabyte for typical instance lists.
		MaxBatch: 1000,
		// Far beyond the skew of NTP-synchronised clocks (milliseconds), yet a version an hour
		// ahead is outrun by an hour of writes at worst, never by the remaining centuries to 2^64.
		MaxClockSkew: time.Hour,
	}
}

// Validate reports the first invalid setting; the error names the field
// (ConfigField), so a caller can name its own flag or option for it.
func (c Config) Validate() error {
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"SyncRetryDelay", c.SyncRetryDelay}, {"SyncRetryMax", c.SyncRetryMax},
		{"VerifyInterval", c.VerifyInterval}, {"TombstoneTTL", c.TombstoneTTL},
		{"SnapshotRetryMin", c.SnapshotRetryMin}, {"SnapshotRetryMax", c.SnapshotRetryMax},
		{"BootstrapWait", c.BootstrapWait}, {"RequestTimeout", c.RequestTimeout},
		{"MaxClockSkew", c.MaxClockSkew},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return configErr(p.name, "distro: %s must be positive, got %s", p.name, p.d)
		}
	}
	switch {
	case c.SyncDelay < 0:
		return configErr("SyncDelay", "distro: SyncDelay must not be negative, got %s", c.SyncDelay)
	case c.RemoveGrace < 0:
		return configErr("RemoveGrace", "distro: RemoveGrace must not be negative, got %s", c.RemoveGrace)
	case c.SyncRetryMax < c.SyncRetryDelay:
		return configErr("SyncRetryMax", "distro: SyncRetryMax %s below SyncRetryDelay %s", c.SyncRetryMax, c.SyncRetryDelay)
	case c.SnapshotRetryMax < c.SnapshotRetryMin:
		return configErr("SnapshotRetryMax", "distro: SnapshotRetryMax %s below SnapshotRetryMin %s", c.SnapshotRetryMax, c.SnapshotRetryMin)
	case c.TombstoneTTL < 3*c.VerifyInterval:
		return configErr("TombstoneTTL", "distro: TombstoneTTL %s must be at least 3 verify intervals (%s)", c.TombstoneTTL, 3*c.VerifyInterval)
	case c.MaxBatch <= 0:
		return configErr("MaxBatch", "distro: MaxBatch must be positive, got %d", c.MaxBatch)
	}
	return nil
}

// configErr is a Validate error naming the Config field at fault.
func configErr(field, format string, args ...any) error { return fielderr.New(field, format, args...) }

// Topology is the cluster as distro needs it; the daemon hands a new one to
// SetTopology after every membership change.
type Topology struct {
	// Self is this node's name.
	Self string
	// Peers are all alive members except self, ready or not: push targets.
	Peers []Peer
	// Ready are the ready peers: snapshot sources.
	Ready []Peer
	// Ring maps keys to owners among ready members; nil while no member is ready.
	Ring *hashring.Ring
}

// peer looks a peer up by name.
func (t *Topology) peer(name string) (Peer, bool) {
	for _, p := range t.Peers {
		if p.Name == name {
			return p, true
		}
	}
	return Peer{}, false
}

// owns reports whether this node is responsible for key in its ring.
func (t *Topology) owns(key string) bool {
	return t.Ring != nil && t.Ring.OwnerOf(key) == t.Self
}

// Config is the configuration the engine runs with.
func (e *Engine) Config() Config { return e.cfg }

// Status is the engine's state for /v1/distro/status.
type Status struct {
	Node           string         `json:"node"`
	Ready          bool           `json:"ready"`
	RingVersion    string         `json:"ringVersion"`
	Keys           int            `json:"keys"`
	Tombstones     int            `json:"tombstones"`
	Digest         string         `json:"digest"`
	PendingPushes  map[string]int `json:"pendingPushes"`
	LastVerify     time.Time      `json:"lastVerify"`
	SnapshotLoad   string         `json:"snapshotLoadDuration,omitempty"`
	SnapshotSource string         `json:"snapshotSource,omitempty"`
	// Horizon is when this node's view became complete (Engine.Horizon), as a time: a
	// nanosecond count does not survive a JSON client's float64.
	Horizon time.Time `json:"horizon,omitzero"`
	// Lineage names the history this node's store descends from (lineage.go).
	Lineage string `json:"lineage,omitempty"`
	// Loading says why a node that is not ready has not loaded yet.
	Loading string            `json:"loading,omitempty"`
	Extra   map[string]string `json:"-"`
}

// Engine is one node's Distro replication.
type Engine struct {
	cfg   Config
	store Store
	tr    Transport
	clock *Clock
	log   *slog.Logger
	met   *metrics
	now   func() time.Time

	// ctx is cancelled by Shutdown; every peer request derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	stop   chan struct{} // closed by Shutdown
	wg     sync.WaitGroup

	topo   atomic.Pointer[Topology]
	topoCh chan struct{} // cap 1: the topology changed (wakes the load loop)

	mu       sync.RWMutex // guards the fields below
	workers  map[string]*worker
	started  bool
	stopped  bool
	onLoaded []func()
	verifyOn map[string]bool // peers with a verify exchange in flight
	lastVer  time.Time
	loadDur  time.Duration
	loadSrc  string
	// origin: the version from which this store is complete and the history it
	// descends from (lineage.go); zero while loading.
	horizon uint64
	lineage Lineage

	loaded   atomic.Bool
	loadNext atomic.Uint64 // rotation index over ready peers
	// boot is when the engine was built: the horizon of a node that starts a cluster empty.
	boot uint64
	// waiting says why the load loop has not loaded yet (see LoadingReason).
	waiting atomic.Pointer[string]
	// bootstrapChecks counts the load loop's decisions not to bootstrap (a test hook).
	bootstrapChecks atomic.Int64

	lastRingMismatch atomic.Pointer[time.Time] // see LastRingMismatch
}

// New validates cfg and builds an engine; nothing runs until Start.
func New(cfg Config, store Store, tr Transport) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if store == nil || tr == nil {
		return nil, errors.New("distro: store and transport are required")
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:      cfg,
		store:    store,
		tr:       tr,
		clock:    NewClock(now),
		log:      log.With("component", "distro"),
		now:      now,
		stop:     make(chan struct{}),
		topoCh:   make(chan struct{}, 1),
		workers:  make(map[string]*worker),
		verifyOn: make(map[string]bool),
	}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.boot = wallVersion(now())
	e.topo.Store(&Topology{})
	e.met = newMetrics(e)
	if cfg.Metrics != nil {
		if err := e.met.register(cfg.Metrics); err != nil {
			e.cancel()
			return nil, fmt.Errorf("distro: register metrics: %w", err)
		}
	}
	if cfg.Standalone {
		e.loaded.Store(true)
		e.loadSrc = "standalone"
		e.horizon, e.lineage = e.boot, newLineage()
	}
	return e, nil
}

// Clock issues versions for local writes.
func (e *Engine) Clock() *Clock { return e.clock }

// Start launches the per-peer workers, the verify loop and, unless standalone, the snapshot load.
func (e *Engine) Start() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.stopped {
		return
	}
	e.started = true
	for _, w := range e.workers {
		e.goLocked(w.run)
	}
	e.goLocked(e.verifyLoop)
	if !e.loaded.Load() {
		e.goLocked(e.loadLoop)
	}
}

// goLocked runs fn on a goroutine Shutdown waits for. Caller holds e.mu.
func (e *Engine) goLocked(fn func()) bool {
	if e.stopped {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		fn()
	}()
	return true
}

// spawn is goLocked for callers that do not hold e.mu.
func (e *Engine) spawn(fn func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.goLocked(fn)
}

// topology is the current view; never nil, never modified after it is installed.
func (e *Engine) topology() *Topology { return e.topo.Load() }

// SetTopology installs a new view: workers for new peers, marks for departed peers dropped.
func (e *Engine) SetTopology(t Topology) {
	t.Peers = slices.Clone(t.Peers)
	t.Ready = slices.Clone(t.Ready)
	want := make(map[string]Peer, len(t.Peers))
	for _, p := range t.Peers {
		if p.Name != t.Self && p.Name != "" {
			want[p.Name] = p
		}
	}

	e.mu.Lock()
	e.topo.Store(&t)
	for name, w := range e.workers {
		if _, ok := want[name]; !ok {
			w.close()
			delete(e.workers, name)
			e.log.Info("peer left the view, dropping its pending pushes", "peer", name)
		}
	}
	for name, p := range want {
		if w, ok := e.workers[name]; ok {
			w.setPeer(p)
			continue
		}
		w := newWorker(e, p)
		e.workers[name] = w
		if e.started {
			e.goLocked(w.run)
		}
	}
	e.mu.Unlock()

	select {
	case e.topoCh <- struct{}{}:
	default:
	}
}

// Loaded reports whether the snapshot load finished (always true when standalone).
func (e *Engine) Loaded() bool { return e.loaded.Load() }

// OnLoaded registers fn to run once, from the engine's goroutine, when the load finishes.
// If the engine is already loaded, fn runs at once on a goroutine of its own.
func (e *Engine) OnLoaded(fn func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded.Load() {
		e.onLoaded = append(e.onLoaded, fn)
		return
	}
	e.goLocked(fn)
}

// markLoaded records a finished load with the store's origin once and runs the
// OnLoaded callbacks on the calling goroutine.
func (e *Engine) markLoaded(source string, took time.Duration, o Origin) {
	e.mu.Lock()
	if e.loaded.Load() {
		e.mu.Unlock()
		return
	}
	e.horizon, e.lineage = o.Horizon, o.Lineage
	e.waiting.Store(nil)
	e.loaded.Store(true)
	e.loadSrc, e.loadDur = source, took
	fns := e.onLoaded
	e.onLoaded = nil
	e.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// Status reports the engine's state.
func (e *Engine) Status() Status {
	t := e.topology()
	st := Status{Node: t.Self, Ready: e.Loaded(), PendingPushes: map[string]int{}, Loading: e.LoadingReason()}
	if t.Ring != nil {
		st.RingVersion = strconv.FormatUint(t.Ring.Version(), 16)
	}
	var digest uint64
	h := newEntryHasher()
	e.store.Range(func(d Datum) bool {
		if d.Deleted {
			st.Tombstones++
			return true
		}
		st.Keys++
		digest += h.sum(d.Key, d.Checksum())
		return true
	})
	st.Digest = strconv.FormatUint(digest, 16)

	e.mu.RLock()
	for name, w := range e.workers {
		st.PendingPushes[name] = w.pending()
	}
	st.LastVerify = e.lastVer
	st.Lineage = e.lineage.String()
	if e.horizon > 0 {
		st.Horizon = time.Unix(0, int64(min(e.horizon, math.MaxInt64))).UTC()
	}
	if e.loadSrc != "" {
		st.SnapshotSource = e.loadSrc
		if e.loadDur > 0 {
			st.SnapshotLoad = e.loadDur.String()
		}
	}
	e.mu.RUnlock()
	return st
}

// Shutdown stops every goroutine and waits for them, at most until ctx ends; idempotent.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if !e.stopped {
		e.stopped = true
		close(e.stop)
		e.cancel()
		for _, w := range e.workers {
			w.close()
		}
	}
	e.mu.Unlock()

	done := make(chan struct{})
	go func() {
		e.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("distro: shutdown: %w", ctx.Err())
	}
}

// requestCtx bounds one peer request by RequestTimeout, parent and Shutdown.
func (e *Engine) requestCtx(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(parent, e.cfg.RequestTimeout)
	stopWatch := context.AfterFunc(e.ctx, cancel)
	return ctx, func() {
		stopWatch()
		cancel()
	}
}

// sleep waits d or until Shutdown; it reports false when the engine stopped.
func (e *Engine) sleep(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-wake:
		return true
	case <-e.stop:
		return false
	}
}
