package distro

import (
	"context"
	"sync"
	"time"
)

// worker owns the pushes to one peer: one batch in flight at a time, so the
// changes to a key reach the peer in order, and a slow peer only slows itself.
type worker struct {
	e    *Engine
	name string

	ctx    context.Context // cancelled when the peer leaves the view or the engine stops
	cancel context.CancelFunc
	wake   chan struct{}      // cap 1: marks arrived in an empty set
	flush  chan chan struct{} // SyncNow requests; the worker closes the channel when done

	mu    sync.Mutex // guards peer and dirty
	peer  Peer
	dirty dirtySet

	// Owned by the run goroutine.
	backoff time.Duration
	retryAt time.Time
}

func newWorker(e *Engine, p Peer) *worker {
	w := &worker{e: e, name: p.Name, peer: p, wake: make(chan struct{}, 1), flush: make(chan chan struct{})}
	w.ctx, w.cancel = context.WithCancel(e.ctx)
	return w
}

// close stops the worker and drops its marks.
func (w *worker) close() {
	w.cancel()
	w.mu.Lock()
	w.dirty = dirtySet{}
	w.mu.Unlock()
}

func (w *worker) setPeer(p Peer) {
	w.mu.Lock()
	if w.peer.Addr != p.Addr {
		w.e.log.Info("peer address changed", "peer", p.Name, "from", w.peer.Addr, "to", p.Addr)
	}
	w.peer = p
	w.mu.Unlock()
}

func (w *worker) mark(key string, due time.Time) {
	w.mu.Lock()
	wasEmpty := w.dirty.mark(key, due)
	w.mu.Unlock()
	if wasEmpty {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (w *worker) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.dirty.keys)
}

// run waits for marks, their deadline and any backoff, and sends batches until stopped.
func (w *worker) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		w.mu.Lock()
		n, at := len(w.dirty.keys), w.dirty.due
		w.mu.Unlock()
		var fire <-chan time.Time
		if n > 0 {
			if w.retryAt.After(at) {
				at = w.retryAt
			}
			d := time.Until(at)
			if d <= 0 {
				w.send()
				if w.ctx.Err() != nil {
					return
				}
				continue
			}
			timer.Reset(d)
			fire = timer.C
		}
		select {
		case <-w.wake:
		case <-fire:
		case done := <-w.flush:
			w.flushAll()
			close(done)
		case <-w.ctx.Done():
			return
		}
		timer.Stop() // Go ≥ 1.23 timers: no stale tick survives Stop
	}
}

// flushNow asks the worker to send everything pending and waits until it did.
func (w *worker) flushNow() {
	done := make(chan struct{})
	select {
	case w.flush <- done:
	case <-w.ctx.Done():
		return
	}
	<-done
}

// flushAll sends batches until nothing is pending or a batch fails.
func (w *worker) flushAll() {
	for w.pending() > 0 && w.ctx.Err() == nil {
		if !w.send() {
			return
		}
	}
}

// send pushes one batch of current values. On failure the keys are marked
// again (merging with marks made meanwhile) and the worker backs off.
func (w *worker) send() bool {
	e := w.e
	w.mu.Lock()
	keys := w.dirty.take(e.cfg.MaxBatch)
	peer := w.peer
	w.mu.Unlock()

	batch := make([]Datum, 0, len(keys))
	for _, k := range keys {
		// The current datum, tombstone included, so a deletion propagates. A key
		// swept meanwhile is skipped; verify removes it where it lingers.
		if d, ok := e.store.Get(k); ok {
			batch = append(batch, d)
		}
	}
	if len(batch) == 0 {
		return true
	}

	ctx, cancel := e.requestCtx(w.ctx)
	start := time.Now()
	err := e.tr.Push(ctx, peer, batch)
	cancel()
	e.met.pushLatency.Observe(time.Since(start).Seconds())
	e.met.pushBatches.Inc()
	if err == nil {
		e.met.pushKeys.Add(float64(len(batch)))
		w.backoff, w.retryAt = 0, time.Time{}
		return true
	}

	e.met.pushFailures.Inc()
	if w.ctx.Err() != nil {
		return false // the peer left or the engine stopped: the marks go with the worker
	}
	now := time.Now()
	w.mu.Lock()
	for _, k := range keys {
		w.dirty.mark(k, now)
	}
	w.mu.Unlock()
	switch {
	case w.backoff == 0:
		w.backoff = e.cfg.SyncRetryDelay
	default:
		w.backoff = min(2*w.backoff, e.cfg.SyncRetryMax)
	}
	w.retryAt = now.Add(w.backoff)
	e.log.Warn("push failed, will retry", "peer", peer.Name, "addr", peer.Addr, "keys", len(batch), "retryIn", w.backoff, "err", err)
	return false
}
