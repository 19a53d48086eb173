package distro

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/distrod/distrod/hashring"
)

// ErrNotLoaded is returned for requests a node cannot serve before its snapshot is loaded.
var ErrNotLoaded = errors.New("distro: snapshot not loaded")

// Config tunes the engine. Zero values are invalid; start from DefaultConfig.
type Config struct {
	// SyncDelay is the minimum wait before a marked key is pushed, merging bursts.
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
	// RequestTimeout bounds each peer request except snapshot streaming.
	RequestTimeout time.Duration
	// MaxBatch caps the keys sent in one push request.
	MaxBatch int
	// Standalone marks the node loaded at once (no peers to load from).
	Standalone bool
	// Logger receives the engine's logs.
	Logger *slog.Logger
}

// DefaultConfig returns the design's defaults.
func DefaultConfig() Config {
	return Config{
		SyncDelay:        5 * time.Millisecond, // merges bursts, far below Nacos's 1-2 s
		SyncRetryDelay:   time.Second,
		SyncRetryMax:     30 * time.Second,
		VerifyInterval:   5 * time.Second,
		TombstoneTTL:     30 * time.Second, // 6 verify intervals
		SnapshotRetryMin: time.Second,
		SnapshotRetryMax: 10 * time.Second,
		RequestTimeout:   5 * time.Second,
		MaxBatch:         1000,
	}
}

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

// Status is the engine's state for /v1/distro/status.
type Status struct {
	Node           string            `json:"node"`
	Ready          bool              `json:"ready"`
	RingVersion    string            `json:"ringVersion"`
	Keys           int               `json:"keys"`
	Tombstones     int               `json:"tombstones"`
	Digest         string            `json:"digest"`
	PendingPushes  map[string]int    `json:"pendingPushes"`
	LastVerify     time.Time         `json:"lastVerify"`
	SnapshotLoad   string            `json:"snapshotLoadDuration,omitempty"`
	SnapshotSource string            `json:"snapshotSource,omitempty"`
	Extra          map[string]string `json:"-"`
}

// Engine is one node's Distro replication.
type Engine struct {
	cfg   Config
	store Store
	tr    Transport
	clock *Clock
}

// New validates cfg and builds an engine; nothing runs until Start.
func New(cfg Config, store Store, tr Transport) (*Engine, error) {
	return &Engine{cfg: cfg, store: store, tr: tr, clock: NewClock(nil)}, nil
}

// Clock issues versions for local writes.
func (e *Engine) Clock() *Clock { return e.clock }

// Start launches the per-peer workers, the verify loop and, unless standalone, the snapshot load.
func (e *Engine) Start() {}

// SetTopology installs a new view: workers for new peers, marks for departed peers dropped.
func (e *Engine) SetTopology(t Topology) {}

// Changed marks key dirty for every peer after a local write was applied to the store.
func (e *Engine) Changed(key string) {}

// Loaded reports whether the snapshot load finished (always true when standalone).
func (e *Engine) Loaded() bool { return true }

// OnLoaded registers fn to run once, from the engine's goroutine, when the load finishes.
func (e *Engine) OnLoaded(fn func()) {}

// Status reports the engine's state.
func (e *Engine) Status() Status { return Status{} }

// Shutdown stops every goroutine and waits for them; idempotent.
func (e *Engine) Shutdown(ctx context.Context) error { return nil }

// HandlePush applies a pushed batch (receiver side of PUT /distro/v1/datum).
func (e *Engine) HandlePush(batch []Datum) error { return nil }

// HandleQuery returns the datums this node has for keys.
func (e *Engine) HandleQuery(keys []string) []Datum { return nil }

// HandleChecksum runs the receiver side of one verify message.
func (e *Engine) HandleChecksum(ctx context.Context, req ChecksumRequest) (ChecksumResponse, error) {
	return ChecksumResponse{}, nil
}

// HandleSnapshot streams every datum to fn.
func (e *Engine) HandleSnapshot(fn func(Datum) error) error { return nil }
