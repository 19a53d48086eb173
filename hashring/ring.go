// Package hashring maps keys to partitions and partitions to the ready member
// responsible for them. It is pure and deterministic: the same partition count
// and member names give the same owners on every node, in any arrival order.
//
// Owners are chosen by rendezvous (highest random weight) hashing under a load
// bound, as in consistent hashing with bounded loads: partitions are visited in
// a fixed order that depends on the partition count only, and each goes to the
// highest-weighted member that still has room. No member owns more than
// MaxLoad(partitions, members) partitions, and a join or a departure moves
// little beyond what the newcomer takes or the leaver gave up.
package hashring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// DefaultPartitions is the partition count every node of a cluster must share.
const DefaultPartitions = 1024

// ErrNoMembers is returned when a ring is built over an empty member set.
var ErrNoMembers = errors.New("hashring: no members")

// PartitionOf maps a key to its partition: xxhash(key) % partitions.
// It returns 0 when partitions is not positive rather than dividing by zero.
func PartitionOf(key string, partitions int) int {
	if partitions <= 0 {
		return 0
	}
	return int(xxhash.Sum64String(key) % uint64(partitions))
}

// VersionOf is the ring version for a member set: a hash of the sorted,
// de-duplicated names. Two nodes agree on ownership iff their versions are
// equal. Names are length-prefixed, so no choice of names can collide by
// concatenation.
func VersionOf(members []string) uint64 {
	d := xxhash.New()
	var n [8]byte
	for _, m := range uniqueSorted(members) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(m)))
		_, _ = d.Write(n[:])
		_, _ = d.WriteString(m)
	}
	return d.Sum64()
}

// MaxLoad is the most partitions any one of n members may own:
// floor(1.25 × partitions/n), or ceil(partitions/n) when the floor leaves too
// little room for every partition (only when partitions/n < 4).
// It returns 0 when either argument is not positive.
func MaxLoad(partitions, n int) int {
	if partitions <= 0 || n <= 0 {
		return 0
	}
	c := 5 * partitions / (4 * n)
	if c*n < partitions {
		c = (partitions + n - 1) / n
	}
	return c
}

// Ring is an immutable assignment of partitions to members. The zero of
// *Ring (nil) is usable: it has no partitions, no members and no owners.
type Ring struct {
	partitions int
	members    []string // sorted, unique
	owners     []int32  // partition -> index into members
	version    uint64
}

// New builds the ring for members over the given partition count. Duplicate
// names are ignored; the order of members does not matter.
func New(partitions int, members []string) (*Ring, error) {
	return build(partitions, members, nil)
}

// weigher replaces the default hashing; tests inject one whose values they can
// reason about. weight ranks members for a partition (highest wins), order
// sets the order partitions are assigned in (lowest first).
type weigher struct {
	weight func(member string, partition int) uint64
	order  func(partition int) uint64
}

// Seeds keep the partition order independent of the member weights.
const (
	orderSeed  = 0x9e3779b97f4a7c15
	weightSeed = 0xc2b2ae3d27d4eb4f
)

func build(partitions int, members []string, w *weigher) (*Ring, error) {
	if partitions <= 0 {
		return nil, fmt.Errorf("hashring: partitions must be positive, got %d", partitions)
	}
	if partitions > 1<<24 {
		return nil, fmt.Errorf("hashring: %d partitions is more than the 16777216 supported", partitions)
	}
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	if slices.Contains(members, "") {
		return nil, errors.New("hashring: empty member name")
	}
	sorted := uniqueSorted(members)
	if len(sorted) > 1<<20 {
		return nil, fmt.Errorf("hashring: %d members is more than the 1048576 supported", len(sorted))
	}
	r := &Ring{
		partitions: partitions,
		members:    sorted,
		owners:     make([]int32, partitions),
		version:    VersionOf(sorted),
	}

	weight, order := defaultWeigher(sorted)
	if w != nil {
		weight = func(i, p int) uint64 { return w.weight(sorted[i], p) }
		order = w.order
	}

	// Visit partitions in a fixed order (by order key, then index) so that
	// the same partitions are the late, overflowing ones for every member set.
	type keyed struct {
		key uint64
		p   int
	}
	seq := make([]keyed, partitions)
	for p := range seq {
		seq[p] = keyed{order(p), p}
	}
	slices.SortFunc(seq, func(a, b keyed) int {
		if a.key != b.key {
			if a.key < b.key {
				return -1
			}
			return 1
		}
		return a.p - b.p
	})

	limit := MaxLoad(partitions, len(sorted))
	load := make([]int, len(sorted))
	for _, s := range seq {
		// The highest-weighted member with room; ties go to the lower name.
		best, bestW := -1, uint64(0)
		for i := range sorted {
			if load[i] >= limit {
				continue
			}
			if wt := weight(i, s.p); best < 0 || wt > bestW {
				best, bestW = i, wt
			}
		}
		// best >= 0: limit*len(sorted) >= partitions, so someone has room.
		r.owners[s.p] = int32(best)
		load[best]++
	}
	return r, nil
}

