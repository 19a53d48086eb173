package naming

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/distrod/distrod/distro"
)

// decode cuts every instance key out of one string: each must still be the
// instance's own Key, whatever the widths of its port.
func TestDecodeKeysMatchInstances(t *testing.T) {
	s := &Service{Instances: map[string]*Instance{}}
	for i, port := range []int{0, 7, 10, 99, 100, 8080, 65535} {
		in := &Instance{IP: "10.0.0." + string(rune('1'+i)), Port: port, Cluster: []string{"DEFAULT", "c2", ""}[i%3],
			Weight: 1, Healthy: true, Enabled: true, Version: uint64(10 + i), Registered: uint64(10 + i)}
		if i == 3 {
			in = tombstone(in, 20)
		}
		s.Instances[in.Key()] = in
	}
	got, err := decode(encode(s))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Instances) != len(s.Instances) {
		t.Fatalf("decoded %d instances, want %d", len(got.Instances), len(s.Instances))
	}
	for k, in := range got.Instances {
		if k != in.Key() || s.Instances[k] == nil || !sameInstance(in, s.Instances[k]) {
			t.Fatalf("key %q holds %+v", k, in)
		}
	}
}

// newEntry's figures (kept so that the store need not decode for them) agree
// with the decoded value.
func TestEntryFiguresMatchValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 300 {
		var ds []*Service
		for range rng.IntN(12) + 1 {
			ds = append(ds, randomDelta(rng))
		}
		e := newEntry("ns##g@@s", fold(ds))
		s := e.service()
		if !bytes.Equal(encode(s), e.datum.Value) {
			t.Fatalf("entry value does not round-trip")
		}
		live, healthy := s.counts()
		clusters := map[string]bool{}
		var oldTomb uint64
		for _, in := range s.Instances {
			if in.Deleted {
				if oldTomb == 0 || in.Version < oldTomb {
					oldTomb = in.Version
				}
				continue
			}
			clusters[in.Cluster] = true
		}
		if e.live != live || e.health != healthy || e.nclust != len(clusters) || e.oldTomb != oldTomb || e.exists != s.exists() {
			t.Fatalf("entry live=%d health=%d clusters=%d oldTomb=%d exists=%v; value %d %d %d %d %v",
				e.live, e.health, e.nclust, e.oldTomb, e.exists, live, healthy, len(clusters), oldTomb, s.exists())
		}
	}
}

// A push of the value already held changes nothing and keeps the entry (and
// its rendered lists), without being decoded.
func TestApplySameValueKeepsEntry(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	key := datumKey(DefaultNamespace, DefaultGroup, "svc")
	e := r.entry(key)
	d, _ := r.Get(key)
	d.Value = append([]byte(nil), d.Value...)
	if r.Apply(d) {
		t.Fatalf("re-applying the held value reported a change")
	}
	if r.entry(key) != e {
		t.Fatalf("re-applying the held value replaced the entry")
	}
	// The same bytes flagged deleted are not the held datum: the service is deleted at d.Version.
	d.Deleted = true
	if !r.Apply(d) {
		t.Fatalf("a tombstone carrying the held value changed nothing")
	}
	if got, _ := r.Get(key); !got.Deleted {
		t.Fatalf("service not deleted: %+v", got)
	}
}

// Sweep decodes and replaces only the entries holding a tombstone old enough.
func TestSweepKeepsEntriesWithoutOldTombstones(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=a&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=b&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=b&ip=10.0.0.2&port=80", "")
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=b&ip=10.0.0.1&port=80", "")
	a, b := datumKey(DefaultNamespace, DefaultGroup, "a"), datumKey(DefaultNamespace, DefaultGroup, "b")
	ea, eb := r.entry(a), r.entry(b)
	if ea.oldTomb != 0 || eb.oldTomb == 0 {
		t.Fatalf("oldTomb: a %d, b %d", ea.oldTomb, eb.oldTomb)
	}
	if n := r.Sweep(eb.oldTomb); n != 0 {
		t.Fatalf("Sweep before the tombstone removed %d", n)
	}
	if r.entry(b) != eb {
		t.Fatalf("Sweep replaced an entry it had nothing to forget in")
	}
	if n := r.Sweep(eb.oldTomb + 1); n != 1 {
		t.Fatalf("Sweep after the tombstone removed %d, want 1", n)
	}
	if r.entry(a) != ea || r.entry(b) == eb || r.entry(b).oldTomb != 0 {
		t.Fatalf("after sweep: a replaced %v, b kept %v", r.entry(a) != ea, r.entry(b) == eb)
	}
	if got, _ := r.Get(b); got.Version != eb.datum.Version {
		t.Fatalf("version went from %d to %d", eb.datum.Version, got.Version)
	}
	var _ distro.Store = r
}

