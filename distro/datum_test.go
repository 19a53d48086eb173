package distro

import (
	"math"
	"sync"
	"testing"
	"time"
)

func TestClockNeverGoesBackwards(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	c := NewClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })

	a := c.Next()
	b := c.Next() // wall time stood still
	if b <= a {
		t.Fatalf("second version %d not above first %d with a frozen wall clock", b, a)
	}
	mu.Lock()
	now = now.Add(-time.Hour) // wall clock stepped back
	mu.Unlock()
	if v := c.Next(); v <= b {
		t.Fatalf("version %d after a clock step back is not above %d", v, b)
	}
}

func TestClockObserveMovesPastSeenVersions(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewClock(func() time.Time { return now })
	seen := uint64(now.Add(time.Hour).UnixNano()) // a peer whose clock runs ahead
	c.Observe(seen)
	if v := c.Next(); v <= seen {
		t.Fatalf("Next %d not above observed %d", v, seen)
	}
	c.Observe(1) // older versions change nothing
	if v := c.Next(); v <= seen+1 {
		t.Fatalf("Next %d went back after observing an old version", v)
	}
}

func TestNewerTombstoneWinsTies(t *testing.T) {
	live := Datum{Key: "k", Value: []byte("v"), Version: 5}
	dead := Datum{Key: "k", Version: 5, Deleted: true}
	if !Newer(dead, live) || Newer(live, dead) {
		t.Fatalf("at equal versions the tombstone must win")
	}
	if Newer(live, live) {
		t.Fatalf("a datum is not newer than itself")
	}
	if !Newer(Datum{Version: 6}, dead) {
		t.Fatalf("a higher version must beat a tombstone")
	}
}

// Version arithmetic saturates: a clock that observed 2^64-1 keeps issuing it
// (c.last+1 wrapped to 0, below every stored version, so writes were lost).
func TestClockSaturates(t *testing.T) {
	now := time.Unix(1000, 0)
	c := NewClock(func() time.Time { return now })
	c.Observe(math.MaxUint64 - 1)
	if v := c.Next(); v != math.MaxUint64 {
		t.Fatalf("Next after 2^64-2 = %d, want 2^64-1", v)
	}
	for range 3 {
		if v := c.Next(); v != math.MaxUint64 {
			t.Fatalf("Next at 2^64-1 = %d, want it to stay 2^64-1", v)
		}
	}
	// A wall clock before 1970 is version 0, not a wrapped huge one.
	early := NewClock(func() time.Time { return time.Unix(-10, 0) })
	if v := early.Next(); v != 1 {
		t.Fatalf("Next before 1970 = %d, want 1", v)
	}
}
