package membership

import (
	"slices"
	"strings"
	"time"
)

// joinLoop joins cfg.Join, retrying with exponential backoff between
// JoinRetryMin and JoinRetryMax until a join succeeds or Shutdown; the node
// gossips alone meanwhile.
func (m *Membership) joinLoop() {
	defer m.wg.Done()
	wait := m.cfg.JoinRetryMin
	for attempt := 1; ; attempt++ {
		n, err := m.ml.Join(m.cfg.Join)
		m.joinAttempts.Add(1)
		if err == nil {
			m.log.Info("joined cluster", "addrs", m.cfg.Join, "contacted", n, "attempts", attempt)
			m.announce()
			return
		}
		select {
		case <-m.stopCh:
			return
		default:
		}
		m.log.Warn("join failed, running alone until a retry succeeds", "addrs", m.cfg.Join,
			"attempt", attempt, "retry_in", wait, "err", oneLine(err))
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

// announceMax bounds the members a newly joined node pushes its state to.
const announceMax = 16

// announce pushes this node's state once more, over TCP, to the join
// addresses and to live members (up to announceMax), right after the join.
//
// A restarted node starts at incarnation 1, below the one its peers hold for
// the previous process (alive, suspect or dead), so they ignore its own alive
// messages, including the one its join carried. The join taught it that
// incarnation and it refuted it with a higher one, but the refutation spreads
// by gossip (UDP, a few retransmissions): a peer it misses keeps the old
// process's state, dead or with stale metadata, until the next push/pull
// (15 s on local, 30 s on lan). Measured in TestRestartSameAddressSeenAliveQuickly.
func (m *Membership) announce() {
	addrs := slices.Clone(m.cfg.Join)
	// The view's copies, not memberlist's Members(): its *Node pointers are
	// written by memberlist's own goroutines (a data race under -race).
	for _, n := range m.Others() {
		if len(addrs) >= announceMax {
			break
		}
		if a := n.GossipAddr; a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	if !m.gossiping() {
		return
	}
	n, err := m.ml.Join(addrs)
	if err != nil {
		m.log.Debug("announce after join failed", "addrs", addrs, "err", oneLine(err))
		return
	}
	m.log.Debug("announced after join", "contacted", n, "of", len(addrs))
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
