package daemon

import (
	"testing"

	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/membership"
)

// Only partitions whose previous owner failed are held; a graceful leave or a
// first ring holds nothing.
func TestFromFailedHoldsOnlyPartitionsOfDeadOwners(t *testing.T) {
	old, err := hashring.New(64, []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := hashring.New(64, []string{"a", "c"})
	if err != nil {
		t.Fatal(err)
	}
	gained := gainedPartitions(old, cur, "a")
	fromB := 0
	for p := range gained {
		if old.Owner(p) == "b" {
			fromB++
		}
	}
	if fromB == 0 {
		t.Fatal("test setup: a gained nothing from b")
	}
	members := func(state membership.State) []membership.Member {
		return []membership.Member{{Name: "a", State: membership.StateAlive}, {Name: "b", State: state}, {Name: "c", State: membership.StateAlive}}
	}
	held := fromFailed(old, gained, members(membership.StateDead))
	if len(held) != fromB {
		t.Fatalf("held %d partitions, want the %d gained from the dead member", len(held), fromB)
	}
	for _, p := range held {
		if old.Owner(p) != "b" {
			t.Fatalf("held partition %d, owned by %s, not the failed member", p, old.Owner(p))
		}
	}
	if got := fromFailed(old, gained, members(membership.StateLeft)); len(got) != 0 {
		t.Fatalf("a graceful leave held %d partitions", len(got))
	}
	if got := fromFailed(nil, gainedPartitions(nil, cur, "a"), members(membership.StateDead)); len(got) != 0 {
		t.Fatalf("a first ring held %d partitions", len(got))
	}
}
