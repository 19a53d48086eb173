package daemon

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/distrod/distrod/daemon/naming"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/hashring"
	"github.com/distrod/distrod/membership"
)

// view is an immutable snapshot of the responsibility ring and the HTTP
// addresses of its members; the rebuild loop swaps it atomically.
type view struct {
	ring  *hashring.Ring    // nil while no member is ready
	addrs map[string]string // member name -> HTTP address
	// hosts are the IPs of the live members' HTTP and gossip addresses (memberAddr).
	hosts map[netip.Addr]bool
	// ringChanged is when this node last changed its ring (zero: never).
	ringChanged time.Time
}

// membershipChanged is membership's OnChange: it only signals the rebuild loop
// (coalescing bursts), so membership's event goroutine never waits on distro or the registry.
func (n *Node) membershipChanged() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// rebuildLoop owns every consequence of a membership change: the ring, the
// ownership grace for gained partitions, and distro's topology.
func (n *Node) rebuildLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.kick:
			n.rebuild()
		}
	}
}

// rebuild recomputes the view from membership and hands it to the registry and distro.
// Only rebuildLoop calls it.
func (n *Node) rebuild() {
	began := time.Now()
	self := n.cfg.Name
	all := n.members.Members()
	others := n.members.Others()
	ready := n.members.Ready()
	n.metrics.observeMembers(all)
	if failed := n.newlyFailed(all); len(failed) > 0 {
		n.log.Info("members failed: heartbeat expiry holds removals", "members", failed)
		n.registry.HoldRemovals()
	}

	addrs := make(map[string]string, len(all))
	for _, m := range all {
		addrs[m.Name] = m.HTTPAddr
	}
	hosts := memberHosts(all)
	names := make([]string, 0, len(ready))
	for _, m := range ready {
		names = append(names, m.Name)
	}
	sort.Strings(names)

	old := n.view.Load()
	var oldRing *hashring.Ring
	if old != nil {
		oldRing = old.ring
	}
	var ring *hashring.Ring
	if len(names) > 0 {
		if oldRing != nil && oldRing.Version() == hashring.VersionOf(names) {
			ring = oldRing // same ready set: keep the ring, skip the rebuild
		} else {
			r, err := hashring.New(n.cfg.Membership.Partitions, names)
			if err != nil {
				n.log.Error("build ring", "members", names, "err", err)
			} else {
				ring = r
			}
		}
	}
	if ring == nil && oldRing != nil {
		n.log.Warn("no ready member: ring is empty")
	}
	changed := ring != oldRing
	owned, gained := 0, map[int]bool(nil)
	if changed {
		if ring != nil {
			owned = len(ring.Owned(self))
		}
		n.metrics.ringChanges.Inc()
		n.metrics.partitionsOwned.Set(float64(owned))
		if gained = gainedPartitions(oldRing, ring, self); len(gained) > 0 {
			partitions := n.cfg.Membership.Partitions
			partitionOf := func(key string) int { return hashring.PartitionOf(key, partitions) }
			n.registry.OwnershipGained(partitionOf, gained)
		}
	}
	ringChanged := began
	if !changed && old != nil {
		ringChanged = old.ringChanged
	}
	// Publish the ring only after the grace: expiry never runs on a gained partition without it.
	n.view.Store(&view{ring: ring, addrs: addrs, hosts: hosts, ringChanged: ringChanged})

	topo := distro.Topology{Self: self, Ring: ring}
	for _, m := range others {
		topo.Peers = append(topo.Peers, distro.Peer{Name: m.Name, Addr: m.HTTPAddr})
	}
	for _, m := range ready {
		if m.Name != self {
			topo.Ready = append(topo.Ready, distro.Peer{Name: m.Name, Addr: m.HTTPAddr})
		}
	}
	n.engine.SetTopology(topo)
	if changed {
		took := time.Since(began)
		n.metrics.rebuildSeconds.Observe(took.Seconds())
		n.log.Info("ring rebuilt", "version", ringVersion(ring), "members", names,
			"owned", owned, "gained", len(gained), "took", took)
	}
}

// memberHosts is the set of IPs the live members publish for HTTP and gossip.
func memberHosts(members []membership.Member) map[netip.Addr]bool {
	hosts := make(map[netip.Addr]bool, 2*len(members))
	for _, m := range members {
		if m.State != membership.StateAlive && m.State != membership.StateSuspect {
			continue // a dead or departed member is no longer a peer
		}
		for _, a := range []string{m.HTTPAddr, m.GossipAddr} {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				hosts[ap.Addr().Unmap().WithZone("")] = true // a remote IP carries no zone
			}
		}
	}
	return hosts
}

