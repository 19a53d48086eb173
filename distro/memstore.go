package distro

import (
	"bytes"
	"sync"
)

// MemStore is an in-memory, concurrency-safe Store under newer-wins (see
// Newer). Deletions are tombstones kept until Sweep. Tests, benchmarks and
// tools use it; the daemon supplies its own store.
type MemStore struct {
	mu sync.RWMutex // guards m
	m  map[string]Datum
}

// NewMemStore returns an empty store.
func NewMemStore() *MemStore { return &MemStore{m: make(map[string]Datum)} }

// Get returns the datum for key, tombstones included.
func (s *MemStore) Get(key string) (Datum, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, ok := s.m[key]
	return d, ok
}

// Apply stores d if it is newer than what the store holds. It copies the value,
// so callers may reuse their buffers.
func (s *MemStore) Apply(d Datum) bool {
	if d.Key == "" {
		return false
	}
	d.Value = bytes.Clone(d.Value)
	if d.Deleted {
		d.Value = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[d.Key]; ok && !Newer(d, cur) {
		return false
	}
	s.m[d.Key] = d
	return true
}

// Range calls fn for every datum, tombstones included, in no particular order,
// until fn returns false. It iterates over a copy, so fn may call the store
// and may be slow (a snapshot streaming to a peer) without blocking writers.
func (s *MemStore) Range(fn func(Datum) bool) {
	s.mu.RLock()
	all := make([]Datum, 0, len(s.m))
	for _, d := range s.m {
		all = append(all, d)
	}
	s.mu.RUnlock()
	for _, d := range all {
		if !fn(d) {
			return
		}
	}
}

// Sweep forgets tombstones whose version is older than before.
func (s *MemStore) Sweep(before uint64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	removed := 0
	for k, d := range s.m {
		if d.Deleted && d.Version < before {
			delete(s.m, k)
			removed++
		}
	}
	return removed
}

// Len counts the datums, tombstones included.
func (s *MemStore) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}
