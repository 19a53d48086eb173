package membership

import (
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// joinLoop joins cfg.Join, retrying with exponential backoff between
// JoinRetryMin and JoinRetryMax until a join succeeds or Shutdown; the node
// gossips alone meanwhile. The first successful join ends with the name
// check (conflict.go): member events wait while a join and the check run,
// and a name held by a live node fails the membership instead of joining.
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	wait := m.cfg.JoinRetryMin
	for attempt := 1; ; attempt++ {
		m.names.hold.Store(true)
		n, err := m.ml.Join(m.cfg.Join)
		m.joinAttempts.Add(1)
		if err == nil {
			m.joinErr.Store(nil)
			if err := m.confirmName(); err != nil {
				m.failName(err)
				return
			}
			m.releaseEvents()
			m.log.Info("joined cluster", "addrs", m.cfg.Join, "contacted", n, "attempts", attempt)
			m.announce("join")
			return
		}
		why := oneLine(err)
		m.joinErr.Store(&why)
		m.releaseEvents()
		select {
		case <-m.stopCh:
			return
		default:
		}
		m.log.Warn("join failed, running alone until a retry succeeds", "addrs", m.cfg.Join,
			"attempt", attempt, "retry_in", wait, "err", why)
		t := time.NewTimer(wait)
		select {
		case <-m.stopCh:
			t.Stop()
			return
		case <-t.C:
		}
		wait = nextBackoff(wait, m.cfg.JoinRetryMax)
	}
}

// JoinError is the join loop's last failure while no join has succeeded yet
// ("" once joined, or without join addresses), so an operator can see why a
// node that joins nobody stays not ready: addresses that refuse, another
// secret, a cluster with another partition count.
func (m *Membership) JoinError() string {
	if e := m.joinErr.Load(); e != nil {
		return *e
	}
	return ""
}

// announceMax bounds the members one push of this node's state goes to.
const announceMax = 16

// announce pushes this node's state, over TCP, to the join addresses and to
// live members (up to announceMax), right after the join and after every
// metadata change (pushLoop).
//
// After the join: a restarted node starts at incarnation 1, below the one its
// peers hold for the previous process (alive, suspect, dead or left), so they
// ignore its own alive messages, including the one its join carried. The
// join taught it that incarnation and it refuted it with a higher one, but
// the refutation spreads by gossip only.
//
// After a metadata change (SetReady): memberlist sends the update by gossip
// only, to GossipNodes members per round until it was transmitted
// RetransmitMult·⌈log10(n+1)⌉ times, 2 on local for up to 9 nodes; receivers
// forward it the same way. A peer all of them happen to miss, a few percent
// of peers on loopback without any loss, keeps the old metadata (not ready)
// until a push/pull reaches it: 15 s on local, 30 s on lan, and the e2e's
// rolling restart waited that long for a peer to see the new process ready.
// Measured in TestRestartSameAddressSeenAliveQuickly and
// TestLeftNodeRestartSeenReadyQuickly.
func (m *Membership) announce(why string) {
	if !m.gossiping() {
		return
	}
	addrs := m.announceTargets()
	n, err := m.ml.Join(addrs)
	if err != nil {
		m.log.Debug("announce failed", "why", why, "addrs", addrs, "err", oneLine(err))
		return
	}
	m.log.Debug("announced", "why", why, "contacted", n, "of", len(addrs))
}

// announceTargets is the join addresses and then live members, at random,
// up to announceMax addresses in all.
func (m *Membership) announceTargets() []string {
	addrs := slices.Clone(m.cfg.Join)
	// The view's copies, not memberlist's Members(): its *Node pointers are
	// written by memberlist's own goroutines (a data race under -race).
	others := m.Others()
	rand.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	for _, n := range others {
		if len(addrs) >= announceMax {
			break
		}
		if a := n.GossipAddr; a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// requestAnnounce asks pushLoop for one more announce; requests made while
// one is pending or running coalesce into the next.
func (m *Membership) requestAnnounce() {
	select {
	case m.announceCh <- struct{}{}:
	default:
	}
}

// pushLoop announces the node's state after each metadata change, off the
// caller's goroutine: a join to a member that stopped answering waits up to
// TCPTimeout (10 s on lan).
func (m *Membership) pushLoop() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stopCh:
			return
		case <-m.announceCh:
		}
		m.announce("metadata update")
	}
}

// nextBackoff doubles wait, capped at max.
func nextBackoff(wait, max time.Duration) time.Duration {
	if wait >= max/2 {
		return max
	}
	return 2 * wait
}

// oneLine flattens memberlist's multi-line multierror text for a log attribute.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
