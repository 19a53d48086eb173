package naming

import (
	"sync"
	"testing"
)

// Every applied change, local or from a peer, is announced to each change
// subscriber with its key, after it is visible and with none of the
// registry's locks held; a change that changes nothing is not announced,
// and a cancelled subscriber hears nothing more.
func TestChangeSubscribersHearEveryAppliedChangeOutsideTheLocks(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	var mu sync.Mutex
	var heard []string
	cancel := r.Subscribe(func(key string) {
		if !r.mu.TryLock() {
			t.Errorf("notified of %s with the registry's mu held", key)
		} else {
			r.mu.Unlock()
		}
		if l := r.lockFor(key); !l.TryLock() {
			t.Errorf("notified of %s with its write lock held", key)
		} else {
			l.Unlock()
		}
		if r.service(key).live(instanceKey("10.0.0.1", 80, "DEFAULT")) == nil {
			t.Errorf("notified of %s before the change is visible", key)
		}
		mu.Lock()
		heard = append(heard, key)
		mu.Unlock()
	})
	second := 0
	r.Subscribe(func(string) { second++ })
	heardKeys := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), heard...)
	}

	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if got := heardKeys(); len(got) != 1 || got[0] != svcKey {
		t.Fatalf("after a local write heard %v, want [%s]", got, svcKey)
	}

	other := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, other, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, other, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	d, _ := other.Get(svcKey)
	if !r.Apply(d) {
		t.Fatalf("apply changed nothing")
	}
	if r.Apply(d) {
		t.Fatalf("a repeated apply changed the store")
	}
	if got := heardKeys(); len(got) != 2 || got[1] != svcKey {
		t.Fatalf("after a peer's datum (applied twice) heard %v, want [%s %s]", got, svcKey, svcKey)
	}
	if second != 2 {
		t.Fatalf("the second subscriber heard %d changes, want 2", second)
	}

	cancel()
	cancel() // idempotent
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	if got := heardKeys(); len(got) != 2 {
		t.Fatalf("a cancelled subscriber heard %v", got)
	}
	if second != 3 {
		t.Fatalf("the remaining subscriber heard %d changes, want 3", second)
	}
}
