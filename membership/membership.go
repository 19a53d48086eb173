// Package membership wraps hashicorp/memberlist: node metadata, the live view
// and member events, which callbacks only copy and enqueue for one goroutine.
package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's gossip state as the ops endpoints report it.
//
// StateSuspect is part of the vocabulary but this package does not report it:
// memberlist v0.7.0 exposes no suspicion through its API (Node.State is never
// filled in), so a suspected member shows as alive until it is declared dead.
// Others and Ready treat suspect like alive, so nothing depends on it.
type State string

const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// ProtocolVersion is carried in node metadata; members speaking another one are refused.
// Version 2 publishes an incarnation id and sends it with every peer request,
// which version 1 nodes neither publish nor send, and distro's verify messages
// and snapshots carry the sender's origin (horizon and lineage).
const ProtocolVersion = 2

// ErrShutdown is returned by calls made after Shutdown.
var ErrShutdown = errors.New("membership is shut down")

// metaUpdateTimeout bounds SetReady's wait for its metadata broadcast.
const metaUpdateTimeout = 5 * time.Second

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
	// Incarnation is the member's process id from its metadata (see meta).
	Incarnation string `json:"-"`
}

// live tells whether the member takes part in the cluster (alive or suspect).
func (mb Member) live() bool { return mb.State == StateAlive || mb.State == StateSuspect }

// Membership is one node's view of the cluster.
type Membership struct {
	cfg        Config
	log        *slog.Logger
	ml         *memberlist.Memberlist
	gossipAddr string
	events     *eventQueue
	// incarnation is this process's random id, published in metadata.
	incarnation string

	ready   atomic.Bool // published in metadata
	leaving atomic.Bool // published in metadata just before a graceful leave

	mu      sync.Mutex           // guards members, since, maxLive
	members map[string]Member    // name → last known state, dead and left kept
	since   map[string]time.Time // name → when its state last changed
	maxLive int                  // most live members (self included) seen at once, less those that left

	// life serialises memberlist's Leave/Shutdown (crash, Shutdown) against
	// UpdateNode (SetReady): memberlist panics on Leave after Shutdown.
	life    sync.RWMutex
	closed  bool // Shutdown began; guarded by life
	crashed bool // memberlist shut down without leaving; guarded by life

	stopCh       chan struct{}
	announceCh   chan struct{}      // capacity 1: pushLoop's pending announce
	cancelDials  context.CancelFunc // ends gossip TCP dials in flight; called by Shutdown
	wg           sync.WaitGroup
	startOnce    sync.Once
	shutdownOnce sync.Once
	shutdownErr  error

	joinAttempts atomic.Int64           // test hook: Join calls made by the join loop
	joinErr      atomic.Pointer[string] // the join loop's last failure until a join succeeds

	names nameCheck // is this node's name held by another live node? (conflict.go)
}

// New validates cfg and creates the memberlist (binding its listeners); nothing is joined until Start.
// memberlist starts its own goroutines here; Shutdown stops them.
func New(cfg Config) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Membership{
		cfg:         cfg,
		log:         logger.With("component", "membership"),
		events:      newEventQueue(),
		members:     make(map[string]Member),
		since:       make(map[string]time.Time),
		stopCh:      make(chan struct{}),
		incarnation: newIncarnation(),
		// A node without Join starts a new cluster: nobody holds its name yet.
		names: newNameCheck(len(cfg.Join) == 0),
		// Capacity 1 so that requestAnnounce never blocks.
		announceCh: make(chan struct{}, 1),
	}
	mc := cfg.memberlistConfig()
	mc.Logger = newMemberlistLogger(logger)
	d := delegate{m: m}
	mc.Delegate, mc.Alive, mc.Merge, mc.Conflict, mc.Events = d, d, d, d, m.events
	if cfg.tuneMemberlist != nil {
		cfg.tuneMemberlist(mc)
	}

	var dialCtx context.Context
	dialCtx, m.cancelDials = context.WithCancel(context.Background())
	tr, err := newTransport(dialCtx, mc)
	if err != nil {
		m.cancelDials()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	mc.Transport = tr
	if cfg.wrapTransport != nil {
		mc.Transport = cfg.wrapTransport(tr)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		m.cancelDials()
		_ = tr.Shutdown()
		return nil, fmt.Errorf("start gossip on %s: %w", cfg.BindAddr, err)
	}
	m.ml = ml
	// Nobody can refute or update our own entry yet, so reading it is safe.
	self := ml.LocalNode()
	m.gossipAddr = net.JoinHostPort(self.Addr.String(), strconv.Itoa(int(self.Port)))
	m.log.Info("gossip listening", "node", cfg.Name, "addr", m.gossipAddr, "profile", cfg.profile(),
		"encrypted", cfg.Secret != "")
	return m, nil
}

