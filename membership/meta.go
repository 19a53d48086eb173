package membership

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrIncompatible marks a peer refused for another protocol version or partition count.
var ErrIncompatible = errors.New("incompatible member")

// meta is what a node publishes in memberlist's node metadata (≤ 512 bytes),
// encoded as compact JSON with one-letter keys.
type meta struct {
	Protocol   int    `json:"v"`
	Partitions int    `json:"p"`
	HTTPAddr   string `json:"h"`
	Ready      bool   `json:"r,omitempty"`
	// Leaving is set just before a graceful leave, so peers can tell a left
	// member from a dead one: memberlist's NotifyLeave does not say which
	// (v0.7.0 never fills Node.State; nodeState.State shadows it).
	Leaving bool `json:"l,omitempty"`
	// Incarnation is a random id the process draws at start: peers accept
	// distro messages sent under this node's name only with this id, so a
	// second process with the same name cannot speak for it.
	Incarnation string `json:"i,omitempty"`
}

func (md meta) encode() []byte {
	b, err := json.Marshal(md)
	if err != nil { // a struct of ints, bools and a string always marshals
		return nil
	}
	return b
}

// decodeMeta parses metadata received from the network.
func decodeMeta(b []byte) (meta, error) {
	if len(b) == 0 {
		return meta{}, errors.New("no metadata")
	}
	var md meta
	if err := json.Unmarshal(b, &md); err != nil {
		return meta{}, fmt.Errorf("decode metadata: %w", err)
	}
	if md.Protocol <= 0 {
		return meta{}, errors.New("metadata has no protocol version")
	}
	return md, nil
}

// compatible tells whether a peer's metadata can join a node with the given
// partition count.
func (md meta) compatible(partitions int) error {
	if md.Protocol != ProtocolVersion {
		return fmt.Errorf("%w: protocol version %d, ours is %d", ErrIncompatible, md.Protocol, ProtocolVersion)
	}
	if md.Partitions != partitions {
		return fmt.Errorf("%w: %d partitions, ours is %d", ErrIncompatible, md.Partitions, partitions)
	}
	if md.Incarnation == "" {
		return fmt.Errorf("%w: no incarnation id", ErrIncompatible)
	}
	return nil
}

// incarnationBytes is the size of an incarnation id before hex encoding: 64
// random bits, so two processes of one name practically never draw the same.
const incarnationBytes = 8

// newIncarnation draws a process's incarnation id.
func newIncarnation() string {
	b := make([]byte, incarnationBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics on a broken OS source)
	return hex.EncodeToString(b)
}
