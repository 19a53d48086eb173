package distro

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// errNoReadyPeer means there is no peer to load a snapshot from yet.
var errNoReadyPeer = errors.New("distro: no ready peer to load from")

// loadLoop pulls a snapshot from a ready peer, retrying with backoff until one
// succeeds or the engine stops. If no peer is ready for BootstrapWait and this
// node has the lowest name it knows, it declares itself loaded: a cluster whose
// nodes were all started with --join must not wait for each other forever.
func (e *Engine) loadLoop() {
	backoff := e.cfg.SnapshotRetryMin
	var noReadySince time.Time
	for !e.Loaded() {
		t := e.topology()
		if len(t.Ready) > 0 {
			noReadySince = time.Time{}
			err := e.LoadOnce(e.ctx)
			if err == nil || e.Loaded() {
				return
			}
			e.log.Warn("snapshot load failed, will retry", "retryIn", backoff, "err", err)
			if !e.sleep(backoff, nil) {
				return
			}
			backoff = min(2*backoff, e.cfg.SnapshotRetryMax)
			continue
		}

		if noReadySince.IsZero() {
			noReadySince = time.Now()
			e.log.Info("waiting for a ready peer to load a snapshot from", "peers", len(t.Peers))
		}
		wait := e.cfg.BootstrapWait - time.Since(noReadySince)
		if wait <= 0 {
			if t.Self != "" && lowestName(t) {
				e.log.Info("no peer ready and this node has the lowest name: declaring itself loaded with what it has",
					"waited", e.cfg.BootstrapWait, "peers", len(t.Peers))
				e.markLoaded("bootstrap", 0)
				return
			}
			wait = e.cfg.BootstrapWait // check again, or sooner if the view changes
		}
		if !e.sleep(wait, e.topoCh) {
			return
		}
	}
}

// lowestName reports whether Self sorts before every peer's name.
func lowestName(t *Topology) bool {
	for _, p := range t.Peers {
		if p.Name < t.Self {
			return false
		}
	}
	return true
}

// LoadOnce tries the ready peers in turn, starting after the one tried last,
// until one streams its snapshot; then the engine is loaded. It is the load
// loop's single attempt, exposed as a test hook.
func (e *Engine) LoadOnce(ctx context.Context) error {
	ready := e.topology().Ready
	if len(ready) == 0 {
		return errNoReadyPeer
	}
	var errs []error
	for range ready {
		p := ready[int(e.loadNext.Add(1)-1)%len(ready)]
		start := time.Now()
		n, bytes, err := e.loadFrom(ctx, p)
		took := time.Since(start)
		if err != nil {
			e.met.snapshotFailures.Inc()
			errs = append(errs, err)
			if ctx.Err() != nil || e.ctx.Err() != nil {
				break
			}
			continue
		}
		e.met.snapshotDuration.Set(took.Seconds())
		e.met.snapshotBytes.Set(float64(bytes))
		e.log.Info("snapshot loaded", "from", p.Name, "datums", n, "bytes", bytes, "took", took)
		e.markLoaded(p.Name, took)
		return nil
	}
	return fmt.Errorf("load snapshot from %d ready peers: %w", len(ready), errors.Join(errs...))
}

// loadFrom streams p's snapshot into the store. Datums applied before a failure
// stay: they are versioned, and the next attempt or a verify sorts them out.
func (e *Engine) loadFrom(ctx context.Context, p Peer) (n int, bytes int64, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(e.ctx, cancel)()
	defer cancel()
	err = e.tr.Snapshot(ctx, p, func(d Datum) error {
		if d.Key == "" {
			return errEmptyKey
		}
		// Skipped, not fatal: every peer serves the same copy, so failing the
		// load on one bad datum would keep this node loading for good.
		if err := e.checkVersion(d); err != nil {
			e.log.Warn("snapshot load skips a datum", "from", p.Name, "err", err)
			return nil
		}
		e.applyRemote(d)
		n++
		bytes += int64(len(d.Key) + len(d.Value))
		return nil
	})
	if err != nil {
		return n, bytes, fmt.Errorf("pull snapshot from %s: %w", p.Name, err)
	}
	return n, bytes, nil
}

// HandleSnapshot streams every datum, tombstones included, to fn. A node that
// has not loaded its own snapshot refuses, so no one loads a partial copy.
func (e *Engine) HandleSnapshot(fn func(Datum) error) error {
	if !e.Loaded() {
		return ErrNotLoaded
	}
	var err error
	e.store.Range(func(d Datum) bool {
		err = fn(d)
		return err == nil
	})
	return err
}
