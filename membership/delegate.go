package membership

import (
	"fmt"

	"github.com/hashicorp/memberlist"
)

// delegate is memberlist's Delegate, AliveDelegate and MergeDelegate for one
// Membership. memberlist calls it from its own goroutines, some holding its
// node lock: it reads atomics and logs, and never calls back into memberlist.
type delegate struct{ m *Membership }

var (
	_ memberlist.Delegate      = delegate{}
	_ memberlist.AliveDelegate = delegate{}
	_ memberlist.MergeDelegate = delegate{}
)

// NodeMeta publishes the local metadata; it never exceeds limit (Validate
// checked the worst case), since memberlist panics on longer metadata.
func (d delegate) NodeMeta(limit int) []byte {
	b := d.m.localMeta().encode()
	if len(b) > limit {
		d.m.log.Error("node metadata exceeds memberlist's limit; publishing none", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

// NotifyMsg, GetBroadcasts, LocalState and MergeRemoteState: membership sends
// no user messages and keeps no state beyond the metadata.
func (delegate) NotifyMsg([]byte)                           {}
func (delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (delegate) LocalState(join bool) []byte                { return nil }
func (delegate) MergeRemoteState(buf []byte, join bool)     {}

// NotifyAlive refuses a peer whose metadata is unreadable or incompatible;
// memberlist then ignores its alive message and it never becomes a member.
func (d delegate) NotifyAlive(peer *memberlist.Node) error {
	return d.m.checkPeer(peer.Name, peer.Address(), peer.Meta)
}

// NotifyMerge cancels a join (ours or theirs) when the other side knows a
// live member we would refuse; dead and left entries are history and pass.
func (d delegate) NotifyMerge(peers []*memberlist.Node) error {
	for _, p := range peers {
		if p.State == memberlist.StateDead || p.State == memberlist.StateLeft {
			continue
		}
		if err := d.m.checkPeer(p.Name, p.Address(), p.Meta); err != nil {
			return fmt.Errorf("refuse merge with cluster containing %s: %w", p.Name, err)
		}
	}
	return nil
}

// checkPeer decodes a peer's metadata and refuses it, logged, when it is
// unreadable or speaks another protocol version or partition count.
func (m *Membership) checkPeer(name, addr string, raw []byte) error {
	md, err := decodeMeta(raw)
	if err != nil {
		m.log.Warn("refusing member with unreadable metadata", "node", name, "addr", addr, "err", err)
		return fmt.Errorf("%w: %v", ErrIncompatible, err)
	}
	if err := md.compatible(m.cfg.Partitions); err != nil {
		m.log.Warn("refusing incompatible member", "node", name, "addr", addr,
			"protocol", md.Protocol, "local_protocol", ProtocolVersion,
			"partitions", md.Partitions, "local_partitions", m.cfg.Partitions)
		return err
	}
	return nil
}
