package main

import (
	"fmt"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/distrod/distrod/daemon"
	"github.com/urfave/cli/v2"
)

// agentSettings is everything `distrod agent` is configured with: the node's
// configuration tree and the agent's own settings.
type agentSettings struct {
	// Node is the daemon's configuration tree.
	Node daemon.Config
	// ShutdownTimeout bounds the graceful shutdown after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
}

// defaultAgentSettings are the flags' defaults: daemon.DefaultConfig, the
// hostname as the node name, and the agent's own defaults.
func defaultAgentSettings() agentSettings {
	s := agentSettings{Node: daemon.DefaultConfig(), ShutdownTimeout: 10 * time.Second}
	s.Node.Name, _ = os.Hostname()
	return s
}

// setting is one line of the agent's flag table: the flag (set also as
// DISTROD_<FLAG>), the field it sets, its help. The default is the field's
// value in defaultAgentSettings; the field's type picks the flag's type.
type setting struct {
	flag string
	// field points into s: *string, *[]string, *bool, *int, *int64, *float64 or *time.Duration.
	field  func(s *agentSettings) any
	usage  string
	hidden bool // tests only
	// follow, when set, derives the value from other settings when the flag is
	// not given (a default that follows them); an explicit value always wins.
	follow func(s *agentSettings)
}

