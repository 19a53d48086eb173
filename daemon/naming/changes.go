package naming

import (
	"sync"
	"sync/atomic"
)

// Change notification: how front-ends (UDP push today; gRPC streams,
// watchers and the console later) learn that a service changed, without the
// core knowing them. Every applied change, a local write or a datum from a
// peer, calls every subscriber with the datum key.
//
// A subscriber is called synchronously on the writer's goroutine, after the
// change is applied and outside the registry's locks (r.mu and the key's
// write lock), so it may read the registry. It must not block: it copies
// what it needs (the key) and enqueues it for a goroutine it owns (STYLE.md,
// "Callbacks copy and enqueue"). A notification carries only the key: the
// subscriber reads the current value when it handles it, so two changes may
// come as one read, and notifications of one key from concurrent writers may
// arrive in either order; each is sent after its change is visible.
type changeFeed struct {
	mu   sync.Mutex                   // serializes subscribe and cancel (copy on write of subs)
	subs atomic.Pointer[[]*changeSub] // read without a lock on every change
}

type changeSub struct{ fn func(key string) }

// Subscribe calls fn with the datum key (namespace##group@@name) of every
// change applied from now on, local or replicated, until the returned cancel
// is called. fn runs outside the registry's locks and must not block (see
// changeFeed). Cancel is idempotent; fn may still run once concurrently with it.
func (r *Registry) Subscribe(fn func(key string)) (cancel func()) {
	return r.changes.subscribe(fn)
}

func (f *changeFeed) subscribe(fn func(key string)) func() {
	s := &changeSub{fn: fn}
	f.mu.Lock()
	defer f.mu.Unlock()
	var cur []*changeSub
	if p := f.subs.Load(); p != nil {
		cur = *p
	}
	next := append(append(make([]*changeSub, 0, len(cur)+1), cur...), s)
	f.subs.Store(&next)
	return func() { f.cancel(s) }
}

func (f *changeFeed) cancel(s *changeSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.subs.Load()
	if p == nil {
		return
	}
	next := make([]*changeSub, 0, len(*p))
	for _, c := range *p {
		if c != s {
			next = append(next, c)
		}
	}
	f.subs.Store(&next)
}

// notify tells every subscriber that key changed. The caller holds none of
// the registry's locks.
func (f *changeFeed) notify(key string) {
	p := f.subs.Load()
	if p == nil {
		return
	}
	for _, s := range *p {
		s.fn(key)
	}
}
