package distro

import (
	"fmt"
	"time"
)

// The merge rule for pending pushes, per peer: the dirty set holds keys, not
// values, so a later change to a key replaces an earlier one (the worker reads
// the current datum, tombstone or not, when it sends), and the set's deadline
// is the earliest mark's, so a stream of changes never postpones a push.

// dirtySet is one peer's pending keys. It is not safe for concurrent use; the
// worker guards it with its mutex.
type dirtySet struct {
	keys map[string]struct{}
	due  time.Time // when the earliest pending mark becomes sendable; zero when empty
}

// mark adds key, due at due unless an earlier mark is already pending.
// It reports whether the set was empty before.
func (s *dirtySet) mark(key string, due time.Time) (wasEmpty bool) {
	wasEmpty = len(s.keys) == 0
	if s.keys == nil {
		s.keys = make(map[string]struct{})
	}
	s.keys[key] = struct{}{}
	if wasEmpty || due.Before(s.due) {
		s.due = due
	}
	return wasEmpty
}

// take removes and returns up to max keys; the rest keep their deadline.
func (s *dirtySet) take(max int) []string {
	out := make([]string, 0, min(max, len(s.keys)))
	for k := range s.keys {
		if len(out) == max {
			break
		}
		out = append(out, k)
		delete(s.keys, k)
	}
	if len(s.keys) == 0 {
		s.keys = nil // release the map's buckets after a burst
		s.due = time.Time{}
	}
	return out
}

// Changed marks key dirty for every peer after a local write was applied to the store.
// It never blocks on I/O.
func (e *Engine) Changed(key string) {
	due := time.Now().Add(e.cfg.SyncDelay)
	e.mu.RLock()
	defer e.mu.RUnlock()
	for _, w := range e.workers {
		w.mark(key, due)
	}
}

// markFor marks keys dirty for one peer only (verify sending back what an owner lacks).
func (e *Engine) markFor(peer string, keys []string) {
	due := time.Now().Add(e.cfg.SyncDelay)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if w := e.workers[peer]; w != nil {
		for _, k := range keys {
			w.mark(k, due)
		}
	}
}

// errEmptyKey rejects a datum without a key.
var errEmptyKey = invalid("distro: datum without key")

// HandlePush applies a pushed batch (receiver side of PUT /distro/v1/datum).
// Pushes are applied before the snapshot load finished too: versions sort out
// the order. A datum that changed the store and that this node is responsible
// for is pushed on, so a merged value reaches every peer. A batch with an
// invalid datum (no key, a version beyond MaxClockSkew) is refused whole.
func (e *Engine) HandlePush(batch []Datum) error {
	for i, d := range batch {
		if d.Key == "" {
			return fmt.Errorf("push datum %d: %w", i, errEmptyKey)
		}
		if err := e.checkVersion(d); err != nil {
			e.log.Warn("refusing push batch", "datums", len(batch), "err", err)
			return fmt.Errorf("push datum %d: %w", i, err)
		}
	}
	t := e.topology()
	for _, d := range batch {
		if e.applyRemote(d) && t.owns(d.Key) {
			e.Changed(d.Key)
		}
	}
	e.met.pushReceivedKeys.Add(float64(len(batch)))
	return nil
}

// HandleQuery returns the datums this node has for keys, tombstones included.
func (e *Engine) HandleQuery(keys []string) []Datum {
	out := make([]Datum, 0, len(keys))
	for _, k := range keys {
		if d, ok := e.store.Get(k); ok {
			out = append(out, d)
		}
	}
	return out
}

// SyncNow sends every pending mark to every peer at once, ignoring SyncDelay
// and backoff, and returns when each peer's batches were sent or one failed.
// It is a test hook; a slow peer delays its return, never another peer's push.
func (e *Engine) SyncNow() {
	e.mu.RLock()
	if !e.started || e.stopped {
		e.mu.RUnlock()
		return
	}
	ws := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	e.mu.RUnlock()

	done := make(chan struct{}, len(ws))
	for _, w := range ws {
		go func() {
			w.flushNow()
			done <- struct{}{}
		}()
	}
	for range ws {
		<-done
	}
}