// memberAddr is the member-address rule: without a secret, a request counts as
// a peer's (a forwarded write, a distro request) only if it comes from an IP a
// live member publishes for HTTP or gossip. A peer's requests leave from the
// address it publishes on an ordinary host; behind NAT, or with several
// interfaces, set a secret instead. The view is checked first; on a miss the
// live membership, so a member that joined since the last rebuild is one already.
func (n *Node) memberAddr(ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return false
	}
	addr = addr.Unmap()
	if v := n.view.Load(); v != nil && v.hosts[addr] {
		return true
	}
	return memberHosts(n.members.Members())[addr]
}

// newlyFailed reports members that are dead now and were not at the last
// rebuild, and records the current dead set. Only rebuild calls it.
func (n *Node) newlyFailed(members []membership.Member) []string {
	dead := make(map[string]bool)
	var fresh []string
	for _, m := range members {
		if m.State == membership.StateDead {
			dead[m.Name] = true
			if !n.deadSeen[m.Name] {
				fresh = append(fresh, m.Name)
			}
		}
	}
	n.deadSeen = dead
	return fresh
}

// gainedPartitions is the set of partitions self owns in cur but not in old.
func gainedPartitions(old, cur *hashring.Ring, self string) map[int]bool {
	if cur == nil {
		return nil
	}
	ps := cur.Diff(old, self)
	gained := make(map[int]bool, len(ps))
	for _, p := range ps {
		gained[p] = true
	}
	return gained
}

// ringVersion formats a ring version as the ops endpoints report it ("" for no ring).
func ringVersion(r *hashring.Ring) string {
	if r == nil {
		return ""
	}
	return strconv.FormatUint(r.Version(), 16) // as distro's Status reports it
}

// Ring is the current responsibility ring; nil while no member is ready.
func (n *Node) Ring() *hashring.Ring {
	if v := n.view.Load(); v != nil {
		return v.ring
	}
	return nil
}

// Members is the node's membership view.
func (n *Node) Members() []membership.Member { return n.members.Members() }

// cluster is the node as the naming registry sees it (naming.Cluster).
type cluster Node

var _ naming.Cluster = (*cluster)(nil)

func (c *cluster) node() *Node { return (*Node)(c) }

// Ready reports whether the snapshot is loaded and the node serves reads.
func (c *cluster) Ready() bool { return c.node().Ready() }

// OwnerOf returns the responsible member for key from the current ring.
func (c *cluster) OwnerOf(key string) (naming.Owner, bool) {
	v := c.node().view.Load()
	if v == nil || v.ring == nil {
		return naming.Owner{}, false
	}
	name := v.ring.OwnerOf(key)
	addr, ok := v.addrs[name]
	if !ok {
		return naming.Owner{}, false
	}
	return naming.Owner{Name: name, HTTPAddr: addr, Self: name == c.cfg.Name}, true
}

// Changed hands a local write to distro for pushing.
func (c *cluster) Changed(key string) { c.engine.Changed(key) }

// NextVersion issues a version from distro's hybrid clock.
func (c *cluster) NextVersion() uint64 { return c.engine.Clock().Next() }

// ViewsSettledSince is the later of this node's last ring change and the last
// verify message from a peer with another ring version: the registry removes
// no instance until both are old enough (naming.Config.SettleHold).
func (c *cluster) ViewsSettledSince() time.Time {
	var t time.Time
	if v := c.node().view.Load(); v != nil {
		t = v.ringChanged
	}
	if m := c.engine.LastRingMismatch(); m.After(t) {
		t = m
	}
	return t
}

// MemberAddr applies the node's member-address rule (Node.memberAddr).
func (c *cluster) MemberAddr(ip net.IP) bool { return c.node().memberAddr(ip) }

// Servers lists every known member for /nacos/v1/ns/operator/servers.
func (c *cluster) Servers() []naming.Server {
	ms := c.members.Members()
	out := make([]naming.Server, 0, len(ms))
	for _, m := range ms {
		out = append(out, naming.Server{Name: m.Name, HTTPAddr: m.HTTPAddr, State: string(m.State)})
	}
	return out
}
