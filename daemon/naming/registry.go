// Package naming is the service registry: the instance model, the store that
// distro replicates, the Nacos v1 naming API, write forwarding, heartbeat
// expiry and UDP push.
package naming

import (
	"context"
	"log/slog"
	"time"

	"github.com/distrod/distrod/distro"
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
}

// Server is one member as /nacos/v1/ns/operator/servers reports it.
type Server struct {
	Name     string
	HTTPAddr string
	State    string
}

// Config tunes the registry.
type Config struct {
	// BeatTimeout marks an instance unhealthy after this long without a beat.
	BeatTimeout time.Duration
	// DeleteTimeout removes an instance after this long without a beat.
	DeleteTimeout time.Duration
	// ExpiryInterval is how often the responsible node checks beats.
	ExpiryInterval time.Duration
	// ForwardTimeout bounds a forwarded write.
	ForwardTimeout time.Duration
	// UDPAddr is the local address for UDP push ("127.0.0.1:0" picks a port; empty disables push).
	UDPAddr string
	// PushTrustClientIP sends pushes to the clientIP parameter instead of the request's source address.
	PushTrustClientIP bool
	// SubscriberTTL expires a UDP subscriber that did not refresh.
	SubscriberTTL time.Duration
	// MaxMetadataBytes caps an instance's metadata.
	MaxMetadataBytes int
	// Logger receives the registry's logs.
	Logger *slog.Logger
	// Metrics registers the registry's collectors; nil registers nothing.
	Metrics prometheus.Registerer
}

// DefaultConfig returns Nacos's timings.
func DefaultConfig() Config {
	return Config{
		BeatTimeout:      15 * time.Second,
		DeleteTimeout:    30 * time.Second,
		ExpiryInterval:   time.Second,
		ForwardTimeout:   3 * time.Second,
		UDPAddr:          "127.0.0.1:0",
		SubscriberTTL:    10 * time.Second,
		MaxMetadataBytes: 4096,
	}
}

// Registry is one node's registry. It implements distro.Store.
type Registry struct {
	cfg     Config
	cluster Cluster
}

var _ distro.Store = (*Registry)(nil)

// New validates cfg and binds the UDP push socket.
func New(cfg Config, cluster Cluster) (*Registry, error) {
	return &Registry{cfg: cfg, cluster: cluster}, nil
}

// Start launches heartbeat expiry and the UDP push loops.
func (r *Registry) Start() {}

// Shutdown stops the registry's goroutines and waits; idempotent.
func (r *Registry) Shutdown(ctx context.Context) error { return nil }

// Handle serves /nacos/v1/ns/... and reports whether the path was the registry's.
func (r *Registry) Handle(ctx *fasthttp.RequestCtx) bool { return false }

// OwnershipGained gives the instances of newly owned partitions a fresh beat (grace).
func (r *Registry) OwnershipGained(partitionOf func(key string) int, gained map[int]bool) {}

// Counts reports live services and instances for status and metrics.
func (r *Registry) Counts() (services, instances int) { return 0, 0 }

// distro.Store

func (r *Registry) Get(key string) (distro.Datum, bool) { return distro.Datum{}, false }
func (r *Registry) Apply(d distro.Datum) bool           { return false }
func (r *Registry) Range(fn func(distro.Datum) bool)    {}
func (r *Registry) Sweep(before uint64) int             { return 0 }