// defaultWeigher hashes (xxhash(name), partition) for weights and the
// partition alone for the order, over a 16-byte buffer: no allocation per call.
func defaultWeigher(sorted []string) (weight func(i, p int) uint64, order func(p int) uint64) {
	names := make([]uint64, len(sorted))
	for i, m := range sorted {
		names[i] = xxhash.Sum64String(m)
	}
	weight = func(i, p int) uint64 { return mix(names[i]^weightSeed, uint64(p)) }
	order = func(p int) uint64 { return mix(orderSeed, uint64(p)) }
	return weight, order
}

func mix(a, b uint64) uint64 {
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], a)
	binary.LittleEndian.PutUint64(buf[8:], b)
	return xxhash.Sum64(buf[:])
}

func uniqueSorted(members []string) []string {
	sorted := slices.Clone(members)
	slices.Sort(sorted)
	return slices.Compact(sorted)
}

// Partitions is the partition count (0 for a nil ring).
func (r *Ring) Partitions() int {
	if r == nil {
		return 0
	}
	return r.partitions
}

// Version identifies the member set the ring was built from (0 for a nil ring).
func (r *Ring) Version() uint64 {
	if r == nil {
		return 0
	}
	return r.version
}

// Members are the ring's members, sorted by name.
func (r *Ring) Members() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.members)
}

// Partition is the partition of key (0 for a nil ring).
func (r *Ring) Partition(key string) int {
	if r == nil {
		return 0
	}
	return PartitionOf(key, r.partitions)
}

// Owner is the member responsible for partition p, or "" when p is out of
// range or the ring is nil.
func (r *Ring) Owner(p int) string {
	if r == nil || p < 0 || p >= len(r.owners) {
		return ""
	}
	return r.members[r.owners[p]]
}

// OwnerOf is the member responsible for key ("" for a nil ring).
func (r *Ring) OwnerOf(key string) string {
	if r == nil {
		return ""
	}
	return r.Owner(r.Partition(key))
}

// Owners lists the owner of every partition, indexed by partition.
func (r *Ring) Owners() []string {
	if r == nil {
		return nil
	}
	out := make([]string, r.partitions)
	for p, i := range r.owners {
		out[p] = r.members[i]
	}
	return out
}

// Owned lists the partitions member is responsible for, ascending.
func (r *Ring) Owned(member string) []int {
	i, ok := r.index(member)
	if !ok {
		return nil
	}
	var out []int
	for p, o := range r.owners {
		if o == i {
			out = append(out, p)
		}
	}
	return out
}

// Diff lists, ascending, the partitions member owns in r but did not own in
// old: the ones it has just gained. A nil old means member gained all it owns.
func (r *Ring) Diff(old *Ring, member string) (gained []int) {
	i, ok := r.index(member)
	if !ok {
		return nil
	}
	for p, o := range r.owners {
		if o == i && old.Owner(p) != member {
			gained = append(gained, p)
		}
	}
	return gained
}

// index is member's position in r.members.
func (r *Ring) index(member string) (int32, bool) {
	if r == nil {
		return 0, false
	}
	i, ok := slices.BinarySearch(r.members, member)
	return int32(i), ok
}
