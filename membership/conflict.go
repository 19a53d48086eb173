package membership

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/memberlist"
)

// Two processes with one name. memberlist ties a name to the address it first
// knew it at while that member lives: an alive message for the name from
// another address is dropped ("Conflicting address") and reported to the
// ConflictDelegate. So the cluster ignores a second process started under a
// live member's name (a cloned VM keeps its hostname, the default name), but
// that process hears of the first through its join and would run beside it:
// load a snapshot, answer /health, send verify messages under the name.
//
// Only the newcomer can tell it is the newcomer, so it checks: every address
// that claims its name before its first successful join has been checked is
// pinged under that name, and a claim that answers makes the node fail with
// a *NameConflictError instead of joining. The live member, whose name was
// confirmed long ago, only logs the claim. Member events wait while the
// first join and its check run, so nothing above membership (snapshot load,
// ready flag) sees a peer before the name is confirmed.

// ErrNameConflict matches every *NameConflictError (errors.Is).
var ErrNameConflict = errors.New("node name held by another live node")

// NameConflictError says that this node's name belongs to a live node at
// another gossip address.
type NameConflictError struct {
	Name  string // the contested name
	Addr  string // the gossip address of the live node holding it
	Local string // this node's gossip address
}

func (e *NameConflictError) Error() string {
	return fmt.Sprintf("node name %q is held by a live node at %s (this node: %s): give this node another name",
		e.Name, e.Addr, e.Local)
}

// Is makes errors.Is(err, ErrNameConflict) true.
func (e *NameConflictError) Is(target error) bool { return target == ErrNameConflict }

// nameProbes is how many pings, each waiting ProbeTimeout, a claiming address
// gets to answer: one lost UDP packet must not let a live holder pass.
const nameProbes = 3

// nameCheck is the state of one node's name check.
type nameCheck struct {
	mu        sync.Mutex
	confirmed bool     // the name is this node's: checked, or a new cluster (no Join); guarded by mu
	claims    []string // addresses that claimed the name and were not checked yet; guarded by mu
	checked   []string // addresses already pinged; guarded by mu

	hold atomic.Bool // member events wait (runEvents) while set

	failOnce sync.Once
	failed   chan struct{} // closed when the check found a live holder
	err      error         // written before failed is closed
}

func newNameCheck(confirmed bool) nameCheck {
	return nameCheck{confirmed: confirmed, failed: make(chan struct{})}
}

func (c *nameCheck) holding() bool { return c.hold.Load() }

// claim records that addr claims the name. It reports false when the claim
// waits for the check, true when the name was confirmed already: then the
// claimant is the newcomer, and peers keep this node.
func (c *nameCheck) claim(addr string) (confirmed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.confirmed {
		return true
	}
	if !slices.Contains(c.claims, addr) && !slices.Contains(c.checked, addr) {
		c.claims = append(c.claims, addr)
	}
	return false
}

// take returns the claims not checked yet; when there are none, the name is
// confirmed and take reports done.
func (c *nameCheck) take() (addrs []string, done bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.confirmed {
		return nil, true
	}
	if len(c.claims) == 0 {
		c.confirmed = true
		return nil, true
	}
	addrs, c.claims = c.claims, nil
	c.checked = append(c.checked, addrs...)
	return addrs, false
}

// NotifyConflict is memberlist's ConflictDelegate, called under its node
// lock when an alive message names a member known at another address. It
// records the claim for the name check and logs; it never calls memberlist.
func (d delegate) NotifyConflict(existing, other *memberlist.Node) {
	m := d.m
	if existing.Name != m.cfg.Name {
		m.log.Warn("two nodes claim one name; keeping the one known first",
			"node", existing.Name, "known", existing.Address(), "refused", other.Address())
		return
	}
	if m.names.claim(other.Address()) {
		// The name is this node's: the claimant is a newcomer (which refuses
		// to run if it can reach this node) or gossip about a dead incarnation.
		m.log.Warn("another address claims this node's name; ignored, the name is this node's",
			"node", other.Name, "claimant", other.Address())
		return
	}
	m.log.Info("another address claims this node's name; checking it before joining",
		"node", other.Name, "claimant", other.Address())
}

// confirmName ends the name check after a successful join. A claiming address
// that answers a ping addressed to this node's name is a live holder: the
// check fails with a *NameConflictError. One that does not answer is an
// earlier incarnation the peers have not declared dead yet; memberlist hands
// the name over once they have (DeadNodeReclaimTime), as before. Each
// address is pinged once, so claims gossiped again do not prolong the check.
func (m *Membership) confirmName() error {
	for {
		addrs, done := m.names.take()
		if done {
			return nil
		}
		for _, a := range addrs {
			if m.answersAs(a) {
				return &NameConflictError{Name: m.cfg.Name, Addr: a, Local: m.gossipAddr}
			}
			m.log.Info("the address claiming this node's name does not answer: taking it for a dead incarnation",
				"claimant", a, "pings", nameProbes)
		}
	}
}

// answersAs pings addr under this node's name, up to nameProbes times: a
// process there acks only if that is its name (memberlist's handlePing).
func (m *Membership) answersAs(addr string) bool {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		m.log.Warn("unusable claimant address", "claimant", addr, "err", err)
		return false
	}
	for range nameProbes {
		if !m.gossiping() {
			return false
		}
		if _, err := m.ml.Ping(m.cfg.Name, ua); err == nil {
			return true
		}
	}
	return false
}

// releaseEvents lets member events through again.
func (m *Membership) releaseEvents() {
	m.names.hold.Store(false)
	m.events.wake() // after the store: runEvents sees hold cleared
}

// failName stops gossip without leaving, so no leave message under the
// contested name reaches the peers (they would record the live holder as
// left), and reports err through Failed and Err. Member events stay held:
// the node never sees a peer.
func (m *Membership) failName(err error) {
	m.log.Error("refusing to join: this node's name is taken", "err", err)
	m.crash()
	m.names.failOnce.Do(func() {
		m.names.err = err
		close(m.names.failed)
	})
}

// Failed is closed when the node refused to join because a live node holds
// its name; Err then says which. The node stays out of the cluster and
// should be shut down.
func (m *Membership) Failed() <-chan struct{} { return m.names.failed }

// Err is the reason Failed was closed (a *NameConflictError), nil before.
func (m *Membership) Err() error {
	select {
	case <-m.names.failed:
		return m.names.err
	default:
		return nil
	}
}
