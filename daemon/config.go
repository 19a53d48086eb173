// Package daemon wires membership, the responsibility ring, distro and the
// naming registry into one distrod node with New / Start / Shutdown(ctx), and
// serves the ops endpoints (/health, /v1/cluster/*, /v1/distro/status, /metrics).
package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/distrod/distrod/daemon/naming"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/membership"
)

// Profiles lists the accepted gossip profiles.
var Profiles = []string{membership.ProfileLAN, membership.ProfileLocal, membership.ProfileWAN}

// Config configures one node. Start from DefaultConfig; zero durations are invalid.
type Config struct {
	// Name is the node's unique name in the cluster; a restarted node keeps its name.
	Name string
	// GossipAddr is the host:port memberlist binds (TCP and UDP); port 0 picks one.
	GossipAddr string
	// HTTPAddr is the host:port of the HTTP server (Nacos API, peer and ops endpoints); port 0 picks one.
	HTTPAddr string
	// Advertise is the gossip host:port peers should dial; empty means GossipAddr. Its host is also
	// published as the HTTP host when HTTPAddr binds an unspecified address (0.0.0.0).
	Advertise string
	// Join lists gossip addresses of existing members, retried with backoff until one answers.
	// Empty means a new cluster, ready at once. A node with Join that sees no other member
	// stays not ready (it never declares itself a cluster of one: see Bootstrap).
	Join []string
	// Bootstrap starts a new cluster on purpose: ready at once with an empty registry even
	// with Join (it still joins them). For the first node of a cluster, never for a restart.
	Bootstrap bool
	// Secret, when set, encrypts gossip and authenticates peer HTTP requests.
	Secret string
	// Profile selects the gossip timings: lan (default), local or wan.
	Profile string
	// Partitions is the partition count; every node of a cluster must use the same one.
	Partitions int

	// ProbeInterval, ProbeTimeout, SuspicionMult, GossipInterval and PushPullInterval
	// (memberlist's full state sync) override the profile when non-zero.
	ProbeInterval    time.Duration
	ProbeTimeout     time.Duration
	SuspicionMult    int
	GossipInterval   time.Duration
	PushPullInterval time.Duration
	// JoinRetryMin and JoinRetryMax bound the join backoff.
	JoinRetryMin, JoinRetryMax time.Duration
	// LeaveTimeout bounds the graceful gossip leave on shutdown.
	LeaveTimeout time.Duration
	// DeadNodeReclaimTime lets a node restarted under its old name on a new address take the name back after this long.
	DeadNodeReclaimTime time.Duration

	// SyncDelay is distro's minimum wait before a change is pushed, merging bursts.
	SyncDelay time.Duration
	// SyncRetryDelay is the first backoff after a failed push.
	SyncRetryDelay time.Duration
	// VerifyInterval is how often a node sends the checksums of the keys it owns to its peers.
	VerifyInterval time.Duration
	// TombstoneTTL is how long a deletion is remembered; at least 3 verify intervals.
	TombstoneTTL time.Duration
	// PeerTimeout bounds one peer request (push, query, verify), not snapshot streaming.
	PeerTimeout time.Duration
	// MaxClockSkew refuses datums from peers whose version is more than this ahead of this node's clock.
	MaxClockSkew time.Duration

	// BeatTimeout marks an instance unhealthy after this long without a heartbeat.
	BeatTimeout time.Duration
	// DeleteTimeout removes an instance after this long without a heartbeat.
	DeleteTimeout time.Duration
	// PushTrustClientIP sends UDP pushes to the clientIP parameter instead of the request's source address.
	PushTrustClientIP bool
	// UDPAddr is the local address of the UDP push socket; empty means the HTTP host with an
	// ephemeral port (clients receive pushes on their own port; the server's may be anything).
	UDPAddr string

	// ReadTimeout bounds reading one request, headers and body.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response; it must cover a snapshot stream to a peer.
	WriteTimeout time.Duration
	// IdleTimeout closes keep-alive connections idle this long (without it shutdown waits for them).
	IdleTimeout time.Duration
	// MaxRequestHeaderBytes caps a request's line and headers (fasthttp's per-connection read buffer);
	// larger ones get 431. The Java 1.x client sends register and beat parameters in the query.
	MaxRequestHeaderBytes int
	// MaxClientBodySize caps a request body on every route but the authenticated peer ones (Nacos API,
	// ops endpoints, unknown paths); a larger Content-Length gets 413 before a byte of the body is read.
	MaxClientBodySize int
	// MaxPeerBodySize caps a request body on the peer endpoints (/distro/v1/*) when the request carries
	// the secret (any /distro/ request when no secret is set); peer requests without it get MaxClientBodySize.
	MaxPeerBodySize int
	// MaxBodyBytesInFlight bounds the request-body bytes the node holds at once, reserved from the
	// headers before a body is read, half for peer and half for client requests; past it, 503.
	MaxBodyBytesInFlight int

	// FaultDropPushRatio fails this share of outgoing pushes (the engine retries them); tests only.
	FaultDropPushRatio float64
	// FaultLosePushRatio silently loses this share of outgoing pushes, so only verify repairs them; tests only.
	FaultLosePushRatio float64
	// FaultSeed seeds the fault injection, so a failing run can be repeated.
	FaultSeed int64

	// Logger receives every log of the node; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the design's defaults, taken from each package's own defaults.
func DefaultConfig() Config {
	mc := membership.DefaultConfig()
	dc := distro.DefaultConfig()
	nc := naming.DefaultConfig()
	return Config{
		Name:       "",               // the CLI fills in the hostname
		GossipAddr: "127.0.0.1:7946", // memberlist's customary port, loopback until asked otherwise
		HTTPAddr:   "127.0.0.1:8848", // Nacos's port, so clients need no change
		Profile:    mc.Profile,
		Partitions: hashring.DefaultPartitions,

		JoinRetryMin:        mc.JoinRetryMin,
		JoinRetryMax:        mc.JoinRetryMax,
		LeaveTimeout:        mc.LeaveTimeout,
		DeadNodeReclaimTime: mc.DeadNodeReclaimTime,

		SyncDelay:      dc.SyncDelay,
		SyncRetryDelay: dc.SyncRetryDelay,
		VerifyInterval: dc.VerifyInterval,
		TombstoneTTL:   dc.TombstoneTTL,
		PeerTimeout:    dc.RequestTimeout,
		MaxClockSkew:   dc.MaxClockSkew,

		BeatTimeout:       nc.BeatTimeout,
		DeleteTimeout:     nc.DeleteTimeout,
		PushTrustClientIP: nc.PushTrustClientIP,

		ReadTimeout:  30 * time.Second,
		WriteTimeout: 5 * time.Minute, // a snapshot of a large registry streams in one response
		IdleTimeout:  60 * time.Second,
		// A Nacos form is small: metadata is capped at naming's MaxMetadataBytes (4 KiB), which
		// JSON-escaped and URL-encoded grows at most 8x, in the metadata and the beat parameter
		// alike (64 KiB), plus names of at most distro.MaxKeyLen; 128 KiB fits that with room.
		MaxClientBodySize: 128 << 10,
		// The same parameters in the query: metadata at its limit, percent-encoded (3x for JSON's
		// punctuation, far less for its text), plus 4 KiB of other parameters and headers. fasthttp's
		// 4 KiB default refused 3 950 characters of metadata, under the metadata limit. Every open
		// connection holds a buffer this large (a 40 KiB one cost ~90 B per instance in distrod bench).
		MaxRequestHeaderBytes: 3*nc.MaxMetadataBytes + 4<<10,
		MaxPeerBodySize:       32 << 20, // twice distro's 16 MiB push requests (ClientConfig.MaxRequestBytes)
		// Two full-size peer bodies (four of the 16 MiB pushes peers send) and 512 largest Nacos
		// forms at once; far below what a machine has, whatever the connections announce.
		MaxBodyBytesInFlight: 4 * (32 << 20),
	}
}

// FieldError is a configuration error tied to one Config field, so the CLI can name its flag.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate checks every field; the first problem is returned as a *FieldError.
func (c Config) Validate() error {
	if c.Name == "" {
		return fieldErr("Name", "must not be empty")
	}
	for _, r := range c.Name {
		if r < 0x20 || r == 0x7f { // the name travels in gossip, logs and peer request headers
			return fieldErr("Name", "must not contain control characters, got %q", c.Name)
		}
	}
	for _, r := range []struct {
		field string
		v     float64
	}{{"FaultDropPushRatio", c.FaultDropPushRatio}, {"FaultLosePushRatio", c.FaultLosePushRatio}} {
		if r.v < 0 || r.v > 1 {
			return fieldErr(r.field, "must be between 0 and 1, got %v", r.v)
		}
	}
	if err := checkIPPort(c.GossipAddr); err != nil {
		return &FieldError{Field: "GossipAddr", Err: err}
	}
	if err := checkHostPort(c.HTTPAddr); err != nil {
		return &FieldError{Field: "HTTPAddr", Err: err}
	}
	if c.Advertise != "" {
		if err := checkIPPort(c.Advertise); err != nil {
			return &FieldError{Field: "Advertise", Err: err}
		}
	}
	for _, j := range c.Join {
		if err := checkHostPortSyntax(j); err != nil {
			return &FieldError{Field: "Join", Err: err}
		}
	}
	if c.UDPAddr != "" {
		if err := checkHostPort(c.UDPAddr); err != nil {
			return &FieldError{Field: "UDPAddr", Err: err}
		}
	}
	if !validProfile(c.Profile) {
		return fieldErr("Profile", "unknown profile %q (want lan, local or wan)", c.Profile)
	}
	if c.Partitions <= 0 {
		return fieldErr("Partitions", "must be positive, got %d", c.Partitions)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"JoinRetryMin", c.JoinRetryMin}, {"JoinRetryMax", c.JoinRetryMax}, {"LeaveTimeout", c.LeaveTimeout},
		{"DeadNodeReclaimTime", c.DeadNodeReclaimTime},
		{"SyncRetryDelay", c.SyncRetryDelay}, {"VerifyInterval", c.VerifyInterval},
		{"TombstoneTTL", c.TombstoneTTL}, {"PeerTimeout", c.PeerTimeout}, {"MaxClockSkew", c.MaxClockSkew},
		{"BeatTimeout", c.BeatTimeout}, {"DeleteTimeout", c.DeleteTimeout},
		{"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout},
	} {
		if d.v <= 0 {
			return fieldErr(d.field, "must be positive, got %s", d.v)
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"SyncDelay", c.SyncDelay}, {"ProbeInterval", c.ProbeInterval}, {"ProbeTimeout", c.ProbeTimeout}, {"GossipInterval", c.GossipInterval}, {"PushPullInterval", c.PushPullInterval}} {
		if d.v < 0 {
			return fieldErr(d.field, "must not be negative, got %s", d.v)
		}
	}
	if c.SuspicionMult < 0 {
		return fieldErr("SuspicionMult", "must not be negative, got %d", c.SuspicionMult)
	}
	if c.JoinRetryMax < c.JoinRetryMin {
		return fieldErr("JoinRetryMax", "%s is below JoinRetryMin %s", c.JoinRetryMax, c.JoinRetryMin)
	}
	if c.TombstoneTTL < 3*c.VerifyInterval {
		return fieldErr("TombstoneTTL", "%s is below 3 verify intervals (%s)", c.TombstoneTTL, 3*c.VerifyInterval)
	}
	if c.DeleteTimeout < c.BeatTimeout {
		return fieldErr("DeleteTimeout", "%s is below the beat timeout %s", c.DeleteTimeout, c.BeatTimeout)
	}
	if c.MaxRequestHeaderBytes < 4<<10 {
		return fieldErr("MaxRequestHeaderBytes", "%d is below 4096, fasthttp's minimum for ordinary requests", c.MaxRequestHeaderBytes)
	}
	if c.MaxClientBodySize <= 0 {
		return fieldErr("MaxClientBodySize", "must be positive, got %d", c.MaxClientBodySize)
	}
	if c.MaxPeerBodySize < c.MaxClientBodySize {
		return fieldErr("MaxPeerBodySize", "%d is below MaxClientBodySize %d", c.MaxPeerBodySize, c.MaxClientBodySize)
	}
	// Each half must hold one largest body of its class (the client limit is the smaller).
	if c.MaxBodyBytesInFlight/2 < c.MaxPeerBodySize {
		return fieldErr("MaxBodyBytesInFlight", "%d: its peer half holds less than one peer body of MaxPeerBodySize %d",
			c.MaxBodyBytesInFlight, c.MaxPeerBodySize)
	}
	return nil
}

func validProfile(p string) bool {
	for _, q := range Profiles {
		if p == q {
			return true
		}
	}
	return false
}

// errBadHostPort is wrapped by every host:port validation error.
var errBadHostPort = errors.New("want host:port")

// checkHostPort checks a local address: syntax, and a host that resolves.
func checkHostPort(addr string) error {
	if err := checkHostPortSyntax(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			return fmt.Errorf("%q: unknown host: %w", addr, errBadHostPort)
		}
	}
	return nil
}

// checkIPPort checks an ip:port: memberlist binds and advertises IP addresses only.
func checkIPPort(addr string) error {
	if err := checkHostPortSyntax(addr); err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	if net.ParseIP(host) == nil {
		return fmt.Errorf("%q: host must be an IP address: %w", addr, errBadHostPort)
	}
	return nil
}

// checkHostPortSyntax checks host:port syntax only: a join address may not resolve yet.
func checkHostPortSyntax(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: %w", addr, errBadHostPort)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 0-65535: %w", addr, errBadHostPort)
	}
	return nil
}