// agentSettingsTable is every flag of `distrod agent` but the log flags
// (shared with dev). A new setting is a field of its package's Config plus a line here.
var agentSettingsTable = []setting{
	{flag: "name", field: func(s *agentSettings) any { return &s.Node.Name }, usage: "unique node name; keep it across restarts"},
	{flag: "gossip-addr", field: func(s *agentSettings) any { return &s.Node.Membership.BindAddr }, usage: "gossip host:port (TCP and UDP)"},
	{flag: "http-addr", field: func(s *agentSettings) any { return &s.Node.HTTPAddr }, usage: "HTTP host:port: Nacos API, peer and ops endpoints"},
	{flag: "advertise", field: func(s *agentSettings) any { return &s.Node.Membership.AdvertiseAddr }, usage: "gossip host:port peers dial, when it differs from --gossip-addr"},
	{flag: "join", field: func(s *agentSettings) any { return &s.Node.Membership.Join }, usage: "gossip host:port of a member to join (repeatable); not ready until a ready member is reached"},
	{flag: "bootstrap", field: func(s *agentSettings) any { return &s.Node.Bootstrap }, usage: "start a new cluster: ready at once, empty, even with --join (first node only, never on a restart)"},
	{flag: "secret", field: func(s *agentSettings) any { return &s.Node.Secret }, usage: "shared secret: encrypts gossip, authenticates peer HTTP"},
	{flag: "profile", field: func(s *agentSettings) any { return &s.Node.Membership.Profile }, usage: "gossip timings: lan, local or wan"},
	{flag: "probe-interval", field: func(s *agentSettings) any { return &s.Node.Membership.ProbeInterval }, usage: "gossip failure-detector probe interval (0: the profile's)"},
	{flag: "probe-timeout", field: func(s *agentSettings) any { return &s.Node.Membership.ProbeTimeout }, usage: "wait for a probe ack (0: the profile's)"},
	{flag: "suspicion-mult", field: func(s *agentSettings) any { return &s.Node.Membership.SuspicionMult }, usage: "suspicion timeout multiplier (0: the profile's)"},
	{flag: "gossip-interval", field: func(s *agentSettings) any { return &s.Node.Membership.GossipInterval }, usage: "gossip round interval (0: the profile's)"},
	{flag: "push-pull-interval", field: func(s *agentSettings) any { return &s.Node.Membership.PushPullInterval }, usage: "gossip full state sync interval (0: the profile's)"},
	{flag: "join-retry-min", field: func(s *agentSettings) any { return &s.Node.Membership.JoinRetryMin }, usage: "first backoff of a failed join"},
	{flag: "join-retry-max", field: func(s *agentSettings) any { return &s.Node.Membership.JoinRetryMax }, usage: "largest backoff of a failed join"},
	{flag: "leave-timeout", field: func(s *agentSettings) any { return &s.Node.Membership.LeaveTimeout }, usage: "bound on the graceful gossip leave on shutdown"},
	{flag: "dead-node-reclaim-time", field: func(s *agentSettings) any { return &s.Node.Membership.DeadNodeReclaimTime }, usage: "a dead member's name is taken over by a node at a new address after this long"},
	{flag: "reconnect-interval", field: func(s *agentSettings) any { return &s.Node.Membership.ReconnectInterval }, usage: "how often dead members (and the --join addresses) are tried again (0: 10s, 1s on local)"},
	{flag: "reconnect-timeout", field: func(s *agentSettings) any { return &s.Node.Membership.ReconnectTimeout }, usage: "how long a dead member is tried again"},
	{flag: "partitions", field: func(s *agentSettings) any { return &s.Node.Membership.Partitions }, usage: "partition count, the same on every node"},
	{flag: "sync-delay", field: func(s *agentSettings) any { return &s.Node.Distro.SyncDelay }, usage: "minimum wait before a change is pushed (merges bursts)"},
	{flag: "sync-retry-delay", field: func(s *agentSettings) any { return &s.Node.Distro.SyncRetryDelay }, usage: "first backoff after a failed push"},
	{flag: "sync-retry-max", field: func(s *agentSettings) any { return &s.Node.Distro.SyncRetryMax }, usage: "largest backoff after failed pushes (unless given, at least --sync-retry-delay)",
		follow: func(s *agentSettings) {
			s.Node.Distro.SyncRetryMax = max(s.Node.Distro.SyncRetryMax, s.Node.Distro.SyncRetryDelay)
		}},
	{flag: "verify-interval", field: func(s *agentSettings) any { return &s.Node.Distro.VerifyInterval }, usage: "interval of the checksum verify (anti-entropy)"},
	{flag: "tombstone-ttl", field: func(s *agentSettings) any { return &s.Node.Distro.TombstoneTTL }, usage: "how long deletions are remembered (>= 3 verify intervals)",
		follow: func(s *agentSettings) { // follow a longer --verify-interval
			s.Node.Distro.TombstoneTTL = max(s.Node.Distro.TombstoneTTL, 3*s.Node.Distro.VerifyInterval)
		}},
	{flag: "remove-grace", field: func(s *agentSettings) any { return &s.Node.Distro.RemoveGrace }, usage: "a datum younger than this that its owner does not list is sent back, not removed (<= --tombstone-ttl; unless given, equal to it)",
		follow: func(s *agentSettings) { s.Node.Distro.RemoveGrace = s.Node.Distro.TombstoneTTL }},
	{flag: "max-clock-skew", field: func(s *agentSettings) any { return &s.Node.Distro.MaxClockSkew }, usage: "refuse peer versions more than this ahead of this node's clock"},
	{flag: "peer-timeout", field: func(s *agentSettings) any { return &s.Node.Distro.RequestTimeout }, usage: "bound on one peer request (push, query, verify), not snapshot streaming"},
	{flag: "snapshot-retry-min", field: func(s *agentSettings) any { return &s.Node.Distro.SnapshotRetryMin }, usage: "first backoff of a failed snapshot load"},
	{flag: "snapshot-retry-max", field: func(s *agentSettings) any { return &s.Node.Distro.SnapshotRetryMax }, usage: "largest backoff of a failed snapshot load (unless given, at least --snapshot-retry-min)",
		follow: func(s *agentSettings) {
			s.Node.Distro.SnapshotRetryMax = max(s.Node.Distro.SnapshotRetryMax, s.Node.Distro.SnapshotRetryMin)
		}},
	{flag: "bootstrap-wait", field: func(s *agentSettings) any { return &s.Node.Distro.BootstrapWait }, usage: "how long all members seen must be loading before the lowest-named declares itself loaded"},
	{flag: "max-batch", field: func(s *agentSettings) any { return &s.Node.Distro.MaxBatch }, usage: "most keys in one push request or query"},
	{flag: "client-beat-interval", field: func(s *agentSettings) any { return &s.Node.Registry.BeatInterval }, usage: "beat period the registry asks clients for (clientBeatInterval)"},
	{flag: "beat-timeout", field: func(s *agentSettings) any { return &s.Node.Registry.BeatTimeout }, usage: "instance marked unhealthy after this long without a beat"},
	{flag: "delete-timeout", field: func(s *agentSettings) any { return &s.Node.Registry.DeleteTimeout }, usage: "instance removed after this long without a beat"},
	{flag: "expiry-interval", field: func(s *agentSettings) any { return &s.Node.Registry.ExpiryInterval }, usage: "how often the responsible node checks beats"},
	{flag: "settle-hold", field: func(s *agentSettings) any { return &s.Node.Registry.SettleHold }, usage: "the ring views must have agreed this long before expiry removes an instance (0: half of --delete-timeout)"},
	{flag: "failure-hold", field: func(s *agentSettings) any { return &s.Node.Registry.FailureHold }, usage: "after a member failed, expiry removes nothing this long, only marks unhealthy"},
	{flag: "stall-threshold", field: func(s *agentSettings) any { return &s.Node.Registry.StallThreshold }, usage: "a pause of the process this long is a stall (its view is stale)"},
	{flag: "stall-hold", field: func(s *agentSettings) any { return &s.Node.Registry.StallHold }, usage: "after a stall, reads and local writes are refused (503) this long (unless given, at least --verify-interval + 2s)",
		follow: func(s *agentSettings) {
			s.Node.Registry.StallHold = max(s.Node.Registry.StallHold, daemon.MinStallHold(s.Node.Distro.VerifyInterval))
		}},
	{flag: "forward-timeout", field: func(s *agentSettings) any { return &s.Node.Registry.ForwardTimeout }, usage: "bound on a write forwarded to its responsible node; past it the write runs here"},
	{flag: "forward-dial-timeout", field: func(s *agentSettings) any { return &s.Node.Registry.ForwardDialTimeout }, usage: "bound on connecting to the responsible node (<= --forward-timeout)"},
	{flag: "push-trust-client-ip", field: func(s *agentSettings) any { return &s.Node.Registry.PushTrustClientIP }, usage: "send UDP pushes to the clientIP parameter, not the request's source"},
	{flag: "udp-addr", field: func(s *agentSettings) any { return &s.Node.Registry.UDPAddr }, usage: "local host:port of the UDP push socket (default: HTTP host, any port)"},
	{flag: "push-ack-timeout", field: func(s *agentSettings) any { return &s.Node.Registry.PushAckTimeout }, usage: "wait for a UDP push's ack before its one retransmission"},
	{flag: "subscriber-ttl", field: func(s *agentSettings) any { return &s.Node.Registry.SubscriberTTL }, usage: "a UDP subscriber that neither queried nor acked this long is dropped (> 10s)"},
	{flag: "max-subscribers", field: func(s *agentSettings) any { return &s.Node.Registry.MaxSubscribers }, usage: "most UDP push subscriptions on this node; past it lists are answered without subscribing"},
	{flag: "max-service-bytes", field: func(s *agentSettings) any { return &s.Node.Registry.MaxServiceBytes }, usage: "largest encoded service; a write past it is refused (413)"},
	{flag: "max-metadata-bytes", field: func(s *agentSettings) any { return &s.Node.Registry.MaxMetadataBytes }, usage: "largest instance or service metadata"},
	{flag: "list-cache-bytes", field: func(s *agentSettings) any { return &s.Node.Registry.ListCacheBytes }, usage: "bytes of rendered /instance/list answers kept until their service changes (0: none)"},
	{flag: "read-timeout", field: func(s *agentSettings) any { return &s.Node.ReadTimeout }, usage: "bound on reading one HTTP request, headers and body"},
	{flag: "write-timeout", field: func(s *agentSettings) any { return &s.Node.WriteTimeout }, usage: "bound on writing one HTTP response (covers a snapshot stream to a peer)"},
	{flag: "idle-timeout", field: func(s *agentSettings) any { return &s.Node.IdleTimeout }, usage: "idle keep-alive HTTP connections are closed after this long"},
	{flag: "max-request-header-bytes", field: func(s *agentSettings) any { return &s.Node.MaxRequestHeaderBytes }, usage: "largest request line and headers (431 past it; >= 4096)"},
	{flag: "max-client-body-size", field: func(s *agentSettings) any { return &s.Node.MaxClientBodySize }, usage: "largest request body but on authenticated peer routes (413 past it)"},
	{flag: "max-peer-body-size", field: func(s *agentSettings) any { return &s.Node.MaxPeerBodySize }, usage: "largest body of an authenticated peer request (>= --max-client-body-size)"},
	{flag: "max-body-bytes-in-flight", field: func(s *agentSettings) any { return &s.Node.MaxBodyBytesInFlight }, usage: "request-body bytes held at once, half peer, half client (503 past it; >= 2 peer bodies)"},
	{flag: "fault-drop-push-ratio", field: func(s *agentSettings) any { return &s.Node.FaultDropPushRatio }, usage: "tests only: fail this share of peer pushes", hidden: true},
	{flag: "fault-lose-push-ratio", field: func(s *agentSettings) any { return &s.Node.FaultLosePushRatio }, usage: "tests only: silently lose this share of peer pushes", hidden: true},
	{flag: "fault-seed", field: func(s *agentSettings) any { return &s.Node.FaultSeed }, usage: "tests only: seed of the fault injection", hidden: true},
	{flag: "shutdown-timeout", field: func(s *agentSettings) any { return &s.ShutdownTimeout }, usage: "bound on the graceful shutdown after SIGINT/SIGTERM"},
}

