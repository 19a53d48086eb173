package daemon

import (
	"slices"
	"testing"

	"github.com/distrod/distrod/membership"
)

// A member failing is reported once, when it turns dead; a graceful leave is
// not a failure, and a member that comes back and fails again is reported again.
func TestNewlyFailedReportsEachFailureOnce(t *testing.T) {
	n := &Node{}
	view := func(b, c membership.State) []membership.Member {
		return []membership.Member{{Name: "a", State: membership.StateAlive}, {Name: "b", State: b}, {Name: "c", State: c}}
	}
	steps := []struct {
		b, c membership.State
		want []string
	}{
		{membership.StateAlive, membership.StateAlive, nil},
		{membership.StateDead, membership.StateLeft, []string{"b"}},
		{membership.StateDead, membership.StateLeft, nil},
		{membership.StateAlive, membership.StateLeft, nil},
		{membership.StateDead, membership.StateDead, []string{"b", "c"}},
	}
	for i, s := range steps {
		got := n.newlyFailed(view(s.b, s.c))
		slices.Sort(got)
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d: newly failed %v, want %v", i, got, s.want)
		}
	}
}
