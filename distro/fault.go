package distro

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// ErrPushDropped is returned by a DropPushes transport for a push it chose to fail.
var ErrPushDropped = errors.New("distro: push dropped by fault injection")

// DropPushes wraps t so that a share ratio (0..1) of Push calls fail with
// ErrPushDropped without sending anything; Query, Checksum and Snapshot pass
// through, so verify can still repair what the failed pushes missed. The
// choice is pseudo-random from seed, so a test run can be replayed. A ratio
// of 0 or less returns t itself. It is a fault-injection hook for tests and
// the agent's hidden fault flags, never for production.
func DropPushes(t Transport, ratio float64, seed int64) Transport {
	if ratio <= 0 {
		return t
	}
	return newFaultyPushes(t, ratio, seed, false)
}

// LosePushes wraps t so that a share ratio (0..1) of Push calls are answered
// with success but never sent, like a batch lost after the peer acknowledged
// it. The engine does not retry such a push: only verify repairs it. The other
// calls pass through; seed and ratio as for DropPushes.
func LosePushes(t Transport, ratio float64, seed int64) Transport {
	if ratio <= 0 {
		return t
	}
	return newFaultyPushes(t, ratio, seed, true)
}

// FaultyPushes is the transport DropPushes and LosePushes return; its counters
// say how many pushes it saw and how many it did not send.
type FaultyPushes struct {
	Transport // the wrapped transport: Query, Checksum and Snapshot pass through

	ratio  float64
	silent bool // lose (answer nil) rather than fail

	mu  sync.Mutex // guards rng
	rng *rand.Rand

	pushes, faulted atomic.Int64
}

func newFaultyPushes(t Transport, ratio float64, seed int64, silent bool) *FaultyPushes {
	return &FaultyPushes{
		Transport: t,
		ratio:     min(ratio, 1),
		silent:    silent,
		rng:       rand.New(rand.NewPCG(uint64(seed), 0x64697374726f64)), // "distrod"
	}
}

// Push fails or loses the batch with probability ratio, and sends it otherwise.
func (f *FaultyPushes) Push(ctx context.Context, to Peer, batch []Datum) error {
	f.pushes.Add(1)
	f.mu.Lock()
	fault := f.rng.Float64() < f.ratio
	f.mu.Unlock()
	if !fault {
		return f.Transport.Push(ctx, to, batch)
	}
	f.faulted.Add(1)
	if f.silent {
		return nil
	}
	return fmt.Errorf("push %d datums to %s: %w", len(batch), to.Name, ErrPushDropped)
}

// Counts returns how many pushes were attempted and how many of them were not sent.
func (f *FaultyPushes) Counts() (pushes, faulted int64) {
	return f.pushes.Load(), f.faulted.Load()
}
