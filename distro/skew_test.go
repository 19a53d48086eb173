package distro

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
)

// saneClock fails unless e's next version is near wall time: no refused
// version moved it.
func saneClock(t *testing.T, e *Engine) {
	t.Helper()
	if v, limit := e.Clock().Next(), uint64(time.Now().Add(time.Minute).UnixNano()); v > limit {
		t.Fatalf("next version %d is beyond now+1m (%d): a refused version reached the clock", v, limit)
	}
}

// A push batch with one version beyond MaxClockSkew is refused whole.
func TestPushBeyondClockSkewIsRefusedWhole(t *testing.T) {
	c := newCluster(t, 16, []string{"a"}, nil)
	e := c.engines["a"]
	now := uint64(time.Now().UnixNano())
	err := e.HandlePush([]Datum{
		{Key: "fine", Value: []byte("v"), Version: now},
		{Key: "evil", Version: now + uint64(2*time.Hour), Deleted: true},
	})
	if !errors.Is(err, errVersionAhead) {
		t.Fatalf("HandlePush = %v, want errVersionAhead", err)
	}
	for _, k := range []string{"fine", "evil"} {
		if _, ok := c.stores["a"].Get(k); ok {
			t.Errorf("%s was applied from a refused batch", k)
		}
	}
	saneClock(t, e)
	// Within the bound (a peer's clock a little ahead) is accepted.
	if err := e.HandlePush([]Datum{{Key: "fine", Value: []byte("v"), Version: now + uint64(30*time.Minute)}}); err != nil {
		t.Fatalf("a version 30 min ahead with a 1 h bound: %v", err)
	}
}

// A tombstone at 2^64-2 pulled by verify hid every later registration of its
// key for good; verify pulls skip versions beyond the bound and apply the rest.
func TestVerifyPullSkipsVersionsBeyondClockSkew(t *testing.T) {
	names := []string{"a", "b"}
	c := newCluster(t, 64, names, nil)
	r := c.ring(names...)
	fine := keyOwnedBy(t, "fine", map[*hashring.Ring]string{r: "a"})
	dead := keyOwnedBy(t, "dead", map[*hashring.Ring]string{r: "a"})
	huge := keyOwnedBy(t, "huge", map[*hashring.Ring]string{r: "a"})
	c.stores["a"].Apply(Datum{Key: fine, Value: []byte("v"), Version: uint64(time.Now().UnixNano())})
	c.stores["a"].Apply(Datum{Key: dead, Version: math.MaxUint64 - 1, Deleted: true})
	c.stores["a"].Apply(Datum{Key: huge, Value: []byte("v"), Version: math.MaxUint64})

	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c.value("b", fine) != "v" {
		t.Fatal("verify did not pull the sane key")
	}
	for _, k := range []string{dead, huge} {
		if _, ok := c.stores["b"].Get(k); ok {
			t.Errorf("verify pulled %s at a version beyond the bound", k)
		}
	}
	saneClock(t, c.engines["b"])
}

// A snapshot skips datums beyond the bound and loads the rest: failing the
// load instead would keep the node loading, since every peer serves the same copy.
func TestSnapshotSkipsVersionsBeyondClockSkew(t *testing.T) {
	c, d := loader(t)
	for _, n := range []string{"a", "b"} {
		c.stores[n].Apply(Datum{Key: "evil", Version: math.MaxUint64 - 1, Deleted: true})
	}
	if err := d.LoadOnce(context.Background()); err != nil {
		t.Fatalf("LoadOnce: %v", err)
	}
	if !d.Loaded() || c.value("d", "k1") != "v1" {
		t.Fatal("the snapshot's sane datums were not loaded")
	}
	if _, ok := c.stores["d"].Get("evil"); ok {
		t.Fatal("the snapshot's datum beyond the bound was loaded")
	}
	saneClock(t, d)
}

func TestMaxClockSkewMustBePositive(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxClockSkew = 0
	if err := cfg.Validate(); err == nil {
		t.Fatal("MaxClockSkew 0 accepted")
	}
}
