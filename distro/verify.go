package distro

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/distrod/distrod/hashring"
)

// Verify (anti-entropy) in two phases, so a steady cluster exchanges
// O(partitions owned) per peer and interval, not O(keys):
//
//  1. The owner sends one digest per partition it owns (empty ones too, so the
//     receiver can spot keys the owner no longer has). The receiver answers
//     with the partitions whose digest differs from its own.
//  2. The owner sends key → checksum for those partitions. The receiver pulls
//     what differs or is missing and, only when both agree on the ring, removes
//     what the owner no longer lists.
//
// A partition digest is the sum of xxhash(key ‖ checksum) over its datums,
// tombstones included: order independent, so no sorting and no index.

var errNoSource = invalid("distro: checksum request without source")

// entryHasher hashes (key, checksum) pairs with one reusable xxhash state.
// It is not safe for concurrent use.
type entryHasher struct {
	d   *xxhash.Digest
	buf [8]byte
}

func newEntryHasher() *entryHasher { return &entryHasher{d: xxhash.New()} }

func (h *entryHasher) sum(key string, checksum uint64) uint64 {
	h.d.Reset()
	_, _ = h.d.WriteString(key)
	binary.LittleEndian.PutUint64(h.buf[:], checksum)
	_, _ = h.d.Write(h.buf[:])
	return h.d.Sum64()
}

// partitionSeed starts partition p's digest. A hash rather than zero makes an
// empty partition's digest as wide as a full one's, so the digest message has
// the same size whether the cluster holds ten keys or a million.
func partitionSeed(p int) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(p))
	return xxhash.Sum64(b[:])
}

// digests computes the digest of every partition p with want[p] over this node's store.
func (e *Engine) digests(ring *hashring.Ring, want []bool) map[int]uint64 {
	out := make(map[int]uint64)
	for p, ok := range want {
		if ok {
			out[p] = partitionSeed(p)
		}
	}
	h := newEntryHasher()
	e.store.Range(func(d Datum) bool {
		if p := ring.Partition(d.Key); want[p] {
			out[p] += h.sum(d.Key, d.Checksum())
		}
		return true
	})
	return out
}

// keysIn lists key → checksum for every datum in the partitions with in[p].
func (e *Engine) keysIn(ring *hashring.Ring, in []bool) map[string]uint64 {
	out := make(map[string]uint64)
	e.store.Range(func(d Datum) bool {
		if in[ring.Partition(d.Key)] {
			out[d.Key] = d.Checksum()
		}
		return true
	})
	return out
}

// verifyLoop sweeps tombstones and, once loaded, starts a verify round every interval.
func (e *Engine) verifyLoop() {
	t := time.NewTicker(e.cfg.VerifyInterval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		e.sweep()
		if e.Loaded() {
			_ = e.verifyRound(e.ctx, false)
		}
	}
}

// VerifyOnce sweeps tombstones and runs one verify round to every peer, returning
// when each exchange finished. Peers whose previous exchange is still running are
// skipped. It is a test hook; the engine runs rounds itself every VerifyInterval.
func (e *Engine) VerifyOnce(ctx context.Context) error {
	e.sweep()
	if !e.Loaded() {
		return ErrNotLoaded
	}
	return e.verifyRound(ctx, true)
}

// sweep forgets tombstones older than TombstoneTTL. Versions are unix nanos, so
// the cut-off is a version too.
func (e *Engine) sweep() {
	before := e.now().UnixNano() - int64(e.cfg.TombstoneTTL)
	if before <= 0 {
		return
	}
	if n := e.store.Sweep(uint64(before)); n > 0 {
		e.met.tombstonesSwept.Add(float64(n))
		e.log.Debug("swept tombstones", "count", n)
	}
}