// env is the environment variable of a flag: DISTROD_ and the flag in upper
// case with - as _.
func env(flag string) []string {
	b := []byte("DISTROD_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

// cliFlag is the urfave/cli flag of a setting, its default read from def.
func (st setting) cliFlag(def *agentSettings) cli.Flag {
	name, usage, envs, hidden := st.flag, st.usage, env(st.flag), st.hidden
	switch p := st.field(def).(type) {
	case *string:
		return &cli.StringFlag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	case *[]string:
		f := &cli.StringSliceFlag{Name: name, Usage: usage, EnvVars: envs, Hidden: hidden}
		if len(*p) > 0 {
			f.Value = cli.NewStringSlice(*p...)
		}
		return f
	case *bool:
		return &cli.BoolFlag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	case *int:
		return &cli.IntFlag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	case *int64:
		return &cli.Int64Flag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	case *float64:
		return &cli.Float64Flag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	case *time.Duration:
		return &cli.DurationFlag{Name: name, Value: *p, Usage: usage, EnvVars: envs, Hidden: hidden}
	}
	panic(fmt.Sprintf("agent flag --%s: unsupported field type %T", name, st.field(def))) // a table error, caught by the tests
}

// apply stores the parsed flag (or its default) in the setting's field of dst.
func (st setting) apply(c *cli.Context, dst *agentSettings) {
	switch p := st.field(dst).(type) {
	case *string:
		*p = c.String(st.flag)
	case *[]string:
		*p = c.StringSlice(st.flag)
	case *bool:
		*p = c.Bool(st.flag)
	case *int:
		*p = c.Int(st.flag)
	case *int64:
		*p = c.Int64(st.flag)
	case *float64:
		*p = c.Float64(st.flag)
	case *time.Duration:
		*p = c.Duration(st.flag)
	}
}

// agentFlags are the table's flags, with the defaults of defaultAgentSettings.
func agentFlags() []cli.Flag {
	def := defaultAgentSettings()
	flags := make([]cli.Flag, 0, len(agentSettingsTable))
	for _, st := range agentSettingsTable {
		flags = append(flags, st.cliFlag(&def))
	}
	return flags
}

// readAgentSettings applies every flag of the table to the defaults, then the
// follow rules of the flags not given, in table order.
func readAgentSettings(c *cli.Context) agentSettings {
	s := defaultAgentSettings()
	for _, st := range agentSettingsTable {
		st.apply(c, &s)
	}
	for _, st := range agentSettingsTable {
		if st.follow != nil && !c.IsSet(st.flag) {
			st.follow(&s)
		}
	}
	return s
}

// flagOfPath maps a field's path in daemon.Config ("Distro.RemoveGrace", as
// daemon.FieldError names it) to its flag, derived from the table's pointers.
var flagOfPath = sync.OnceValue(func() map[string]string {
	m := make(map[string]string, len(agentSettingsTable))
	var s agentSettings
	for _, st := range agentSettingsTable {
		if path, ok := fieldPath(reflect.ValueOf(&s.Node).Elem(), st.field(&s), ""); ok {
			m[path] = st.flag
		}
	}
	return m
})

// fieldPath finds the field of the struct v that ptr points to, as a dotted
// path of field names; false when ptr is not inside v.
func fieldPath(v reflect.Value, ptr any, prefix string) (string, bool) {
	target := reflect.ValueOf(ptr)
	for i := 0; i < v.NumField(); i++ {
		f, name := v.Field(i), prefix+v.Type().Field(i).Name
		if f.Kind() == reflect.Struct {
			if path, ok := fieldPath(f, ptr, name+"."); ok {
				return path, true
			}
			continue
		}
		if a := f.Addr(); a.Type() == target.Type() && a.Pointer() == target.Pointer() {
			return name, true
		}
	}
	return "", false
}
