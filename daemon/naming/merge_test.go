package naming

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/distrod/distrod/distro"
)

// randomDelta is one write as a node would produce it: an instance put or
// tombstone, a service-field update, or a service deletion. Versions collide
// on purpose so tie-breaking is exercised.
func randomDelta(rng *rand.Rand) *Service {
	v := uint64(rng.IntN(40) + 1)
	ip := fmt.Sprintf("10.0.0.%d", rng.IntN(4)+1)
	switch rng.IntN(10) {
	case 0, 1, 2, 3:
		in := &Instance{
			IP: ip, Port: 8080, Cluster: []string{"DEFAULT", "c2"}[rng.IntN(2)],
			Weight: float64(rng.IntN(3)), Healthy: rng.IntN(2) == 0, Enabled: rng.IntN(4) != 0,
			Ephemeral: true, Version: v, Registered: v - uint64(rng.IntN(int(min(v, 4)))),
		}
		if rng.IntN(2) == 0 {
			in.Metadata = map[string]string{"k": fmt.Sprint(rng.IntN(3))}
		}
		return &Service{Instances: map[string]*Instance{in.Key(): in}}
	case 4, 5, 6:
		in := &Instance{IP: ip, Port: 8080, Cluster: "DEFAULT"}
		return &Service{Instances: map[string]*Instance{in.Key(): tombstone(in, v)}}
	case 7, 8:
		s := &Service{MetaVersion: v, ProtectThreshold: float64(rng.IntN(3)) / 4}
		if rng.IntN(2) == 0 {
			s.Metadata = map[string]string{"owner": fmt.Sprint(rng.IntN(2))}
		}
		return s
	default:
		return &Service{DeletedAt: v}
	}
}

func fold(deltas []*Service) *Service {
	var s *Service
	for _, d := range deltas {
		s = merge(s, d)
	}
	return s
}

// foldTree merges a random split of deltas separately, then merges the halves.
func foldTree(rng *rand.Rand, deltas []*Service) *Service {
	if len(deltas) <= 2 {
		return fold(deltas)
	}
	cut := rng.IntN(len(deltas)-1) + 1
	return merge(foldTree(rng, deltas[cut:]), foldTree(rng, deltas[:cut]))
}

func TestMergeIsCommutativeAssociativeIdempotent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 500; round++ {
		deltas := make([]*Service, rng.IntN(12)+1)
		for i := range deltas {
			deltas[i] = randomDelta(rng)
		}
		want := encode(fold(deltas))
		for perm := 0; perm < 6; perm++ {
			shuffled := append([]*Service(nil), deltas...)
			rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			if got := encode(fold(shuffled)); !bytes.Equal(got, want) {
				t.Fatalf("round %d: order changed the result:\n%x\n%x", round, got, want)
			}
			if got := encode(foldTree(rng, shuffled)); !bytes.Equal(got, want) {
				t.Fatalf("round %d: grouping changed the result", round)
			}
		}
		s := fold(deltas)
		if got := encode(merge(s, s)); !bytes.Equal(got, want) {
			t.Fatalf("round %d: merge is not idempotent", round)
		}
		for _, d := range deltas { // re-delivering any write changes nothing
			if got := encode(merge(s, d)); !bytes.Equal(got, want) {
				t.Fatalf("round %d: re-applying a delta changed the result", round)
			}
		}
		back, err := decode(want)
		if err != nil {
			t.Fatalf("round %d: decode: %v", round, err)
		}
		if got := encode(back); !bytes.Equal(got, want) {
			t.Fatalf("round %d: decode/encode is not the identity", round)
		}
	}
}

