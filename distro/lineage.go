package distro

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The horizon says from when a store is complete, but only within one
// history: a node that started a cluster empty while the real cluster kept
// accepting writes elsewhere (an operator's --bootstrap, or the lowest-named
// of a few restarted nodes that saw only each other) never received those
// writes, whatever its horizon. Once bridged, its silence about them would
// delete them. A lineage names the history a store descends from: a node that
// starts a cluster draws a random id, a node that loads a snapshot inherits
// its source's lineage. Verify removes by absence only between equal
// lineages; a node that meets another lineage takes the union and moves its
// horizon to now, since it is complete only from the moment the two
// histories met. Unions are deterministic and only grow, so every node of the
// merged cluster ends on the same lineage, each having moved its horizon.

// maxLineage bounds the ids of a lineage on the wire; each id is a cluster
// once started separately, so real lineages hold one or a few.
const maxLineage = 64

// Lineage is a sorted set of cluster ids. The zero value is the lineage of a
// node that has not loaded yet.
type Lineage []uint64

// newLineage draws the id of a new cluster.
func newLineage() Lineage {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	id := binary.LittleEndian.Uint64(b[:])
	return Lineage{max(id, 1)}
}

// Equal reports whether l and o are the same set.
func (l Lineage) Equal(o Lineage) bool { return slices.Equal(l, o) }

// union is the sorted set of the ids in l and o, at most maxLineage of them
// (the smallest: every node truncates the same way, so they still agree).
func (l Lineage) union(o Lineage) Lineage {
	u := slices.Concat(l, o)
	slices.Sort(u)
	u = slices.Compact(u)
	if len(u) > maxLineage {
		u = u[:maxLineage]
	}
	return u
}

// String lists the ids in hex, joined by '+'.
func (l Lineage) String() string {
	parts := make([]string, len(l))
	for i, id := range l {
		parts[i] = strconv.FormatUint(id, 16)
	}
	return strings.Join(parts, "+")
}

// Origin is what a store's completeness rests on.
type Origin struct {
	// Horizon is the version from which the store is complete: every datum
	// written in its lineage with a newer version reached it, so its absence
	// there means a deletion. It is the boot time of a node that started a
	// cluster, its source's horizon for a node that loaded a snapshot, and the
	// moment it met another lineage, if later.
	Horizon uint64
	// Lineage is the history the store descends from.
	Lineage Lineage
}

// Origin is this node's horizon and lineage, read together (zero while loading).
// Verify removes a key by absence only on the word of an owner of the same
// lineage and only above the owner's horizon, so an owner that lost its data,
// or never had it, deletes nobody's.
func (e *Engine) Origin() Origin {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return Origin{Horizon: e.horizon, Lineage: e.lineage}
}

// meetLineage merges the lineage of a peer into this node's. When that adds
// ids, this node's store is complete only from now: it moves its horizon.
// A node still loading takes its lineage from its snapshot instead.
func (e *Engine) meetLineage(peer string, other Lineage) {
	if len(other) == 0 {
		return
	}
	e.mu.Lock()
	if !e.loaded.Load() || e.lineage.Equal(other) {
		e.mu.Unlock()
		return
	}
	old := e.lineage
	u := old.union(other)
	if u.Equal(old) {
		e.mu.Unlock()
		return
	}
	e.lineage = u
	h := max(e.horizon, wallVersion(e.now()))
	e.horizon = h
	e.mu.Unlock()
	e.met.lineageMerges.Inc()
	e.log.Warn("met a member of a cluster started separately: no removal by absence of what came before now",
		"peer", peer, "lineage", old.String(), "peerLineage", other.String(), "merged", u.String(), "horizon", h)
}

// checkLineageOrder refuses a lineage whose ids do not ascend strictly (a
// decoded one always does; a JSON or in-process one might not).
func checkLineageOrder(l Lineage) error {
	for i := 1; i < len(l); i++ {
		if l[i] <= l[i-1] {
			return fmt.Errorf("lineage ids not ascending")
		}
	}
	if len(l) > maxLineage {
		return fmt.Errorf("lineage of %d ids (max %d)", len(l), maxLineage)
	}
	return nil
}