// lookupLive finds what decode finds, for every key of random values and for
// keys that are not there (IPv6 addresses included: their colons must not
// confuse the key comparison).
func TestLookupLiveMatchesDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for range 200 {
		var ds []*Service
		for range rng.IntN(12) + 1 {
			ds = append(ds, randomDelta(rng))
		}
		s := fold(ds)
		for _, ip := range []string{"::1", "fe80::1:80"} {
			in := &Instance{IP: ip, Port: 80, Cluster: "DEFAULT", Weight: 1, Healthy: true, Version: 50, Registered: 50}
			s.Instances[in.Key()] = in
		}
		value := encode(s)
		dec, err := decode(value)
		if err != nil {
			t.Fatal(err)
		}
		probes := []string{"10.0.0.9:8080:DEFAULT", "10.0.0.1:808:DEFAULT", "10.0.0.1:8080:DEFAUL", "::1:80:DEFAULT", "fe80::1:80:80:DEFAULT", "fe80::1:80:DEFAULT"}
		for k := range dec.Instances {
			probes = append(probes, k)
		}
		for _, k := range probes {
			want, got := dec.live(k), lookupLive(value, k)
			if (want == nil) != (got == nil) || (want != nil && !sameInstance(want, got)) {
				t.Fatalf("lookupLive(%q) = %+v, decode has %+v", k, got, want)
			}
		}
	}
}

// distro bounds a peer datum's version, not the versions inside its value, and
// the stored datum's version is the highest inside: a value hiding a version
// above its datum's would carry 2^64-1 past the bound into every later write.
func TestApplyRefusesValueAboveItsVersion(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	in := &Instance{IP: "10.0.0.1", Port: 80, Cluster: "DEFAULT", Weight: 1, Healthy: true, Enabled: true,
		Version: math.MaxUint64, Registered: math.MaxUint64}
	forged := encode(&Service{Instances: map[string]*Instance{in.Key(): in}})
	if r.Apply(distro.Datum{Key: svcKey, Value: forged, Version: 5000}) {
		t.Fatalf("a value with versions above its datum's was applied")
	}
	if _, ok := r.Get(svcKey); ok {
		t.Fatalf("the forged value was stored")
	}
	in.Version, in.Registered = 5000, 5000
	if !r.Apply(distro.Datum{Key: svcKey, Value: encode(&Service{Instances: map[string]*Instance{in.Key(): in}}), Version: 5000}) {
		t.Fatalf("an honest value was refused")
	}
}

// Peer apply, local writes and Sweep decode, merge and encode on the key's
// write path, outside the registry-wide lock: at the point where the new
// value is encoded (beforeReplace) r.mu is free, so reads of other keys
// proceed, and the key's write lock is held. Until peer apply took that path,
// it merged a service of any size under r.mu.
func TestApplyMergesOutsideRegistryLock(t *testing.T) {
	c := newFakeCluster()
	src := newTestRegistry(t, c, nil)
	for i := range 200 {
		mustOK(t, src, "POST", fmt.Sprintf(ns+"/instance?serviceName=svc&ip=10.0.%d.%d&port=80", i/250, i%250+1), "")
	}
	mustOK(t, src, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	big, _ := src.Get(svcKey)

	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=other&ip=10.0.0.1&port=80", "")
	const other = "public##DEFAULT_GROUP@@other"
	var path string
	calls := map[string]int{}
	r.beforeReplace = func(key string) {
		calls[path]++
		if r.lockFor(key).TryLock() {
			r.lockFor(key).Unlock()
			t.Errorf("%s: %s's write lock is not held while its value is built", path, key)
		}
		if !r.mu.TryLock() {
			t.Errorf("%s: r.mu is held while %s's value is built", path, key)
			return
		}
		r.mu.Unlock()
		if _, ok := r.Get(other); !ok {
			t.Errorf("%s: a read of another key failed", path)
		}
	}
	path = "Apply"
	if !r.Apply(big) {
		t.Fatal("Apply of a new service changed nothing")
	}
	path = "write"
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.9.9.9&port=80", "")
	path = "Sweep"
	if n := r.Sweep(math.MaxUint64); n != 1 {
		t.Fatalf("Sweep forgot %d tombstones, want 1", n)
	}
	for _, p := range []string{"Apply", "write", "Sweep"} {
		if calls[p] != 1 {
			t.Fatalf("%s built %d values on the write path, want 1", p, calls[p])
		}
	}
}
