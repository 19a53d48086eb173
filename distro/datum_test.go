package distro

import (
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
