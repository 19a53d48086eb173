package membership

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/distrod/distrod/internal/fielderr"
	"github.com/hashicorp/memberlist"
)

// Gossip profiles: which memberlist base configuration a node starts from.
const (
	ProfileLAN   = "lan"
	ProfileLocal = "local"
	ProfileWAN   = "wan"
)

// profiles maps a profile name to memberlist's base configuration for it.
var profiles = map[string]func() *memberlist.Config{
	ProfileLAN:   memberlist.DefaultLANConfig,
	ProfileLocal: memberlist.DefaultLocalConfig,
	ProfileWAN:   memberlist.DefaultWANConfig,
}

// ErrInvalidConfig wraps every error Validate returns.
var ErrInvalidConfig = errors.New("invalid membership config")

// Config configures one node's membership.
type Config struct {
	// Name is the node's unique name in the cluster.
	Name string
	// BindAddr is the gossip host:port to listen on (TCP and UDP); port 0 picks one.
	BindAddr string
	// AdvertiseAddr is the gossip host:port peers should use; empty means BindAddr.
	AdvertiseAddr string
	// HTTPAddr is the node's HTTP address, published in metadata.
	HTTPAddr string
	// Join lists gossip addresses to join, retried with backoff until one answers.
	Join []string
	// Secret, when set, encrypts gossip with a key derived from it.
	Secret string
	// Profile selects memberlist's base config: lan (default), local or wan.
	Profile string
	// Partitions is published in metadata; members with another count are refused.
	Partitions int
	// ProbeInterval, ProbeTimeout, SuspicionMult, GossipInterval override the profile when non-zero.
	ProbeInterval  time.Duration
	ProbeTimeout   time.Duration
	SuspicionMult  int
	GossipInterval time.Duration
	// PushPullInterval overrides the profile's full state sync (anti-entropy) interval when non-zero.
	PushPullInterval time.Duration
	// JoinRetryMin and JoinRetryMax bound the join backoff.
	JoinRetryMin, JoinRetryMax time.Duration
	// LeaveTimeout bounds the graceful leave on shutdown.
	LeaveTimeout time.Duration
	// DeadNodeReclaimTime is how long a dead member's name stays tied to its old
	// address; after it, a node of that name at a new address takes it over.
	DeadNodeReclaimTime time.Duration
	// ReconnectInterval is how often the node tries to join members it sees
	// dead (memberlist never contacts them again, so a healed partition stays
	// split without it) and, when it sees fewer alive members than it once
	// did, the Join addresses. Zero derives it from the profile: 10 s on lan
	// and wan, 1 s on local.
	ReconnectInterval time.Duration
	// ReconnectTimeout is how long a dead member is tried; zero means 24 h.
	ReconnectTimeout time.Duration
	// OnChange is called from the membership's event goroutine after member events were applied.
	OnChange func()
	// Logger receives membership logs and memberlist's own, bridged.
	Logger *slog.Logger

	// wrapTransport, when set, wraps the gossip transport (tests cut links with it).
	wrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
	// tuneMemberlist, when set, adjusts memberlist's config last (tests shorten its timers with it).
	tuneMemberlist func(*memberlist.Config)
}

// Reconnect defaults; see Config.ReconnectInterval and ReconnectTimeout.
const (
	// serf tries a dead member every 30 s; a registry whose ring is split
	// while the network is back wants it sooner, and a try is one TCP
	// exchange with a handful of members.
	defaultReconnectInterval = 10 * time.Second
	// On loopback a try costs next to nothing and clusters are tests.
	defaultLocalReconnectInterval = time.Second
	// serf's reconnect_timeout: a member dead for a day is not coming back
	// at that address.
	defaultReconnectTimeout = 24 * time.Hour
)

// DefaultConfig returns the settings a node runs with unless told otherwise;
// the CLI takes its defaults from here.
func DefaultConfig() Config {
	return Config{
		// memberlist's well-known port on every interface; memberlist then
		// advertises the first private IP it finds.
		BindAddr: "0.0.0.0:7946",
		// Nodes of one registry normally share a data centre; lan is
		// memberlist's tuning for that (1 s probes, 500 ms ack timeout).
		Profile: ProfileLAN,
		// Same default as hashring: enough partitions that each of a few
		// dozen nodes owns many, few enough that a checksum round stays small.
		Partitions: 1024,
		// A seed that is restarting is usually back within seconds; 1 s
		// finds it quickly without hammering it.
		JoinRetryMin: time.Second,
		// memberlist's lan push/pull interval: a lonely node retries about as
		// often as a joined one resynchronises, and logs at most twice a minute.
		JoinRetryMax: 30 * time.Second,
		// The leave broadcast needs a few gossip rounds (200 ms each on lan);
		// 5 s covers a slow link without holding up shutdown for long.
		LeaveTimeout: 5 * time.Second,
		// A crashed node restarted on a new address (a rescheduled container,
		// port 0) gets its name back after a few seconds instead of waiting for
		// memberlist to forget the dead entry (GossipToTheDeadTime, 30 s on lan).
		DeadNodeReclaimTime: 5 * time.Second,
		// ReconnectInterval stays 0: derived from the profile (reconnectInterval).
		ReconnectTimeout: defaultReconnectTimeout,
	}
}