// verifyRound sends this node's digests to every peer, one exchange per peer at a
// time, each on its own goroutine so a slow peer never delays the others. With
// wait it returns the joined errors once all exchanges finished.
func (e *Engine) verifyRound(ctx context.Context, wait bool) error {
	t := e.topology()
	if t.Ring == nil || !slices.Contains(t.Ring.Members(), t.Self) {
		return nil // not in the ring: owns nothing, verifies nothing
	}
	owned := t.Ring.Owned(t.Self)
	if len(owned) == 0 || len(t.Peers) == 0 {
		return nil
	}
	mine := make([]bool, t.Ring.Partitions())
	for _, p := range owned {
		mine[p] = true
	}
	digests := e.digests(t.Ring, mine)
	e.met.verifyRounds.Inc()
	e.mu.Lock()
	e.lastVer = time.Now()
	e.mu.Unlock()

	errs := make(chan error, len(t.Peers))
	running := 0
	for _, p := range t.Peers {
		if !e.beginVerify(p.Name) {
			e.log.Debug("previous verify still running, skipping peer", "peer", p.Name)
			continue
		}
		ok := e.spawn(func() {
			err := e.verifyPeer(ctx, t, p, digests, mine)
			e.endVerify(p.Name) // before reporting, so the next round sees the peer free
			if err != nil {
				e.met.verifyFailures.Inc()
				e.log.Warn("verify failed", "peer", p.Name, "err", err)
			}
			errs <- err
		})
		if !ok {
			e.endVerify(p.Name)
			continue
		}
		running++
	}
	if !wait {
		return nil
	}
	var all []error
	for range running {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

func (e *Engine) beginVerify(peer string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.verifyOn[peer] {
		return false
	}
	e.verifyOn[peer] = true
	return true
}

func (e *Engine) endVerify(peer string) {
	e.mu.Lock()
	delete(e.verifyOn, peer)
	e.mu.Unlock()
}

// verifyPeer runs both phases of one exchange with p.
func (e *Engine) verifyPeer(ctx context.Context, t *Topology, p Peer, digests map[int]uint64, mine []bool) error {
	o := e.Origin()
	req := ChecksumRequest{Source: t.Self, RingVersion: t.Ring.Version(), Horizon: o.Horizon, Lineage: o.Lineage, Digests: digests}
	rctx, cancel := e.requestCtx(ctx)
	resp, err := e.tr.Checksum(rctx, p, req)
	cancel()
	if err != nil {
		return fmt.Errorf("verify %s: send digests: %w", p.Name, err)
	}
	e.meetLineage(p.Name, resp.Lineage)

	in := make([]bool, len(mine))
	var parts []int
	for _, q := range resp.Mismatched {
		if q >= 0 && q < len(mine) && mine[q] && !in[q] {
			in[q] = true
			parts = append(parts, q)
		}
	}
	if len(parts) == 0 {
		return nil
	}
	e.met.verifyMismatchedPartitions.Add(float64(len(parts)))
	slices.Sort(parts)
	o = e.Origin() // after meeting the peer's lineage: the keys below must not claim more than it allows
	req = ChecksumRequest{Source: t.Self, RingVersion: t.Ring.Version(), Horizon: o.Horizon, Lineage: o.Lineage,
		Partitions: parts, Keys: e.keysIn(t.Ring, in)}
	rctx, cancel = e.requestCtx(ctx)
	_, err = e.tr.Checksum(rctx, p, req)
	cancel()
	if err != nil {
		return fmt.Errorf("verify %s: send keys of %d partitions: %w", p.Name, len(parts), err)
	}
	return nil
}

// HandleChecksum runs the receiver side of one verify message: for digests it
// answers the partitions that differ here; for keys it pulls and removes.
func (e *Engine) HandleChecksum(ctx context.Context, req ChecksumRequest) (ChecksumResponse, error) {
	if req.Source == "" {
		return ChecksumResponse{}, errNoSource
	}
	t := e.topology()
	if t.Ring == nil {
		return ChecksumResponse{}, ErrNoRing
	}
	if req.RingVersion != t.Ring.Version() {
		now := e.now()
		e.lastRingMismatch.Store(&now)
	}
	if err := checkLineageOrder(req.Lineage); err != nil {
		return ChecksumResponse{}, invalid("checksum from %s: %v", req.Source, err)
	}
	// Whether removal by absence is allowed is decided before meeting the
	// source's lineage: meeting it makes the two equal, not the source complete.
	sameLineage := e.Origin().Lineage.Equal(req.Lineage)
	e.meetLineage(req.Source, req.Lineage)
	resp := ChecksumResponse{Lineage: e.Origin().Lineage}
	n := t.Ring.Partitions()
	if len(req.Partitions) > 0 {
		in := make([]bool, n)
		for _, p := range req.Partitions {
			if p < 0 || p >= n {
				return ChecksumResponse{}, invalid("checksum from %s: partition %d out of range [0,%d)", req.Source, p, n)
			}
			in[p] = true
		}
		return resp, e.reconcile(ctx, t, req, in, sameLineage)
	}

	want := make([]bool, n)
	for p := range req.Digests {
		if p < 0 || p >= n {
			return ChecksumResponse{}, invalid("checksum from %s: partition %d out of range [0,%d)", req.Source, p, n)
		}
		want[p] = true
	}
	local := e.digests(t.Ring, want)
	for p, d := range req.Digests {
		if local[p] != d {
			resp.Mismatched = append(resp.Mismatched, p)
		}
	}
	slices.Sort(resp.Mismatched)
	return resp, nil
}

// LastRingMismatch is when a peer's verify message last carried a ring
// version different from this node's (zero: never). Every peer verifies every
// interval, so while two views differ it is at most a verify interval old; the
// registry holds heartbeat removals until it is old enough.
func (e *Engine) LastRingMismatch() time.Time {
	if t := e.lastRingMismatch.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// reconcile is phase 2 at the receiver for the partitions with in[p]: pull every
// listed key that differs or is missing here, then remove the keys the source no
// longer lists, but only if both sides computed the same ring and descend from
// one lineage. Keys this node believes it owns are left alone.
func (e *Engine) reconcile(ctx context.Context, t *Topology, req ChecksumRequest, in []bool, sameLineage bool) error {
	var pull []string
	skipped := 0
	for key, sum := range req.Keys {
		if key == "" || !in[t.Ring.Partition(key)] {
			continue
		}
		if t.owns(key) {
			skipped++
			continue
		}
		if d, ok := e.store.Get(key); ok && d.Checksum() == sum {
			continue
		}
		pull = append(pull, key)
	}
	if skipped > 0 {
		e.log.Info("verify listed keys this node owns, skipped them", "source", req.Source, "keys", skipped,
			"sourceRing", req.RingVersion, "ring", t.Ring.Version())
	}
	e.met.verifyMismatchedKeys.Add(float64(len(pull)))

	var err error
	var back []string
	if len(pull) > 0 {
		err = e.pull(ctx, t, req.Source, pull)
		// What still differs after the merge holds writes the owner lacks: send them back.
		for _, key := range pull {
			if d, ok := e.store.Get(key); ok && d.Checksum() != req.Keys[key] {
				back = append(back, key)
			}
		}
	}
	switch {
	case req.RingVersion != t.Ring.Version():
		e.log.Debug("ring versions differ, no removals", "source", req.Source)
	case !sameLineage:
		// The source never had this side's history: what it does not list goes back to it.
		back = append(back, e.unlisted(t, req, in, false)...)
		e.log.Info("source descends from another lineage: no removals, sending back what it lacks",
			"source", req.Source, "lineage", req.Lineage.String(), "keys", len(back))
	default:
		back = append(back, e.unlisted(t, req, in, true)...)
	}
	if len(back) > 0 && err == nil {
		e.markFor(req.Source, back)
		e.met.verifyPushedBack.Add(float64(len(back)))
	}
	return err
}

// pull queries source for keys and applies what comes back.
func (e *Engine) pull(ctx context.Context, t *Topology, source string, keys []string) error {
	p, ok := t.peer(source)
	if !ok {
		return fmt.Errorf("pull %d keys from %s: not in this node's view", len(keys), source)
	}
	asked := make(map[string]bool, len(keys))
	for _, k := range keys {
		asked[k] = true
	}
	for chunk := range slices.Chunk(keys, e.cfg.MaxBatch) {
		rctx, cancel := e.requestCtx(ctx)
		ds, err := e.tr.Query(rctx, p, chunk)
		cancel()
		if err != nil {
			return fmt.Errorf("pull %d keys from %s: %w", len(chunk), source, err)
		}
		for _, d := range ds {
			if !asked[d.Key] {
				continue // never apply what was not asked for
			}
			if err := e.checkVersion(d); err != nil {
				e.log.Warn("verify pull skips a datum", "source", source, "err", err)
				continue
			}
			if e.applyRemote(d) {
				e.met.verifyPulledKeys.Inc()
			}
		}
	}
	return nil
}

// unlisted handles live datums in the partitions with in[p] that map to the
// source but that it does not list: with remove, it tombstones those the
// source could have known (below); the others are returned, to be sent back
// to the source. The tombstone keeps the local version:
// Newer lets a tombstone win at equal version, and any newer write still wins.
// Absence is evidence of deletion only where the source could have known the
// datum, so these are returned, to be sent back, instead of removed: datums not
// newer than the source's horizon (it lost or never had what came before) and
// datums younger than RemoveGrace (a push to the source may have been lost).
func (e *Engine) unlisted(t *Topology, req ChecksumRequest, in []bool, remove bool) (back []string) {
	var floor uint64
	if e.cfg.RemoveGrace > 0 {
		if f := e.now().Add(-e.cfg.RemoveGrace).UnixNano(); f > 0 {
			floor = uint64(f)
		}
	}
	var victims []Datum
	e.store.Range(func(d Datum) bool {
		if d.Deleted {
			return true
		}
		p := t.Ring.Partition(d.Key)
		if !in[p] || t.Ring.Owner(p) != req.Source {
			return true
		}
		if _, listed := req.Keys[d.Key]; listed {
			return true
		}
		if !remove || d.Version <= req.Horizon || (floor > 0 && d.Version > floor) {
			back = append(back, d.Key)
			return true
		}
		victims = append(victims, d)
		return true
	})
	removed := 0
	for _, d := range victims {
		if e.store.Apply(Datum{Key: d.Key, Version: d.Version, Deleted: true}) {
			removed++
		}
	}
	if removed > 0 {
		e.met.verifyRemovedKeys.Add(float64(removed))
		e.log.Info("removed keys the owner no longer has", "source", req.Source, "keys", removed)
	}
	return back
}