func TestMergeRules(t *testing.T) {
	a := &Instance{IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Weight: 1, Healthy: true, Enabled: true, Ephemeral: true, Version: 5, Registered: 5}
	k := a.Key()
	t.Run("an update of a deregistered incarnation does not undo the deregistration", func(t *testing.T) {
		stale := *a
		stale.Version, stale.Healthy = 9, false // marked unhealthy on a copy that missed the deregistration
		s := merge(&Service{Instances: map[string]*Instance{k: tombstone(a, 7)}}, &Service{Instances: map[string]*Instance{k: &stale}})
		if s.live(k) != nil {
			t.Fatal("a later update of the deregistered incarnation resurrected it")
		}
	})
	t.Run("a registration after the deregistration wins", func(t *testing.T) {
		again := *a
		again.Version, again.Registered = 8, 8
		s := merge(&Service{Instances: map[string]*Instance{k: &again}}, &Service{Instances: map[string]*Instance{k: tombstone(a, 7)}})
		if s.live(k) == nil {
			t.Fatal("a new registration lost to an older deregistration")
		}
	})
	t.Run("higher version wins", func(t *testing.T) {
		b := *a
		b.Version, b.Weight = 6, 2
		s := merge(&Service{Instances: map[string]*Instance{k: a}}, &Service{Instances: map[string]*Instance{k: &b}})
		if s.live(k).Weight != 2 {
			t.Fatalf("weight %v, want 2", s.live(k).Weight)
		}
	})
	t.Run("tombstone wins a tie", func(t *testing.T) {
		s := merge(&Service{Instances: map[string]*Instance{k: a}}, &Service{Instances: map[string]*Instance{k: tombstone(a, 5)}})
		if s.live(k) != nil || s.exists() {
			t.Fatalf("instance survived a tombstone of the same version")
		}
	})
	t.Run("older tombstone loses", func(t *testing.T) {
		s := merge(&Service{Instances: map[string]*Instance{k: tombstone(a, 4)}}, &Service{Instances: map[string]*Instance{k: a}})
		if s.live(k) == nil {
			t.Fatalf("an older tombstone removed a newer registration")
		}
	})
	t.Run("service deletion removes what it covers only", func(t *testing.T) {
		later := &Instance{IP: "10.0.0.2", Port: 80, Cluster: "DEFAULT", Version: 9, Registered: 9, Enabled: true}
		s := merge(&Service{MetaVersion: 1, Instances: map[string]*Instance{k: a, later.Key(): later}}, &Service{DeletedAt: 7})
		if s.live(k) != nil || s.live(later.Key()) == nil {
			t.Fatalf("deletion at 7 should remove version 5 and keep version 9: %+v", s.Instances)
		}
		if v := newEntry("public##G@@s", s).datum.Version; s.MetaVersion != 0 || v != 9 {
			t.Fatalf("meta %d version %d, want 0 and 9", s.MetaVersion, v)
		}
	})
}

// Two nodes that both accepted writes for one service (ownership moved while
// the writes were in flight) converge on both writes, whatever the order.
func TestConcurrentWritesOnTwoNodesBothSurvive(t *testing.T) {
	a := newTestRegistry(t, newFakeCluster(), nil)
	cb := newFakeCluster()
	cb.ver.Store(5000)
	b := newTestRegistry(t, cb, nil)
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, b, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	key := datumKey(DefaultNamespace, DefaultGroup, "svc")
	da, _ := a.Get(key)
	db, _ := b.Get(key)
	if !a.Apply(db) || !b.Apply(da) {
		t.Fatalf("applying the other node's write changed nothing")
	}
	ga, _ := a.Get(key)
	gb, _ := b.Get(key)
	if !bytes.Equal(ga.Value, gb.Value) || ga.Version != gb.Version || ga.Checksum() != gb.Checksum() {
		t.Fatalf("nodes diverged: %+v vs %+v", ga, gb)
	}
	if live, _ := a.service(key).counts(); live != 2 {
		t.Fatalf("live instances %d, want 2", live)
	}
	if a.Apply(gb) {
		t.Fatalf("re-applying an identical datum reported a change")
	}
}

func TestApplyRandomHistoriesConverge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 50; round++ {
		var ds []distro.Datum
		for i := 0; i < 10; i++ {
			d := randomDelta(rng)
			if d.DeletedAt > 0 && rng.IntN(2) == 0 {
				ds = append(ds, distro.Datum{Key: "public##G@@s", Version: d.DeletedAt, Deleted: true}) // valueless tombstone
				continue
			}
			ds = append(ds, newEntry("public##G@@s", d).datum)
		}
		x := newTestRegistry(t, newFakeCluster(), nil)
		y := newTestRegistry(t, newFakeCluster(), nil)
		for _, d := range ds {
			x.Apply(d)
		}
		for _, i := range rng.Perm(len(ds)) {
			y.Apply(ds[i])
		}
		gx, _ := x.Get("public##G@@s")
		gy, _ := y.Get("public##G@@s")
		if gx.Checksum() != gy.Checksum() || gx.Deleted != gy.Deleted {
			t.Fatalf("round %d: replicas diverged: %+v / %+v", round, gx, gy)
		}
	}
}

