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
	"github.com/prometheus/client_golang/prometheus"
)

// Profiles lists the accepted gossip profiles.
var Profiles = []string{membership.ProfileLAN, membership.ProfileLocal, membership.ProfileWAN}

// Config configures one node: one tree holding each package's own Config
// (serf's Config holds memberlist's the same way), plus what only the daemon
// knows. Start from DefaultConfig, which builds every part from its package's
// DefaultConfig; zero durations are invalid.
//
// A setting shared by several parts (the node's name, its HTTP address, the
// secret) lives once at the top; the daemon fills the parts' copies of it, and
// their callbacks, loggers and metrics registerers. Those fields of the parts
// must be left zero: Validate refuses them rather than overwrite them.
type Config struct {
	// Name is the node's unique name in the cluster; a restarted node keeps its name.
	Name string
	// HTTPAddr is the host:port of the HTTP server (Nacos API, peer and ops endpoints); port 0 picks one.
	// The bound address is published to the members (Membership.HTTPAddr).
	HTTPAddr string
	// Secret, when set, encrypts gossip and authenticates peer HTTP requests and forwarded writes.
	Secret string
	// Bootstrap starts a new cluster on purpose: ready at once with an empty registry even
	// with Membership.Join (it still joins them). For the first node of a cluster, never for a restart.
	// Without Join or with Bootstrap, the daemon sets Distro.Standalone.
	Bootstrap bool

	// Membership is the gossip layer. BindAddr is the gossip host:port memberlist binds (TCP and
	// UDP; an IP, port 0 picks one). AdvertiseAddr (an IP:port, empty means BindAddr) is what peers
	// dial; its host is also published as the HTTP host when HTTPAddr binds 0.0.0.0. Join lists
	// members to join, retried until one answers: a node with Join that sees no other member stays
	// not ready (it never declares itself a cluster of one: see Bootstrap); empty means a new
	// cluster. Partitions also sizes the responsibility ring. The daemon fills Name, HTTPAddr,
	// Secret, OnChange and Logger.
	Membership membership.Config
	// Distro is the replication engine. RequestTimeout also bounds the peer client's requests.
	// RemoveGrace must not exceed TombstoneTTL (a deletion forgotten before a datum that old is
	// pushed back would bring it back); the agent keeps it equal to TombstoneTTL unless told.
	// The daemon fills Standalone, Logger and Metrics (Now stays nil: the wall clock).
	Distro distro.Config
	// Registry is the naming registry. UDPAddr empty means the HTTP host with an ephemeral port
	// (clients receive pushes on their own port; the server's may be anything). The daemon fills
	// Secret, Logger and Metrics.
	Registry naming.Config

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

// stallReadmitSlack is how long gossip may take to readmit a node back from a
// stall that its peers declared dead (a refute and a push/pull: well under a
// second on lan), before their verify rounds include it again.
const stallReadmitSlack = 2 * time.Second

// MinStallHold is the stall hold that covers a verify interval: the view of a
// node back from a stall is repaired by its peers' next verify round, up to a
// verify interval after gossip readmitted it, so stale reads are refused that
// long. DefaultConfig's Registry.StallHold is at least this; the agent keeps it
// so for a longer --verify-interval unless --stall-hold is given.
func MinStallHold(verifyInterval time.Duration) time.Duration {
	return verifyInterval + stallReadmitSlack
}

// DefaultConfig returns the design's defaults, built from each package's own
// DefaultConfig; only what the daemon decides differently is set here.
func DefaultConfig() Config {
	mc := membership.DefaultConfig()
	// Loopback until asked otherwise, on memberlist's customary port.
	mc.BindAddr = "127.0.0.1:7946"
	mc.Partitions = hashring.DefaultPartitions
	dc := distro.DefaultConfig()
	// Equal to TombstoneTTL: see distro.DefaultConfig, the principled value.
	dc.RemoveGrace = dc.TombstoneTTL
	nc := naming.DefaultConfig()
	nc.UDPAddr = "" // the HTTP host, any port (New)
	nc.StallHold = max(nc.StallHold, MinStallHold(dc.VerifyInterval))
	return Config{
		Name:     "",               // the CLI fills in the hostname
		HTTPAddr: "127.0.0.1:8848", // Nacos's port, so clients need no change

		Membership: mc,
		Distro:     dc,
		Registry:   nc,

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

// FieldError is a configuration error tied to one Config field, so the CLI can
// name its flag. Field is the path in the tree: "Name", "Distro.RemoveGrace".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %v", e.Field, e.Err) }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field string, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// configFielder is what the packages' Validate errors implement: the name of
// the field of their Config at fault.
type configFielder interface {
	error
	ConfigField() string
}

// inPart turns a package's Validate error into a *FieldError on the field's
// path in the tree; fields the daemon fills from the top name the top field.
func inPart(part string, err error, shared map[string]string) error {
	var cf configFielder
	if !errors.As(err, &cf) {
		return &FieldError{Field: part, Err: err}
	}
	if top, ok := shared[cf.ConfigField()]; ok {
		return &FieldError{Field: top, Err: err}
	}
	return &FieldError{Field: part + "." + cf.ConfigField(), Err: err}
}

// membershipConfig is the membership part with what the daemon fills in.
func (c Config) membershipConfig(httpAddr string, onChange func(), logger *slog.Logger) membership.Config {
	mc := c.Membership
	mc.Name = c.Name
	mc.HTTPAddr = httpAddr
	mc.Secret = c.Secret
	mc.OnChange = onChange
	mc.Logger = logger
	return mc
}

// distroConfig is the distro part with what the daemon fills in.
func (c Config) distroConfig(logger *slog.Logger, reg prometheus.Registerer) distro.Config {
	dc := c.Distro
	dc.Standalone = len(c.Membership.Join) == 0 || c.Bootstrap
	dc.Logger = logger
	dc.Metrics = reg
	return dc
}

// registryConfig is the registry part with what the daemon fills in.
func (c Config) registryConfig(udpAddr string, logger *slog.Logger, reg prometheus.Registerer) naming.Config {
	rc := c.Registry
	rc.UDPAddr = udpAddr
	rc.Secret = c.Secret // forwarded writes carry it, and received ones need it
	rc.Logger = logger
	rc.Metrics = reg
	return rc
}

// daemonOwned refuses a value in a field the daemon fills: it would be replaced.
func (c Config) daemonOwned() error {
	for _, f := range []struct {
		field, from string
		set         bool
	}{
		{"Membership.Name", "Name", c.Membership.Name != ""},
		{"Membership.HTTPAddr", "the bound HTTPAddr", c.Membership.HTTPAddr != ""},
		{"Membership.Secret", "Secret", c.Membership.Secret != ""},
		{"Membership.OnChange", "the node", c.Membership.OnChange != nil},
		{"Membership.Logger", "Logger", c.Membership.Logger != nil},
		{"Distro.Standalone", "Membership.Join and Bootstrap", c.Distro.Standalone},
		{"Distro.Logger", "Logger", c.Distro.Logger != nil},
		{"Distro.Metrics", "the node's /metrics", c.Distro.Metrics != nil},
		{"Distro.Now", "the wall clock", c.Distro.Now != nil},
		{"Registry.Secret", "Secret", c.Registry.Secret != ""},
		{"Registry.Logger", "Logger", c.Registry.Logger != nil},
		{"Registry.Metrics", "the node's /metrics", c.Registry.Metrics != nil},
	} {
		if f.set {
			return fieldErr(f.field, "is filled by the daemon from %s; leave it unset", f.from)
		}
	}
	return nil
}

// Validate checks every field, the parts' through their own Validate; the
// first problem is returned as a *FieldError naming its path in the tree.
func (c Config) Validate() error {
	if c.Name == "" {
		return fieldErr("Name", "must not be empty")
	}
	for _, r := range c.Name {
		if r < 0x20 || r == 0x7f { // the name travels in gossip, logs and peer request headers
			return fieldErr("Name", "must not contain control characters, got %q", c.Name)
		}
	}
	if err := c.daemonOwned(); err != nil {
		return err
	}
	for _, r := range []struct {
		field string
		v     float64
	}{{"FaultDropPushRatio", c.FaultDropPushRatio}, {"FaultLosePushRatio", c.FaultLosePushRatio}} {
		if r.v < 0 || r.v > 1 {
			return fieldErr(r.field, "must be between 0 and 1, got %v", r.v)
		}
	}
	m := c.Membership
	if err := checkIPPort(m.BindAddr); err != nil {
		return &FieldError{Field: "Membership.BindAddr", Err: err}
	}
	if err := checkHostPort(c.HTTPAddr); err != nil {
		return &FieldError{Field: "HTTPAddr", Err: err}
	}
	if m.AdvertiseAddr != "" {
		if err := checkIPPort(m.AdvertiseAddr); err != nil {
			return &FieldError{Field: "Membership.AdvertiseAddr", Err: err}
		}
	}
	for _, j := range m.Join {
		if err := checkHostPortSyntax(j); err != nil {
			return &FieldError{Field: "Membership.Join", Err: err}
		}
	}
	if c.Registry.UDPAddr != "" {
		if err := checkHostPort(c.Registry.UDPAddr); err != nil {
			return &FieldError{Field: "Registry.UDPAddr", Err: err}
		}
	}
	if !validProfile(m.Profile) { // membership takes "" for lan; the daemon wants it said
		return fieldErr("Membership.Profile", "unknown profile %q (want lan, local or wan)", m.Profile)
	}
	if err := c.membershipConfig(c.HTTPAddr, nil, nil).Validate(); err != nil {
		return inPart("Membership", err, map[string]string{"Name": "Name", "HTTPAddr": "HTTPAddr", "Secret": "Secret"})
	}
	if err := c.distroConfig(nil, nil).Validate(); err != nil {
		return inPart("Distro", err, nil)
	}
	if c.Distro.RemoveGrace > c.Distro.TombstoneTTL {
		return fieldErr("Distro.RemoveGrace", "%s exceeds TombstoneTTL %s: a datum deleted on its owner could come back once the tombstone is forgotten",
			c.Distro.RemoveGrace, c.Distro.TombstoneTTL)
	}
	if err := c.registryConfig(c.Registry.UDPAddr, nil, nil).Validate(); err != nil {
		return inPart("Registry", err, map[string]string{"Secret": "Secret"})
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"ReadTimeout", c.ReadTimeout}, {"WriteTimeout", c.WriteTimeout}, {"IdleTimeout", c.IdleTimeout}} {
		if d.v <= 0 {
			return fieldErr(d.field, "must be positive, got %s", d.v)
		}
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
