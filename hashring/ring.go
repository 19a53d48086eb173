// Package hashring maps keys to partitions and partitions to the ready member
// responsible for them. It is pure and deterministic: the same partition count
// and member names give the same owners on every node, in any arrival order.
package hashring

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// DefaultPartitions is the partition count every node of a cluster must share.
const DefaultPartitions = 1024

// ErrNoMembers is returned when a ring is built over an empty member set.
var ErrNoMembers = errors.New("hashring: no members")

// PartitionOf maps a key to its partition: xxhash(key) % partitions.
func PartitionOf(key string, partitions int) int {
	return int(xxhash.Sum64String(key) % uint64(partitions))
}

// VersionOf is the ring version for a member set: a hash of the sorted names.
// Two nodes agree on ownership iff their versions are equal.
func VersionOf(members []string) uint64 {
	sorted := append([]string(nil), members...)
	sort.Strings(sorted)
	return xxhash.Sum64String(strings.Join(sorted, "\x00"))
}

// Ring is an immutable assignment of partitions to members.
type Ring struct {
	partitions int
	members    []string // sorted, unique
	owners     []int32  // partition -> index into members
	version    uint64
}

// New builds the ring for members over the given partition count.
// TODO(hashring): bounded-load assignment; this placeholder is plain rendezvous.
func New(partitions int, members []string) (*Ring, error) {
	if partitions <= 0 {
		return nil, fmt.Errorf("hashring: partitions must be positive, got %d", partitions)
	}
	if len(members) == 0 {
		return nil, ErrNoMembers
	}
	sorted := append([]string(nil), members...)
	sort.Strings(sorted)
	r := &Ring{partitions: partitions, members: sorted, owners: make([]int32, partitions), version: VersionOf(sorted)}
	for p := 0; p < partitions; p++ {
		best, bestScore := 0, uint64(0)
		for i, m := range sorted {
			s := xxhash.Sum64String(fmt.Sprintf("%s/%d", m, p))
			if i == 0 || s > bestScore {
				best, bestScore = i, s
			}
		}
		r.owners[p] = int32(best)
	}
	return r, nil
}

// Partitions is the partition count.
func (r *Ring) Partitions() int { return r.partitions }

// Version identifies the member set the ring was built from.
func (r *Ring) Version() uint64 { return r.version }

// Members are the ring's members, sorted by name.
func (r *Ring) Members() []string { return append([]string(nil), r.members...) }

// Partition is the partition of key.
func (r *Ring) Partition(key string) int { return PartitionOf(key, r.partitions) }

// Owner is the member responsible for partition p.
func (r *Ring) Owner(p int) string { return r.members[r.owners[p]] }

// OwnerOf is the member responsible for key.
func (r *Ring) OwnerOf(key string) string { return r.Owner(r.Partition(key)) }

// Owners lists the owner of every partition, indexed by partition.
func (r *Ring) Owners() []string {
	out := make([]string, r.partitions)
	for p := range out {
		out[p] = r.Owner(p)
	}
	return out
}

// Owned lists the partitions member is responsible for, ascending.
func (r *Ring) Owned(member string) []int {
	var out []int
	for p := range r.owners {
		if r.members[r.owners[p]] == member {
			out = append(out, p)
		}
	}
	return out
}
