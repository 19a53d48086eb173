package membership

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

func node(name string, md meta) *memberlist.Node {
	return &memberlist.Node{Name: name, Addr: net.IPv4(127, 0, 0, 1), Port: 7946, Meta: md.encode()}
}

// A burst of events without a consumer neither blocks nor loses the latest
// state of any node.
func TestEventQueueCoalescesWithoutBlocking(t *testing.T) {
	q := newEventQueue()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 10000 {
			n := node("a", meta{Protocol: 1, Partitions: i})
			q.NotifyUpdate(n)
			n.Meta[0] = 'X' // memberlist may reuse the node: the queue must have copied
		}
		q.NotifyLeave(node("b", meta{Protocol: 1}))
		q.NotifyJoin(node("c", meta{Protocol: 1}))
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callbacks blocked without a consumer")
	}
	if len(q.signal) != 1 {
		t.Fatalf("dirty signal not raised")
	}
	evs := q.drain()
	if len(evs) != 3 || evs[0].name != "a" || evs[1].name != "b" || evs[2].name != "c" {
		t.Fatalf("drain() = %+v, want one event each for a, b, c", evs)
	}
	md, err := decodeMeta(evs[0].meta)
	if err != nil || md.Partitions != 9999 || evs[0].kind != eventUpdate {
		t.Errorf("a's event = %v %+v (%v), want the last update", evs[0].kind, md, err)
	}
	if evs[1].kind != eventLeave || evs[2].kind != eventJoin {
		t.Errorf("kinds = %v, %v", evs[1].kind, evs[2].kind)
	}
	if again := q.drain(); len(again) != 0 {
		t.Errorf("second drain() = %+v, want nothing: drain must reset", again)
	}
}

func TestApplyLeaveDeadOrLeft(t *testing.T) {
	m := &Membership{cfg: Config{Name: "self"}, members: map[string]Member{}, since: map[string]time.Time{}, log: discardLogger()}
	m.apply([]nodeEvent{
		{kind: eventJoin, name: "crashed", meta: meta{Protocol: 1, Ready: true}.encode()},
		{kind: eventJoin, name: "leaver", meta: meta{Protocol: 1}.encode()},
	})
	m.apply([]nodeEvent{
		{kind: eventLeave, name: "crashed", meta: meta{Protocol: 1, Ready: true}.encode()},
		{kind: eventLeave, name: "leaver", meta: meta{Protocol: 1, Leaving: true}.encode()},
	})
	if s := m.members["crashed"]; s.State != StateDead || s.Ready {
		t.Errorf("crashed = %+v, want dead and not ready", s)
	}
	if s := m.members["leaver"].State; s != StateLeft {
		t.Errorf("leaver = %s, want left", s)
	}
	m.apply([]nodeEvent{{kind: eventJoin, name: "crashed", meta: meta{Protocol: 1}.encode()}})
	if s := m.members["crashed"].State; s != StateAlive {
		t.Errorf("rejoined crashed = %s, want alive", s)
	}
}

func TestNextBackoff(t *testing.T) {
	wait, max := time.Second, 30*time.Second
	var got []time.Duration
	for range 7 {
		got = append(got, wait)
		wait = nextBackoff(wait, max)
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff sequence %v, want %v seconds", got, want)
		}
	}
}