// GossipAddr is the bound gossip address (the real port when BindAddr had port 0),
// as advertised to peers.
func (m *Membership) GossipAddr() string { return m.gossipAddr }

// Start launches the event goroutine, the join loop and the reconnect loop.
func (m *Membership) Start() {
	m.startOnce.Do(func() {
		m.life.RLock()
		defer m.life.RUnlock()
		if m.closed {
			return
		}
		m.wg.Add(1)
		go m.runEvents()
		if len(m.cfg.Join) > 0 {
			m.wg.Add(1)
			go m.joinLoop()
		}
		m.wg.Add(1)
		go m.reconnectLoop()
		m.wg.Add(1)
		go m.pushLoop()
	})
}

// localMeta is the metadata this node publishes.
func (m *Membership) localMeta() meta {
	return meta{
		Protocol:    ProtocolVersion,
		Partitions:  m.cfg.Partitions,
		HTTPAddr:    m.cfg.HTTPAddr,
		Ready:       m.ready.Load(),
		Leaving:     m.leaving.Load(),
		Incarnation: m.incarnation,
	}
}

// Local is this node as peers see it.
func (m *Membership) Local() Member {
	state := StateAlive
	if m.leaving.Load() {
		state = StateLeft
	}
	return Member{
		Name:        m.cfg.Name,
		GossipAddr:  m.gossipAddr,
		HTTPAddr:    m.cfg.HTTPAddr,
		State:       state,
		Ready:       m.ready.Load(),
		Self:        true,
		Partitions:  m.cfg.Partitions,
		Protocol:    ProtocolVersion,
		Incarnation: m.incarnation,
	}
}

