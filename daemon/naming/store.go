package naming

import (
	"bytes"
	"sync/atomic"

	"github.com/distrod/distrod/daemon/httpx"
	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// entry is one stored datum: the canonical encoded value (what distro
// replicates and checksums) and the figures the hot paths read. It keeps no
// decoded form: decoding is cheap (decode allocates a handful of blocks) and a
// decoded Service costs several times the bytes of its encoding, so a service
// is decoded when a write, a push or a list needs it (service).
type entry struct {
	datum   distro.Datum
	exists  bool
	live    int
	health  int
	nclust  int        // distinct clusters of the live instances (/service/list)
	oldTomb uint64     // the oldest instance tombstone's version (0: none); Sweep skips entries without one to forget
	lists   entryLists // rendered /instance/list answers of this state
	// expiryDue is when heartbeat expiry next has something to do in this
	// state of an owned service (unix nanos; 0: unknown, check). Beats and
	// graces only move deadlines later and every change makes a new entry,
	// so rounds before it may skip the service (expireOnce).
	expiryDue atomic.Int64
}

func newEntry(key string, s *Service) *entry {
	return newEntryValue(key, s, encode(s))
}

// newEntryValue is newEntry for a value already known to be encode(s).
func newEntryValue(key string, s *Service, value []byte) *entry {
	// One pass for what counts, exists and the version (the highest anywhere
	// in the value) would each walk.
	var live, healthy int
	var oldTomb uint64
	version := max(s.DeletedAt, s.Swept, s.MetaVersion)
	var firstCluster string
	multi := false
	var clusters map[string]bool
	for _, in := range s.Instances {
		version = max(version, in.Version)
		if in.Deleted {
			if oldTomb == 0 || in.Version < oldTomb {
				oldTomb = in.Version
			}
			continue
		}
		live++
		if in.Healthy {
			healthy++
		}
		switch {
		case live == 1:
			firstCluster = in.Cluster
		case !multi && in.Cluster != firstCluster:
			multi = true
			clusters = map[string]bool{firstCluster: true}
			fallthrough
		case multi:
			clusters[in.Cluster] = true
		}
	}
	nclust := len(clusters)
	if !multi && live > 0 {
		nclust = 1
	}
	exists := s.MetaVersion > s.DeletedAt || live > 0
	return &entry{
		datum:   distro.Datum{Key: key, Value: value, Version: version, Deleted: !exists},
		exists:  exists,
		live:    live,
		health:  healthy,
		nclust:  nclust,
		oldTomb: oldTomb,
	}
}

// highestVersion is the highest version anywhere in s: the version of its
// datum, as newEntryValue computes it in its single pass.
func highestVersion(s *Service) uint64 {
	v := max(s.DeletedAt, s.Swept, s.MetaVersion)
	for _, in := range s.Instances {
		v = max(v, in.Version)
	}
	return v
}

// service decodes the entry's value. Values are encode's output, so decoding
// does not fail; if it did (a bug), the empty service stands in, and the next
// write or push replaces the entry.
func (e *entry) service() *Service {
	s, err := decode(e.datum.Value)
	if err != nil {
		return &Service{Instances: map[string]*Instance{}}
	}
	return s
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

// mergeWriteLocked merges delta into key's value and reports whether the
// stored datum changed, with the services before and after (before is nil for
// an unknown key). old is the entry the caller read for key (nil: none); cur,
// when not nil, is old decoded. The caller holds lockFor(key) and not r.mu:
// decoding, merging and encoding run outside the registry-wide lock, which is
// taken only to replace the entry (replaceLocked).
func (r *Registry) mergeWriteLocked(key string, old *entry, cur, delta *Service) (changed bool, before, after *Service, err error) {
	for {
		if old != nil && cur == nil {
			cur = old.service()
		}
		after = merge(cur, delta)
		e := newEntry(key, after)
		if len(e.datum.Value) > r.cfg.MaxServiceBytes {
			// Only a local write can get here (the peer codec refuses larger values):
			// storing it would make a datum no peer can receive.
			return false, cur, cur, httpx.Errorf(fasthttp.StatusRequestEntityTooLarge,
				"service %s would grow to %d bytes, over the %d bytes one service can replicate; deregister instances or shrink metadata",
				key, len(e.datum.Value), r.cfg.MaxServiceBytes)
		}
		if old != nil && old.datum.Deleted == e.datum.Deleted && bytes.Equal(old.datum.Value, e.datum.Value) {
			return false, cur, cur, nil
		}
		if r.beforeReplace != nil {
			r.beforeReplace(key)
		}
		r.mu.Lock()
		replaced := r.replaceLocked(key, old, e)
		now := r.entries[key]
		r.mu.Unlock()
		if replaced {
			return true, cur, after, nil
		}
		// Replaced by a path that did not hold key's write lock: a bug, as every
		// replacement holds it. Merge again on what is there rather than lose either.
		r.log.Error("entry replaced without its write lock; merging again", "key", key)
		old, cur = now, nil
	}
}

// replaceLocked replaces key's entry old by e (nil: removes it) and retires
// old's cached lists, unless key's entry is no longer old; it reports whether
// it replaced it. The caller holds lockFor(key), then r.mu for writing.
func (r *Registry) replaceLocked(key string, old, e *entry) bool {
	if r.entries[key] != old {
		return false
	}
	r.retireListsLocked(old)
	if e == nil {
		delete(r.entries, key)
	} else {
		r.entries[key] = e
	}
	return true
}

// entry returns the stored entry for key (tombstones included), or nil.
func (r *Registry) entry(key string) *entry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.entries[key]
}

// liveInstance returns the live instance ik of key's service, or nil,
// decoding only that instance.
func (r *Registry) liveInstance(key, ik string) *Instance {
	if e := r.entry(key); e != nil && e.live > 0 {
		return lookupLive(e.datum.Value, ik)
	}
	return nil
}

// service returns the stored service for key (tombstones included), decoded, or nil.
func (r *Registry) service(key string) *Service {
	if e := r.entry(key); e != nil {
		return e.service()
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
	if old := r.entry(d.Key); old != nil && old.datum.Deleted == d.Deleted && bytes.Equal(old.datum.Value, d.Value) {
		return false // the value held already (a repeated push, a verify pull): merging it changes nothing
	}
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
		// A datum's version is the highest in its value (newEntryValue), and
		// distro bounds only the datum's: a value hiding higher versions is forged.
		if hv := highestVersion(s); hv > d.Version {
			r.log.Warn("ignoring datum whose value holds versions above its own", "key", d.Key, "version", d.Version, "highest", hv)
			return false
		}
		if d.Deleted && s.exists() {
			s.DeletedAt = max(s.DeletedAt, d.Version)
			s = merge(nil, s)
		}
		delta = s
	}
	l := r.lockFor(d.Key) // the per-key path of a local write (write)
	l.Lock()
	changed, before, after, err := r.mergeWriteLocked(d.Key, r.entry(d.Key), nil, delta)
	l.Unlock()
	if err != nil {
		r.log.Warn("ignoring datum", "key", d.Key, "err", err)
	}
	if changed {
		r.changes.notify(d.Key)
		r.reassertBeating(d.Key, before, after) // queued: no write from inside distro's callback
	}
	return changed
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
// older than before. It reports how many it forgot. Candidates are picked by
// their entries' figures under r.mu (read); each is then swept on the per-key
// path of a write (sweepKey), decoded and encoded outside r.mu.
func (r *Registry) Sweep(before uint64) int {
	candidates := r.entriesWhere(func(_ string, e *entry) bool {
		if !e.exists {
			return e.datum.Version < before
		}
		return e.oldTomb != 0 && e.oldTomb < before // else no tombstone old enough: nothing to decode
	})
	removed := 0
	for _, c := range candidates {
		removed += r.sweepKey(c.key, before)
	}
	return removed
}

// sweepKey is Sweep for one key, under the key's write lock.
func (r *Registry) sweepKey(key string, before uint64) int {
	l := r.lockFor(key)
	l.Lock()
	defer l.Unlock()
	e := r.entry(key) // the candidate, unless a write replaced it since
	switch {
	case e == nil:
		return 0
	case !e.exists:
		if e.datum.Version >= before {
			return 0
		}
		r.mu.Lock()
		ok := r.replaceLocked(key, e, nil)
		r.mu.Unlock()
		if !ok {
			return 0
		}
		return 1
	case e.oldTomb == 0 || e.oldTomb >= before:
		return 0
	}
	next, forgot := e.service(), 0 // a fresh copy: its Instances map may be modified
	for k, in := range next.Instances {
		if !in.Deleted || in.Version >= before {
			continue
		}
		next.Swept = max(next.Swept, in.Version)
		delete(next.Instances, k)
		forgot++
	}
	if forgot == 0 {
		return 0
	}
	ne := newEntry(key, next)
	if r.beforeReplace != nil {
		r.beforeReplace(key)
	}
	r.mu.Lock()
	ok := r.replaceLocked(key, e, ne)
	r.mu.Unlock()
	if !ok {
		return 0
	}
	return forgot
}
