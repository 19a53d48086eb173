package membership

import (
	"math/rand/v2"
	"slices"
	"time"
)

// reconnectBatch bounds the addresses one reconnect round tries, so a round
// with many dead members at unreachable hosts (a TCP dial waits TCPTimeout,
// 10 s on lan) still ends in bounded time; the others get their turn in
// later rounds, picked at random.
const reconnectBatch = 3

// reconnectLoop heals partitions, serf-style: memberlist never contacts a
// member again once it declared it dead, and neither does a member on the
// other side of a partition, so after the network is back each side keeps
// seeing the other dead. Every ReconnectInterval this loop joins a few dead
// members (not left, dead for less than ReconnectTimeout) and, while the node
// sees fewer live members than it once did, the configured Join addresses.
func (m *Membership) reconnectLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.reconnectInterval())
	defer t.Stop()
	for {
		select {
		case <-m.stopCh:
			return
		case <-t.C:
		}
		for _, tg := range m.reconnectTargets(time.Now()) {
			select {
			case <-m.stopCh:
				return
			default:
			}
			m.reconnect(tg)
		}
	}
}

// reconnectTarget is an address to join and, when it is a dead member's, its name.
type reconnectTarget struct {
	name string // "" for a Join address
	addr string
}

// reconnectTargets picks this round's addresses: up to reconnectBatch dead
// members at random, then, if the node is missing members and room is left,
// Join addresses not already picked.
func (m *Membership) reconnectTargets(now time.Time) []reconnectTarget {
	m.mu.Lock()
	var dead []reconnectTarget
	for name, mb := range m.members {
		if name != m.cfg.Name && mb.State == StateDead && now.Sub(m.since[name]) < m.cfg.reconnectTimeout() {
			dead = append(dead, reconnectTarget{name: name, addr: mb.GossipAddr})
		}
	}
	missing := m.liveLocked() < m.maxLive
	m.mu.Unlock()

	rand.Shuffle(len(dead), func(i, j int) { dead[i], dead[j] = dead[j], dead[i] })
	out := dead[:min(len(dead), reconnectBatch)]
	if !missing {
		return out
	}
	joins := slices.Clone(m.cfg.Join)
	rand.Shuffle(len(joins), func(i, j int) { joins[i], joins[j] = joins[j], joins[i] })
	for _, addr := range joins {
		if len(out) >= reconnectBatch {
			break
		}
		if !slices.ContainsFunc(out, func(tg reconnectTarget) bool { return tg.addr == addr }) {
			out = append(out, reconnectTarget{addr: addr})
		}
	}
	return out
}

// reconnect joins tg's address twice. The first push/pull tells each side
// how the other sees it, and each refutes the death the other holds for it
// with a higher incarnation, which the other ignores until it hears it; the
// second exchange carries the refuted incarnations, so both sides see each
// other alive at once instead of waiting for gossip that may not come (a
// member gossips to the dead only for GossipToTheDeadTime).
func (m *Membership) reconnect(tg reconnectTarget) {
	if !m.gossiping() {
		return
	}
	m.log.Debug("reconnecting", "node", tg.name, "addr", tg.addr)
	if _, err := m.ml.Join([]string{tg.addr}); err != nil {
		m.log.Debug("reconnect failed", "node", tg.name, "addr", tg.addr, "err", oneLine(err))
		return
	}
	if _, err := m.ml.Join([]string{tg.addr}); err != nil {
		m.log.Debug("reconnect: second exchange failed", "node", tg.name, "addr", tg.addr, "err", oneLine(err))
	}
	// Debug only: a success repeats every round while the member stays away
	// (its address taken by another node, say); its return is logged as
	// "member alive" when the event is applied.
	m.log.Debug("reconnected", "node", tg.name, "addr", tg.addr)
}

// gossiping tells whether memberlist still runs (not crashed nor shut down):
// a stopped node must not push its state to anyone.
func (m *Membership) gossiping() bool {
	m.life.RLock()
	defer m.life.RUnlock()
	return !m.closed && !m.crashed
}