// Validate reports the first setting that cannot work, naming it: the error
// wraps ErrInvalidConfig and names the field (ConfigField).
func (c Config) Validate() error {
	if c.Name == "" {
		return invalid("Name", "node name is empty")
	}
	if _, _, err := splitAddr(c.BindAddr, true); err != nil {
		return invalid("BindAddr", "bind address %q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := splitAddr(c.AdvertiseAddr, true); err != nil {
			return invalid("AdvertiseAddr", "advertise address %q: %v", c.AdvertiseAddr, err)
		}
	}
	if _, _, err := splitAddr(c.HTTPAddr, false); err != nil {
		return invalid("HTTPAddr", "HTTP address %q: %v", c.HTTPAddr, err)
	}
	for _, j := range c.Join {
		if j == "" {
			return invalid("Join", "join address is empty")
		}
	}
	if _, ok := profiles[c.profile()]; !ok {
		return invalid("Profile", "unknown gossip profile %q: want %s, %s or %s", c.Profile, ProfileLAN, ProfileLocal, ProfileWAN)
	}
	if c.Partitions <= 0 {
		return invalid("Partitions", "partitions must be > 0, got %d", c.Partitions)
	}
	for _, d := range []struct {
		field, name string
		v           time.Duration
	}{
		{"ProbeInterval", "probe interval", c.ProbeInterval}, {"ProbeTimeout", "probe timeout", c.ProbeTimeout},
		{"GossipInterval", "gossip interval", c.GossipInterval}, {"PushPullInterval", "push/pull interval", c.PushPullInterval},
		{"DeadNodeReclaimTime", "dead node reclaim time", c.DeadNodeReclaimTime},
		{"ReconnectInterval", "reconnect interval", c.ReconnectInterval}, {"ReconnectTimeout", "reconnect timeout", c.ReconnectTimeout},
	} {
		if d.v < 0 {
			return invalid(d.field, "%s must not be negative, got %s", d.name, d.v)
		}
	}
	if c.SuspicionMult < 0 {
		return invalid("SuspicionMult", "suspicion multiplier must not be negative, got %d", c.SuspicionMult)
	}
	if c.JoinRetryMin <= 0 {
		return invalid("JoinRetryMin", "join retry minimum must be > 0, got %s", c.JoinRetryMin)
	}
	if c.JoinRetryMax < c.JoinRetryMin {
		return invalid("JoinRetryMax", "join retry maximum %s is below the minimum %s", c.JoinRetryMax, c.JoinRetryMin)
	}
	if c.LeaveTimeout <= 0 {
		return invalid("LeaveTimeout", "leave timeout must be > 0, got %s", c.LeaveTimeout)
	}
	worst := meta{Protocol: ProtocolVersion, Partitions: c.Partitions, HTTPAddr: c.HTTPAddr, Ready: true, Leaving: true,
		Incarnation: newIncarnation()}
	if n := len(worst.encode()); n > memberlist.MetaMaxSize {
		return invalid("HTTPAddr", "HTTP address %q is too long: node metadata would be %d bytes, memberlist allows %d",
			c.HTTPAddr, n, memberlist.MetaMaxSize)
	}
	return nil
}

// invalid is a Validate error naming the Config field at fault; it wraps ErrInvalidConfig.
func invalid(field, format string, args ...any) error {
	return fielderr.New(field, "%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// profile is the profile name with the empty string meaning lan.
func (c Config) profile() string {
	if c.Profile == "" {
		return ProfileLAN
	}
	return c.Profile
}

// reconnectInterval is ReconnectInterval, or the profile's default when zero.
func (c Config) reconnectInterval() time.Duration {
	switch {
	case c.ReconnectInterval > 0:
		return c.ReconnectInterval
	case c.profile() == ProfileLocal:
		return defaultLocalReconnectInterval
	default:
		return defaultReconnectInterval
	}
}

// reconnectTimeout is ReconnectTimeout, or 24 h when zero.
func (c Config) reconnectTimeout() time.Duration {
	if c.ReconnectTimeout > 0 {
		return c.ReconnectTimeout
	}
	return defaultReconnectTimeout
}

// splitAddr parses host:port with a port in 0..65535; ipOnly demands an IP
// literal or an empty host (memberlist binds and advertises IPs, not names).
func splitAddr(addr string, ipOnly bool) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("want host:port: %w", err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port %q is not a number in 0..65535", portStr)
	}
	if ipOnly && host != "" && net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("host %q is not an IP address", host)
	}
	return host, int(port), nil
}

// memberlistConfig builds memberlist's configuration from a validated c:
// the profile's base, the non-zero overrides, addresses and the gossip key.
// Delegates and the logger are New's business.
func (c Config) memberlistConfig() *memberlist.Config {
	mc := profiles[c.profile()]()
	mc.Name = c.Name

	host, port, _ := splitAddr(c.BindAddr, true)
	if host == "" {
		host = "0.0.0.0"
	}
	mc.BindAddr, mc.BindPort = host, port
	// With BindPort 0 memberlist replaces AdvertisePort by the bound port.
	mc.AdvertiseAddr, mc.AdvertisePort = "", port
	if c.AdvertiseAddr != "" {
		ahost, aport, _ := splitAddr(c.AdvertiseAddr, true)
		mc.AdvertiseAddr = ahost
		if aport != 0 {
			mc.AdvertisePort = aport
		}
	}

	if c.ProbeInterval > 0 {
		mc.ProbeInterval = c.ProbeInterval
	}
	if c.ProbeTimeout > 0 {
		mc.ProbeTimeout = c.ProbeTimeout
	}
	if c.SuspicionMult > 0 {
		mc.SuspicionMult = c.SuspicionMult
	}
	if c.GossipInterval > 0 {
		mc.GossipInterval = c.GossipInterval
	}
	if c.PushPullInterval > 0 {
		mc.PushPullInterval = c.PushPullInterval
	}
	mc.DeadNodeReclaimTime = c.DeadNodeReclaimTime

	if c.Secret != "" {
		key := sha256.Sum256([]byte(c.Secret)) // 32 bytes: AES-256
		mc.SecretKey = key[:]
	}
	return mc
}
