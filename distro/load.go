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
// succeeds or the engine stops.
//
// A node bootstraps (declares itself loaded with what it has) only on evidence
// that it is starting a new cluster: it sees other members, all of them have
// been loading for BootstrapWait, and it has the lowest name among them — a
// cluster started with --join everywhere. A node that sees no other member
// stays loading however long it waits: its join addresses may be wrong or
// unreachable, or the cluster may refuse it (another secret, another partition
// count), and an empty node that declares itself a cluster serves an empty
// registry and, once bridged to the real cluster, owns partitions it knows
// nothing of. Standalone (no --join, or --bootstrap) is how an operator starts
// a new cluster on purpose.
func (e *Engine) loadLoop() {
	backoff := e.cfg.SnapshotRetryMin
	var allLoadingSince time.Time
	for !e.Loaded() {
		t := e.topology()
		if len(t.Ready) > 0 {
			allLoadingSince = time.Time{}
			e.setWaiting(fmt.Sprintf("loading a snapshot from one of %d ready peers", len(t.Ready)))
			err := e.LoadOnce(e.ctx)
			if err == nil || e.Loaded() {
				return
			}
			e.setWaiting(fmt.Sprintf("snapshot load failed, retrying in %s: %v", backoff, err))
			e.log.Warn("snapshot load failed, will retry", "retryIn", backoff, "err", err)
			if !e.sleep(backoff, nil) {
				return
			}
			backoff = min(2*backoff, e.cfg.SnapshotRetryMax)
			continue
		}

		if len(t.Peers) == 0 {
			allLoadingSince = time.Time{}
			if e.setWaiting("no other member seen: waiting for a ready member to load a snapshot from") {
				e.log.Warn("no other member seen: staying not ready until a ready member is reachable " +
					"(check --join; --bootstrap starts a new cluster on purpose)")
			}
			e.bootstrapChecks.Add(1)
			if !e.sleep(e.cfg.BootstrapWait, e.topoCh) {
				return
			}
			continue
		}

		if allLoadingSince.IsZero() {
			allLoadingSince = time.Now()
			e.log.Info("every member seen is loading", "peers", len(t.Peers))
		}
		wait := e.cfg.BootstrapWait - time.Since(allLoadingSince)
		if wait <= 0 {
			if t.Self != "" && lowestName(t) {
				e.log.Info("every member seen has been loading and this node has the lowest name: "+
					"starting a new cluster with what it has", "waited", e.cfg.BootstrapWait, "peers", len(t.Peers))
				e.markLoaded("bootstrap", 0, Origin{Horizon: e.boot, Lineage: newLineage()})
				return
			}
			wait = e.cfg.BootstrapWait // check again, or sooner if the view changes
		}
		e.setWaiting(fmt.Sprintf("%d members seen, none ready: the lowest-named starts a new cluster", len(t.Peers)))
		e.bootstrapChecks.Add(1)
		if !e.sleep(wait, e.topoCh) {
			return
		}
	}
}

// setWaiting records why the node is not loaded yet; it reports whether the reason changed.
func (e *Engine) setWaiting(why string) bool {
	if old := e.waiting.Swap(&why); old != nil && *old == why {
		return false
	}
	return true
}

// LoadingReason says why the engine is not loaded yet ("" once loaded).
func (e *Engine) LoadingReason() string {
	if e.Loaded() {
		return ""
	}
	if w := e.waiting.Load(); w != nil {
		return *w
	}
	return "starting"
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
		n, bytes, origin, err := e.loadFrom(ctx, p)
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
		e.log.Info("snapshot loaded", "from", p.Name, "datums", n, "bytes", bytes, "took", took,
			"horizon", origin.Horizon, "lineage", origin.Lineage.String())
		e.markLoaded(p.Name, took, origin)
		return nil
	}
	return fmt.Errorf("load snapshot from %d ready peers: %w", len(ready), errors.Join(errs...))
}

// loadFrom streams p's snapshot into the store and returns p's origin, which
// becomes this node's: the copy is as complete as its source, and of its lineage. Datums applied
// before a failure stay: they are versioned, and the next attempt or a verify
// sorts them out.
func (e *Engine) loadFrom(ctx context.Context, p Peer) (n int, bytes int64, origin Origin, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer context.AfterFunc(e.ctx, cancel)()
	defer cancel()
	origin, err = e.tr.Snapshot(ctx, p, func(d Datum) error {
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
		return n, bytes, Origin{}, fmt.Errorf("pull snapshot from %s: %w", p.Name, err)
	}
	if len(origin.Lineage) == 0 {
		return n, bytes, Origin{}, fmt.Errorf("pull snapshot from %s: %w: the stream names no lineage", p.Name, ErrMalformed)
	}
	return n, bytes, origin, nil
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
