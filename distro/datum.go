// Package distro replicates opaque, versioned datums across a cluster with the
// Distro protocol: the responsible node pushes every change to all peers, a
// periodic verify repairs what a push missed, and a starting node pulls a full
// snapshot before it serves. distro never looks inside a value.
package distro

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Datum is one replicated key. Value is opaque to distro.
type Datum struct {
	Key     string `json:"key"`
	Value   []byte `json:"value,omitempty"`
	Version uint64 `json:"version"`
	Deleted bool   `json:"deleted,omitempty"`
}

// Checksum hashes the datum's canonical encoding (version, deleted, value).
// The key is not included: checksums are always exchanged next to their key.
func (d Datum) Checksum() uint64 {
	var hdr [9]byte
	binary.LittleEndian.PutUint64(hdr[:8], d.Version)
	if d.Deleted {
		hdr[8] = 1
	}
	h := xxhash.New()
	_, _ = h.Write(hdr[:])
	_, _ = h.Write(d.Value)
	return h.Sum64()
}

// Newer reports whether a should replace b under newer-wins: a higher version
// wins, and at equal versions a tombstone wins so a removal is never undone by
// a copy of the same version.
func Newer(a, b Datum) bool {
	if a.Version != b.Version {
		return a.Version > b.Version
	}
	return a.Deleted && !b.Deleted
}

// Clock issues versions that never go backwards: max(unix-nanos, last+1,
// highest-seen+1). Because versions start from wall time, a restarted node
// does not reuse versions it issued before.
type Clock struct {
	mu   sync.Mutex
	last uint64
	now  func() time.Time
}

// NewClock returns a clock reading now (time.Now when nil).
func NewClock(now func() time.Time) *Clock {
	if now == nil {
		now = time.Now
	}
	return &Clock{now: now}
}

// Next returns a version greater than every version issued or observed. The
// arithmetic saturates: once 2^64-1 is reached Next keeps returning it rather
// than wrapping to small versions that every stored datum would outrank
// (distro refuses peer versions that far ahead, see Config.MaxClockSkew).
func (c *Clock) Next() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := wallVersion(c.now())
	if v <= c.last {
		v = c.last
		if v < math.MaxUint64 {
			v++
		}
	}
	c.last = v
	return v
}

// wallVersion is t as a version: unix nanoseconds, 0 before 1970.
func wallVersion(t time.Time) uint64 {
	return uint64(max(t.UnixNano(), 0))
}

// Observe records a version seen from a peer so later versions exceed it.
func (c *Clock) Observe(v uint64) {
	c.mu.Lock()
	if v > c.last {
		c.last = v
	}
	c.mu.Unlock()
}

// errVersionAhead refuses a peer's datum whose version is beyond the clock-skew bound.
var errVersionAhead = invalid("distro: version too far ahead of this node's clock")

// checkVersion refuses a datum from a peer whose version is more than
// MaxClockSkew ahead of this node's wall clock: observed, it would drag every
// later version there (at 2^64-1 none could follow). The bound is against wall
// time, not the clock's highest version, so accepted versions cannot ratchet it.
func (e *Engine) checkVersion(d Datum) error {
	limit := wallVersion(e.now().Add(e.cfg.MaxClockSkew))
	if d.Version > limit {
		return fmt.Errorf("%w: key %q has version %d, more than %s beyond this node's clock (%d)",
			errVersionAhead, truncateKey(d.Key), d.Version, e.cfg.MaxClockSkew, limit)
	}
	return nil
}

// applyRemote applies a peer's datum and, only if the store took it, records
// its version in the clock: a value the store refused (undecodable, older)
// must not move this node's versions.
func (e *Engine) applyRemote(d Datum) bool {
	changed := e.store.Apply(d)
	if changed {
		e.clock.Observe(d.Version)
	}
	return changed
}
