package naming

import (
	"bytes"
	"sync/atomic"

	"github.com/distrod/distrod/distro"
)

// entry is one stored datum: the decoded service and its canonical datum.
type entry struct {
	svc    *Service
	datum  distro.Datum
	exists bool
	live   int
	health int
	lists  entryLists // rendered /instance/list answers of this state
	// expiryDue is when heartbeat expiry next has something to do in this
	// state of an owned service (unix nanos; 0: unknown, check). Beats and
	// graces only move deadlines later and every change makes a new entry,
	// so rounds before it may skip the service (expireOnce).
	expiryDue atomic.Int64
}

func newEntry(key string, s *Service) *entry {
	// One pass for what counts, exists and the version (the highest anywhere
	// in the value) would each walk.
	live, healthy := 0, 0
	version := max(s.DeletedAt, s.Swept, s.MetaVersion)
	for _, in := range s.Instances {
		version = max(version, in.Version)
		if !in.Deleted {
			live++
			if in.Healthy {
				healthy++
			}
		}
	}
	exists := s.MetaVersion > s.DeletedAt || live > 0
	return &entry{
		svc:    s,
		datum:  distro.Datum{Key: key, Value: encode(s), Version: version, Deleted: !exists},
		exists: exists,
		live:   live,
		health: healthy,
	}
}

// keyedEntry is an entry with its key, as entriesWhere copies them out.
type keyedEntry struct {
	key string
	e   *entry
}

// entriesWhere returns the entries keep accepts. keep runs under r.mu (read);
// the caller works on the result without it (an entry is never changed in
// place, only replaced).
func (r *Registry) entriesWhere(keep func(key string, e *entry) bool) []keyedEntry {
	var out []keyedEntry
	r.mu.RLock()
	defer r.mu.RUnlock()
	for k, e := range r.entries {
		if keep(k, e) {
			out = append(out, keyedEntry{k, e})
		}
	}
	return out
}

// mergeLocked merges delta into key's value and reports whether the stored
// datum changed. The caller holds r.mu for writing.
func (r *Registry) mergeLocked(key string, delta *Service) bool {
	old := r.entries[key]
	var cur *Service
	if old != nil {
		cur = old.svc
	}
	e := newEntry(key, merge(cur, delta))
	if old != nil && old.datum.Deleted == e.datum.Deleted && bytes.Equal(old.datum.Value, e.datum.Value) {
		return false
	}
	r.retireListsLocked(old)
	r.entries[key] = e
	return true
}

// service returns the stored service for key (tombstones included), or nil.
func (r *Registry) service(key string) *Service {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e := r.entries[key]; e != nil {
		return e.svc
	}
	return nil
}

// Get returns the datum for key, tombstones included.
func (r *Registry) Get(key string) (distro.Datum, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	e, ok := r.entries[key]
	if !ok {
		return distro.Datum{}, false
	}
	return e.datum, true
}

// Apply merges a datum received from a peer and reports whether the stored
// datum changed. Values merge (see Service), so concurrent writes accepted by
// two nodes both survive. A tombstone without a value (or whose value still
// describes a live service) deletes the service at d.Version. An undecodable
// value changes nothing.
func (r *Registry) Apply(d distro.Datum) bool {
	var delta *Service
	if len(d.Value) == 0 {
		if !d.Deleted {
			r.log.Warn("ignoring datum without value", "key", d.Key, "version", d.Version)
			return false
		}
		delta = &Service{DeletedAt: d.Version}
	} else {
		s, err := decode(d.Value)
		if err != nil {
			r.log.Warn("ignoring undecodable datum", "key", d.Key, "version", d.Version, "err", err)
			return false
		}
		if d.Deleted && s.exists() {
			s.DeletedAt = max(s.DeletedAt, d.Version)
			s = merge(nil, s)
		}
		delta = s
	}
	r.mu.Lock()
	var before *Service
	if old := r.entries[d.Key]; old != nil {
		before = old.svc
	}
	changed := r.mergeLocked(d.Key, delta)
	after := r.entries[d.Key]
	r.mu.Unlock()
	if changed {
		r.notifyPush(d.Key)
		r.reassertBeating(d.Key, before, after.svc)
	}
	return changed
}

// reassertBeating undoes a remote heartbeat expiry of instances that this node
// still hears beating: the expiring node could not see the beats (a partition,
// or a stale owner), so its tombstone is evidence of nothing. The instance is
// written again with a newer version, which wins everywhere. Deregistrations
// are never undone.
func (r *Registry) reassertBeating(key string, before, after *Service) {
	now := r.now()
	if r.stalled(now) {
		return // a write on a stale view; a live client's next beat registers it again over the expiry
	}
	var revive []*Instance
	r.beatMu.Lock()
	for ik, in := range after.Instances {
		prev := before.live(ik)
		if !in.Deleted || !in.Expired || prev == nil {
			continue
		}
		// Only a beat heard here counts: a grace (ownership gained, a stall)
		// is no evidence that the client lives.
		rec, ok := r.lastBeat[key][ik]
		if _, unhealthy, _ := r.timeouts(prev); ok && !rec.heard.IsZero() && now.Sub(rec.heard) <= unhealthy {
			revive = append(revive, prev)
		}
	}
	r.beatMu.Unlock()
	if len(revive) == 0 {
		return
	}
	err := r.write(key, func(cur *Service, v uint64) (*Service, error) {
		delta := &Service{Instances: map[string]*Instance{}}
		for _, prev := range revive {
			if in := cur.Instances[prev.Key()]; in == nil || !in.Deleted || !in.Expired {
				continue // written again meanwhile
			}
			n := *prev
			n.Healthy, n.Version, n.Registered = true, v, v // a new incarnation: it outranks the expiry
			delta.Instances[prev.Key()] = &n
		}
		if len(delta.Instances) == 0 {
			return nil, nil
		}
		return delta, nil
	})
	if err != nil {
		r.log.Warn("re-assert beating instances", "service", key, "err", err)
		return
	}
	r.log.Info("re-asserted instances a peer expired while they beat here", "service", key, "count", len(revive))
}

// Range calls fn for every datum, tombstones included, until fn returns false.
// fn runs without the store's lock held.
func (r *Registry) Range(fn func(distro.Datum) bool) {
	r.mu.RLock()
	ds := make([]distro.Datum, 0, len(r.entries))
	for _, e := range r.entries {
		ds = append(ds, e.datum)
	}
	r.mu.RUnlock()
	for _, d := range ds {
		if !fn(d) {
			return
		}
	}
}

// Sweep forgets instance tombstones, and deleted services, whose version is
// older than before. It reports how many it forgot.
func (r *Registry) Sweep(before uint64) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	removed := 0
	for key, e := range r.entries {
		if !e.exists {
			if e.datum.Version < before {
				r.retireListsLocked(e)
				delete(r.entries, key)
				removed++
			}
			continue
		}
		var next *Service
		for k, in := range e.svc.Instances {
			if !in.Deleted || in.Version >= before {
				continue
			}
			if next == nil {
				next = e.svc.clone()
			}
			next.Swept = max(next.Swept, in.Version)
			delete(next.Instances, k)
			removed++
		}
		if next != nil {
			r.retireListsLocked(e)
			r.entries[key] = newEntry(key, next)
		}
	}
	return removed
}
