package distro

import "context"

// Peer is another node as distro sees it: a name and an HTTP address.
type Peer struct {
	Name string
	Addr string
}

// ChecksumRequest is one verify message from the owner of some partitions to a
// peer. In the first phase Digests holds one digest per partition the source
// owns; in the second, Keys holds per-key checksums for the partitions listed
// in Partitions (the ones the receiver reported as different).
//
// Horizon and Lineage are the source's Origin: the receiver removes a key the
// source does not list only if both have one lineage and the key is newer than
// the horizon, since the source cannot know older keys.
type ChecksumRequest struct {
	Source      string            `json:"source"`
	RingVersion uint64            `json:"ringVersion"`
	Horizon     uint64            `json:"horizon"`
	Lineage     Lineage           `json:"lineage"`
	Digests     map[int]uint64    `json:"digests,omitempty"`
	Partitions  []int             `json:"partitions,omitempty"`
	Keys        map[string]uint64 `json:"keys,omitempty"`
}

// ChecksumResponse lists the partitions whose digest differs at the receiver,
// with the receiver's lineage so the source learns of another history too.
type ChecksumResponse struct {
	Mismatched []int   `json:"mismatched,omitempty"`
	Lineage    Lineage `json:"lineage,omitempty"`
}

// Transport carries distro's peer requests. The fasthttp client implements it;
// tests wire engines together with an in-process fake.
type Transport interface {
	// Push sends a batch of current values (PUT /distro/v1/datum).
	Push(ctx context.Context, to Peer, batch []Datum) error
	// Query fetches the datums for keys (POST /distro/v1/datum/query).
	Query(ctx context.Context, to Peer, keys []string) ([]Datum, error)
	// Checksum delivers a verify message (PUT /distro/v1/checksum?source=).
	Checksum(ctx context.Context, to Peer, req ChecksumRequest) (ChecksumResponse, error)
	// Snapshot streams every datum of the peer to fn (GET /distro/v1/datums) and
	// returns the peer's origin once the stream is complete.
	Snapshot(ctx context.Context, from Peer, fn func(Datum) error) (Origin, error)
}
