package naming

import (
	"time"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// The stall guard. A process that was stopped (SIGSTOP, a paused VM, heavy
// swapping) wakes up with a stale view: its beat records say nothing beat for
// the whole stop, because it heard nothing, and its ring may still name it the
// owner of partitions that peers handed to others while it was away. Requests
// that queued in its sockets are served as soon as it runs again, on that
// stale view. Left alone it would expire live instances and re-register
// instances that were deregistered elsewhere meanwhile, and push both to every
// peer.
//
// A ticker records its last tick every stallTickEvery. A gap longer than
// StallThreshold means the process did not run:
//   - a local write or an expiry round that finds the last tick that old is
//     refused (503 ErrStalled) or skipped, synchronously: queued requests are
//     served before the ticker gets to run after SIGCONT;
//   - the ticker that sees the gap starts a hold of StallHold, during which
//     local writes are refused and expiry is skipped while gossip and verify
//     refresh the view, and restarts every instance's beat clock at the end of
//     the hold, so nothing is expired for the stall itself.
//
// Forwarding is not affected: a write this node would forward is the owner's
// to judge (if the owner gives no answer, the write would run here and is
// refused). Reads are refused too (503 ErrStale), stalled or in the hold:
// the node knows that its view misses what changed meanwhile (deregistered
// instances would be listed for seconds), and a client fails over to another
// node; /health says STALE (Stalled).

// stallTickEvery is the stall ticker's period.
const stallTickEvery = 100 * time.Millisecond

// ErrStalled answers a local write while the node recovers from a stall;
// clients retry on another node.
var ErrStalled = &httpx.Error{Status: fasthttp.StatusServiceUnavailable, Msg: "node was stalled, re-syncing its view"}

// ErrStale answers a read while the node recovers from a stall.
var ErrStale = &httpx.Error{Status: fasthttp.StatusServiceUnavailable, Msg: "node was stalled, its view is stale while it re-syncs: ask another node"}

// stallTick records a tick of the stall ticker at now. A gap above
// StallThreshold since the previous tick starts a hold and gives every live
// instance a beat at the hold's end (grace).
func (r *Registry) stallTick(now time.Time) {
	prev := r.lastTick.Swap(&now)
	if prev == nil {
		return
	}
	gap := now.Sub(*prev)
	if gap <= r.cfg.StallThreshold {
		return
	}
	until := now.Add(r.cfg.StallHold)
	r.stalledUntil.Store(&until)
	n := r.graceAll(until)
	r.stats.stalls.Inc()
	r.log.Warn("node was stalled: refusing local writes and holding expiry while its view refreshes",
		"gap", gap.Round(time.Millisecond), "hold", r.cfg.StallHold, "graced", n)
}

// Stalled reports whether the node is stalled or inside the hold after a
// stall: its view is stale, it refuses reads and local writes.
func (r *Registry) Stalled() bool { return r.stalled(r.now()) }

// stalled reports whether, at now, the node is stalled or inside the hold
// after a stall. Before Start (no tick yet) it never is.
func (r *Registry) stalled(now time.Time) bool {
	last := r.lastTick.Load()
	if last == nil {
		return false
	}
	if now.Sub(*last) > r.cfg.StallThreshold {
		return true
	}
	until := r.stalledUntil.Load()
	return until != nil && now.Before(*until)
}

// graceAll gives every live instance a beat at t (unless it has a later one)
// and reports how many it touched. A grace is not a heard beat: it protects an
// instance from this node's expiry, and never re-asserts it over a peer's
// expiry (see reassertBeating).
func (r *Registry) graceAll(t time.Time) int {
	return r.graceLive(r.entriesWhere(func(_ string, e *entry) bool { return e.exists }), t)
}