// Lookup is the view's entry for name (the local one for self) and whether
// the view knows the name at all, whatever its state.
func (m *Membership) Lookup(name string) (Member, bool) {
	if name == m.cfg.Name {
		return m.Local(), true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	mb, ok := m.members[name]
	return mb, ok
}

// Members lists every known member, dead and left included, sorted by name.
func (m *Membership) Members() []Member {
	return m.view(func(Member) bool { return true })
}

// Others lists alive members except self, ready or not (memberlist's allMembersWithoutSelf).
func (m *Membership) Others() []Member {
	return m.view(func(mb Member) bool { return !mb.Self && mb.live() })
}

// Ready lists alive, ready members, self included when ready.
func (m *Membership) Ready() []Member {
	return m.view(func(mb Member) bool { return mb.live() && mb.Ready })
}

// view returns copies of the members keep accepts, sorted by name; self is
// always the local view (its ready flag is the local one).
func (m *Membership) view(keep func(Member) bool) []Member {
	self := m.Local()
	m.mu.Lock()
	out := make([]Member, 0, len(m.members)+1)
	for name, mb := range m.members {
		if name != self.Name && keep(mb) {
			out = append(out, mb)
		}
	}
	m.mu.Unlock()
	if keep(self) {
		out = append(out, self)
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// SetReady publishes the ready flag through a metadata update, gossiped and
// then pushed over TCP to the members (announce, in the background). The
// local flag changes at once; an error means the gossip did not go out within
// its timeout, and the change still spreads with the push and later gossip.
func (m *Membership) SetReady(ready bool) error {
	m.life.RLock()
	defer m.life.RUnlock()
	if m.closed || m.crashed {
		return ErrShutdown
	}
	m.ready.Store(ready)
	err := m.ml.UpdateNode(metaUpdateTimeout)
	m.requestAnnounce()
	if err != nil {
		return fmt.Errorf("publish ready=%t: %w", ready, err)
	}
	return nil
}

// Shutdown leaves the cluster gracefully (bounded by LeaveTimeout) and stops; idempotent.
// Leaving is bounded by ctx's deadline too; waiting for the goroutines by ctx.
func (m *Membership) Shutdown(ctx context.Context) error {
	m.shutdownOnce.Do(func() { m.shutdownErr = m.shutdown(ctx) })
	return m.shutdownErr
}

func (m *Membership) shutdown(ctx context.Context) error {
	m.life.Lock()
	m.closed = true
	close(m.stopCh)
	var errs []error
	if !m.crashed {
		if err := m.leave(ctx); err != nil {
			m.log.Warn("leaving the cluster", "err", err)
			errs = append(errs, err)
		}
	}
	m.cancelDials()
	if err := m.ml.Shutdown(); err != nil {
		errs = append(errs, fmt.Errorf("stop gossip: %w", err))
	}
	m.life.Unlock()

	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("wait for membership goroutines: %w", ctx.Err()))
	}
	m.log.Info("membership stopped", "node", m.cfg.Name)
	return errors.Join(errs...)
}

// leave announces the intent to leave in metadata (so peers record "left",
// not "dead") and then broadcasts memberlist's leave, both within
// min(LeaveTimeout, ctx's deadline). Caller holds life.
func (m *Membership) leave(ctx context.Context) error {
	budget := m.cfg.LeaveTimeout
	if dl, ok := ctx.Deadline(); ok {
		budget = min(budget, time.Until(dl))
	}
	if ctx.Err() != nil || budget <= 0 {
		return fmt.Errorf("no time left to leave gracefully: %w", context.Cause(ctx))
	}
	deadline := time.Now().Add(budget)
	m.leaving.Store(true)
	if err := m.ml.UpdateNode(budget); err != nil {
		m.log.Warn("announcing leave intent", "err", err)
	}
	// The leave's dead message carries the same incarnation as the intent,
	// so a peer the intent's gossip has not reached yet when the dead
	// message does ignores the intent and records the node dead, not left
	// (one peer in several restarts in TestLeftNodeRestartSeenReadyQuickly).
	// Pushing the intent over TCP first makes it arrive first.
	m.pushWithin(m.announceTargets(), time.Until(deadline)/2)
	// memberlist treats a zero timeout as "wait forever".
	rest := time.Until(deadline)
	if rest <= 0 {
		return errors.New("leave: timed out announcing the leave intent")
	}
	if err := m.ml.Leave(rest); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// pushWithin joins addrs (a push/pull each, announce's exchange) and waits
// for it at most wait; a push still running then ends when Shutdown cancels
// its dials and stops memberlist. Caller holds life, so it cannot announce.
func (m *Membership) pushWithin(addrs []string, wait time.Duration) {
	if len(addrs) == 0 || wait <= 0 {
		return
	}
	done := make(chan struct{})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(done)
		if n, err := m.ml.Join(addrs); err != nil {
			m.log.Debug("pushing leave intent failed", "addrs", addrs, "err", oneLine(err))
		} else {
			m.log.Debug("pushed leave intent", "contacted", n, "of", len(addrs))
		}
	}()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		m.log.Warn("leave intent not pushed to every member in time; peers may record the node dead, not left",
			"waited", wait)
	}
}

// crash stops gossip without leaving, as a killed process would: peers
// detect the node as dead. Shutdown is still needed to stop the goroutines.
func (m *Membership) crash() {
	m.life.Lock()
	defer m.life.Unlock()
	if m.closed || m.crashed {
		return
	}
	m.crashed = true
	_ = m.ml.Shutdown()
}