func TestApplyRefusesCorruptValue(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	key := datumKey(DefaultNamespace, DefaultGroup, "svc")
	before, _ := r.Get(key)
	for _, v := range [][]byte{{9}, {1, 0xff}, append(append([]byte(nil), before.Value...), 0)} {
		if r.Apply(distro.Datum{Key: key, Value: v, Version: before.Version + 100}) {
			t.Fatalf("corrupt value %x was applied", v)
		}
	}
	if r.Apply(distro.Datum{Key: key, Version: before.Version + 100}) {
		t.Fatalf("a live datum without value was applied")
	}
	after, _ := r.Get(key)
	if after.Checksum() != before.Checksum() {
		t.Fatalf("store changed by corrupt input")
	}
}

func TestApplyValuelessTombstoneDeletesService(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	key := datumKey(DefaultNamespace, DefaultGroup, "svc")
	d, _ := r.Get(key)
	if !r.Apply(distro.Datum{Key: key, Version: d.Version, Deleted: true}) {
		t.Fatalf("tombstone not applied")
	}
	got, ok := r.Get(key)
	if !ok || !got.Deleted || got.Version != d.Version {
		t.Fatalf("after tombstone: %+v %v", got, ok)
	}
	if s, n := r.Counts(); s != 0 || n != 0 {
		t.Fatalf("Counts = %d,%d after deletion", s, n)
	}
	// A late copy of the old value cannot resurrect it.
	if r.Apply(d) {
		t.Fatalf("late push of the deleted value changed the store")
	}
}

func TestSweep(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/service?serviceName=gone", "")
	mustOK(t, r, "DELETE", ns+"/service?serviceName=gone", "")
	key := datumKey(DefaultNamespace, DefaultGroup, "svc")
	gone := datumKey(DefaultNamespace, DefaultGroup, "gone")
	before, _ := r.Get(key)
	if n := r.Sweep(0); n != 0 {
		t.Fatalf("Sweep(0) removed %d", n)
	}
	if n := r.Sweep(^uint64(0)); n != 2 {
		t.Fatalf("Sweep(max) removed %d, want the instance tombstone and the deleted service", n)
	}
	after, _ := r.Get(key)
	if after.Version != before.Version {
		t.Fatalf("version went from %d to %d", before.Version, after.Version)
	}
	if s := r.service(key); len(s.Instances) != 1 || s.live("10.0.0.2:80:DEFAULT") == nil {
		t.Fatalf("instances after sweep: %+v", s.Instances)
	}
	if _, ok := r.Get(gone); ok {
		t.Fatalf("deleted service survived the sweep")
	}
}

func FuzzDecode(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 8; i++ {
		var ds []*Service
		for j := 0; j < 5; j++ {
			ds = append(ds, randomDelta(rng))
		}
		f.Add(encode(fold(ds)))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decode(b)
		if err != nil {
			return
		}
		enc := encode(s)
		s2, err := decode(enc)
		if err != nil {
			t.Fatalf("re-decode of canonical encoding: %v", err)
		}
		if !bytes.Equal(encode(s2), enc) {
			t.Fatalf("canonical encoding not stable")
		}
	})
}

// The allocation-free tie checks agree with the encodings they stand for.
func TestSameInstanceAndMetaMatchEncodings(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var ins []*Instance
	var svcs []*Service
	for range 400 {
		d := randomDelta(rng)
		svcs = append(svcs, d)
		for _, in := range d.Instances {
			ins = append(ins, in)
			c := *in // an equal copy, and one differing only where tombstones do not encode
			ins = append(ins, &c)
			if in.Deleted {
				c.Healthy, c.Weight = true, 2
			}
		}
	}
	for i, x := range ins {
		for _, y := range ins[max(0, i-8) : i+1] {
			want := bytes.Equal(appendInstance(nil, x), appendInstance(nil, y))
			if got := sameInstance(x, y); got != want {
				t.Fatalf("sameInstance(%+v, %+v) = %v, encodings equal: %v", x, y, got, want)
			}
		}
	}
	for i, x := range svcs {
		for _, y := range svcs[max(0, i-8) : i+1] {
			want := bytes.Equal(appendMeta(nil, x), appendMeta(nil, y))
			if got := sameMeta(x, y); got != want {
				t.Fatalf("sameMeta(%+v, %+v) = %v, encodings equal: %v", x, y, got, want)
			}
		}
	}
}
