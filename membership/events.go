package membership

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
)

type eventKind uint8

const (
	eventJoin eventKind = iota
	eventUpdate
	eventLeave
)

func (k eventKind) String() string {
	return [...]string{"join", "update", "leave"}[k]
}

// nodeEvent is a copy of what memberlist told us about one node.
type nodeEvent struct {
	kind eventKind
	name string
	addr string
	meta []byte
}

// eventQueue is memberlist's EventDelegate. Its callbacks run under
// memberlist's node lock, so they only copy the node and enqueue.
//
// Merge rule: pending holds the latest event per node name. An event carries
// the node's whole state (address, metadata, alive or gone), so the latest one
// supersedes earlier ones and nothing is lost; the queue is bounded by the
// number of nodes. signal (capacity 1) is the dirty flag: a send that finds it
// full is dropped because the consumer will drain everything anyway.
type eventQueue struct {
	mu      sync.Mutex
	pending map[string]nodeEvent // guarded by mu
	signal  chan struct{}
}

var _ memberlist.EventDelegate = (*eventQueue)(nil)

func newEventQueue() *eventQueue {
	return &eventQueue{pending: make(map[string]nodeEvent), signal: make(chan struct{}, 1)}
}

func (q *eventQueue) NotifyJoin(n *memberlist.Node)   { q.push(eventJoin, n) }
func (q *eventQueue) NotifyLeave(n *memberlist.Node)  { q.push(eventLeave, n) }
func (q *eventQueue) NotifyUpdate(n *memberlist.Node) { q.push(eventUpdate, n) }

func (q *eventQueue) push(kind eventKind, n *memberlist.Node) {
	ev := nodeEvent{kind: kind, name: n.Name, addr: n.Address(), meta: slices.Clone(n.Meta)}
	q.mu.Lock()
	q.pending[ev.name] = ev
	q.mu.Unlock()
	q.wake()
}

// wake tells the consumer that events may be pending.
func (q *eventQueue) wake() {
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// drain takes every pending event, sorted by node name.
func (q *eventQueue) drain() []nodeEvent {
	q.mu.Lock()
	pending := q.pending
	q.pending = make(map[string]nodeEvent, len(pending))
	q.mu.Unlock()
	evs := make([]nodeEvent, 0, len(pending))
	for _, ev := range pending {
		evs = append(evs, ev)
	}
	slices.SortFunc(evs, func(a, b nodeEvent) int { return strings.Compare(a.name, b.name) })
	return evs
}

// runEvents is the one goroutine that applies member events: it drains the
// queue, updates the member table and calls OnChange once per drained burst.
// While the name check holds events (conflict.go) they stay queued: the
// check's end wakes the queue again.
func (m *Membership) runEvents() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stopCh:
			return
		case <-m.events.signal:
		}
		if m.names.holding() {
			continue
		}
		evs := m.events.drain()
		if len(evs) == 0 {
			continue
		}
		m.apply(evs)
		if m.cfg.OnChange != nil {
			m.cfg.OnChange()
		}
	}
}

// apply folds events into the member table. A leave becomes "left" when the
// node announced it was leaving, "dead" otherwise; a join after either makes
// the name alive again.
func (m *Membership) apply(evs []nodeEvent) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, ev := range evs {
		md, err := decodeMeta(ev.meta)
		if err != nil { // NotifyAlive refused such nodes; only a bug gets here
			m.log.Warn("member event with unreadable metadata", "node", ev.name, "event", ev.kind.String(), "err", err)
		}
		next := Member{
			Name:        ev.name,
			GossipAddr:  ev.addr,
			HTTPAddr:    md.HTTPAddr,
			State:       StateAlive,
			Ready:       md.Ready,
			Self:        ev.name == m.cfg.Name,
			Partitions:  md.Partitions,
			Protocol:    md.Protocol,
			Incarnation: md.Incarnation,
		}
		if ev.kind == eventLeave {
			next.State, next.Ready = StateDead, false
			if md.Leaving {
				next.State = StateLeft
			}
		}
		prev, known := m.members[ev.name]
		m.members[ev.name] = next
		if !known || prev.State != next.State {
			m.since[ev.name] = now
		}
		if known && prev.live() && next.State == StateLeft {
			m.maxLive-- // a member that left is not missing
		}
		switch {
		case !known || prev.State != next.State:
			m.log.Info("member "+string(next.State), "node", next.Name, "addr", next.GossipAddr,
				"http", next.HTTPAddr, "ready", next.Ready)
		case prev.Ready != next.Ready:
			m.log.Info("member ready changed", "node", next.Name, "ready", next.Ready)
		default:
			m.log.Debug("member updated", "node", next.Name, "addr", next.GossipAddr, "http", next.HTTPAddr)
		}
	}
	m.maxLive = max(m.maxLive, m.liveLocked())
}

// liveLocked counts live members, self included. Caller holds mu.
func (m *Membership) liveLocked() int {
	n := 1 // self
	for name, mb := range m.members {
		if name != m.cfg.Name && mb.live() {
			n++
		}
	}
	return n
}
