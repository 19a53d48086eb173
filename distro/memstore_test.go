package distro

import "testing"

func TestMemStoreNewerWins(t *testing.T) {
	s := NewMemStore()
	if !s.Apply(Datum{Key: "k", Value: []byte("v2"), Version: 2}) {
		t.Fatal("first apply did not change the store")
	}
	if s.Apply(Datum{Key: "k", Value: []byte("v1"), Version: 1}) {
		t.Fatal("an older version overwrote a newer one")
	}
	if s.Apply(Datum{Key: "k", Value: []byte("v2"), Version: 2}) {
		t.Fatal("re-applying the same datum reported a change")
	}
	if d, _ := s.Get("k"); string(d.Value) != "v2" {
		t.Fatalf("value = %q, want v2", d.Value)
	}
	if s.Apply(Datum{Value: []byte("x"), Version: 9}) {
		t.Fatal("a datum without key was stored")
	}
}

func TestMemStoreTombstoneBlocksLateOlderPush(t *testing.T) {
	s := NewMemStore()
	s.Apply(Datum{Key: "k", Value: []byte("v1"), Version: 1})
	if !s.Apply(Datum{Key: "k", Version: 3, Deleted: true}) {
		t.Fatal("delete did not apply")
	}
	if s.Apply(Datum{Key: "k", Value: []byte("v2"), Version: 2}) {
		t.Fatal("a late older push resurrected a deleted key")
	}
	if d, ok := s.Get("k"); !ok || !d.Deleted || d.Version != 3 {
		t.Fatalf("got %+v, want the tombstone at version 3", d)
	}
	if !s.Apply(Datum{Key: "k", Value: []byte("v4"), Version: 4}) {
		t.Fatal("a newer write after the delete must win")
	}
}

func TestMemStoreSweepForgetsOnlyOldTombstones(t *testing.T) {
	s := NewMemStore()
	s.Apply(Datum{Key: "old", Version: 10, Deleted: true})
	s.Apply(Datum{Key: "young", Version: 30, Deleted: true})
	s.Apply(Datum{Key: "live", Value: []byte("v"), Version: 5})
	if n := s.Sweep(20); n != 1 {
		t.Fatalf("Sweep removed %d, want 1", n)
	}
	if _, ok := s.Get("old"); ok {
		t.Fatal("old tombstone survived Sweep")
	}
	if _, ok := s.Get("young"); !ok {
		t.Fatal("young tombstone was swept")
	}
	if _, ok := s.Get("live"); !ok {
		t.Fatal("a live datum was swept")
	}
}

func TestMemStoreCopiesValues(t *testing.T) {
	s := NewMemStore()
	buf := []byte("abc")
	s.Apply(Datum{Key: "k", Value: buf, Version: 1})
	buf[0] = 'X'
	if d, _ := s.Get("k"); string(d.Value) != "abc" {
		t.Fatalf("store shares the caller's buffer: %q", d.Value)
	}
}

func TestMemStoreRangeMayCallStore(t *testing.T) {
	s := NewMemStore()
	for i, k := range []string{"a", "b", "c"} {
		s.Apply(Datum{Key: k, Version: uint64(i + 1)})
	}
	n := 0
	s.Range(func(d Datum) bool {
		s.Apply(Datum{Key: d.Key, Version: d.Version, Deleted: true}) // would deadlock under a held lock
		n++
		return n < 2
	})
	if n != 2 {
		t.Fatalf("Range visited %d datums after fn returned false at 2", n)
	}
}
