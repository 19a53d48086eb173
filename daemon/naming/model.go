package naming

import (
	"bytes"
	"maps"
	"math"
	"strconv"
	"strings"
)

// Nacos defaults.
const (
	DefaultNamespace = "public"
	DefaultGroup     = "DEFAULT_GROUP"
	DefaultCluster   = "DEFAULT"

	groupSep     = "@@" // group@@service
	namespaceSep = "##" // namespace##group@@service
)

// Instance is one registered endpoint of a service. Instances are immutable
// once they are part of a stored Service; writes build new ones.
type Instance struct {
	IP        string
	Port      int
	Cluster   string
	Weight    float64
	Healthy   bool
	Enabled   bool
	Ephemeral bool
	Metadata  map[string]string
	// Version is the version of the write that produced this state of the instance.
	Version uint64
	// Registered is the version of the registration that began this incarnation
	// (live instances only; Registered <= Version). Updates keep it. A tombstone
	// at D ends every incarnation registered at or before D, however recent its
	// later updates: a health mark written on a stale copy during a partition
	// must not undo a deregistration the other side accepted.
	Registered uint64
	// Deleted marks a tombstone: the instance was deregistered at Version.
	Deleted bool
	// Expired marks a tombstone written by heartbeat expiry rather than by a
	// deregistration. A node that still receives the instance's beats re-asserts
	// it over such a tombstone (an expiry seen from the far side of a partition);
	// a deregistration is never undone.
	Expired bool
}

// Key is the instance's identity inside its service: ip:port:cluster.
func (in *Instance) Key() string { return instanceKey(in.IP, in.Port, in.Cluster) }

func instanceKey(ip string, port int, cluster string) string {
	return ip + ":" + strconv.Itoa(port) + ":" + cluster
}

// instanceID is Nacos's simple instance id: ip#port#cluster#group@@service.
func instanceID(in *Instance, grouped string) string {
	return in.IP + "#" + strconv.Itoa(in.Port) + "#" + in.Cluster + "#" + grouped
}

// Service is the value of one datum: a service's own fields and its instances.
//
// It is a state-based CRDT. Merging two values keeps, per instance, the state
// with the higher version (a tombstone wins a tie); the service fields are a
// last-writer-wins register (MetaVersion); DeletedAt is a service-level
// tombstone that removes everything written at or before it. Merge is
// commutative, associative and idempotent, so replicas that saw the same
// writes in any order hold the same bytes. Services are immutable once stored.
type Service struct {
	// DeletedAt is the version of the latest service deletion (0: never deleted).
	DeletedAt uint64
	// Swept is the highest version of an instance tombstone forgotten by Sweep; it
	// keeps the datum's version from going backwards.
	Swept uint64
	// MetaVersion versions the service fields below; 0 means "defaults, never written".
	MetaVersion      uint64
	ProtectThreshold float64
	Metadata         map[string]string
	// Selector is the raw selector JSON ("" means none).
	Selector string
	// Instances are keyed by Instance.Key, tombstones included.
	Instances map[string]*Instance
}

// exists reports whether the service is live: it was created (explicitly or by
// a registration) after its last deletion, or it has a live instance.
func (s *Service) exists() bool {
	if s == nil {
		return false
	}
	if s.MetaVersion > s.DeletedAt {
		return true
	}
	for _, in := range s.Instances {
		if !in.Deleted {
			return true
		}
	}
	return false
}

// live returns the live instance with key k, or nil.
func (s *Service) live(k string) *Instance {
	if s == nil {
		return nil
	}
	if in := s.Instances[k]; in != nil && !in.Deleted {
		return in
	}
	return nil
}

// counts returns the numbers of live and of live healthy instances.
func (s *Service) counts() (live, healthy int) {
	if s == nil {
		return 0, 0
	}
	for _, in := range s.Instances {
		if in.Deleted {
			continue
		}
		live++
		if in.Healthy {
			healthy++
		}
	}
	return live, healthy
}

// merge joins a and b (either may be nil) into a new normalized Service.
// Neither argument is modified; instances are shared, not copied.
func merge(a, b *Service) *Service {
	if a == nil {
		a = &Service{}
	}
	if b == nil {
		b = &Service{}
	}
	out := &Service{
		DeletedAt:   max(a.DeletedAt, b.DeletedAt),
		Swept:       max(a.Swept, b.Swept),
		MetaVersion: 0,
		Instances:   make(map[string]*Instance, max(len(a.Instances), len(b.Instances))),
	}
	meta := a
	if metaWins(b, a) {
		meta = b
	}
	if meta.MetaVersion > out.DeletedAt {
		out.MetaVersion = meta.MetaVersion
		out.ProtectThreshold = meta.ProtectThreshold
		out.Metadata = meta.Metadata
		out.Selector = meta.Selector
	}
	for k, in := range a.Instances {
		if in.since() > out.DeletedAt {
			out.Instances[k] = in
		}
	}
	for k, in := range b.Instances {
		if in.since() <= out.DeletedAt {
			continue
		}
		if cur, ok := out.Instances[k]; ok && !instanceWins(in, cur) {
			continue
		}
		out.Instances[k] = in
	}
	return out
}

// metaWins reports whether x's service fields beat y's: higher version, ties
// broken by the encoding so that the choice does not depend on order.
func metaWins(x, y *Service) bool {
	if x.MetaVersion != y.MetaVersion {
		return x.MetaVersion > y.MetaVersion
	}
	if sameMeta(x, y) {
		return false // equal encodings: the common tie, decided without encoding
	}
	return bytes.Compare(appendMeta(nil, x), appendMeta(nil, y)) > 0
}

// since is the version from which the instance's state stands: a live
// incarnation's registration, or a tombstone's deletion.
func (in *Instance) since() uint64 {
	if in.Deleted {
		return in.Version
	}
	return in.Registered
}

// instanceWins reports whether x beats y for the same key. States are totally
// ordered, so merging is a max and does not depend on order: first by since()
// (a later incarnation beats an earlier deletion, a deletion beats the
// incarnation it ended), a tombstone winning a tie; then, between states of one
// incarnation, the higher version; then the greater encoding.
func instanceWins(x, y *Instance) bool {
	if x.since() != y.since() {
		return x.since() > y.since()
	}
	if x.Deleted != y.Deleted {
		return x.Deleted
	}
	if x.Version != y.Version {
		return x.Version > y.Version
	}
	if sameInstance(x, y) {
		return false // equal encodings: the common tie, decided without encoding
	}
	return bytes.Compare(appendInstance(nil, x), appendInstance(nil, y)) > 0
}

// sameMeta reports whether x's and y's service fields encode alike (appendMeta).
func sameMeta(x, y *Service) bool {
	return math.Float64bits(x.ProtectThreshold) == math.Float64bits(y.ProtectThreshold) &&
		x.Selector == y.Selector && maps.Equal(x.Metadata, y.Metadata)
}

// sameInstance reports whether x and y encode alike (appendInstance).
func sameInstance(x, y *Instance) bool {
	if x == y {
		return true
	}
	if x.IP != y.IP || x.Port != y.Port || x.Cluster != y.Cluster || x.Version != y.Version || x.Deleted != y.Deleted ||
		x.Registered != y.Registered {
		return false
	}
	if x.Deleted {
		return x.Expired == y.Expired
	}
	return x.Healthy == y.Healthy && x.Enabled == y.Enabled && x.Ephemeral == y.Ephemeral &&
		math.Float64bits(x.Weight) == math.Float64bits(y.Weight) && maps.Equal(x.Metadata, y.Metadata)
}

// tombstone returns the canonical tombstone for in at version v.
func tombstone(in *Instance, v uint64) *Instance {
	return &Instance{IP: in.IP, Port: in.Port, Cluster: in.Cluster, Version: v, Deleted: true}
}

// expiredTombstone is the tombstone heartbeat expiry writes for in at version v.
func expiredTombstone(in *Instance, v uint64) *Instance {
	t := tombstone(in, v)
	t.Expired = true
	return t
}

// datumKey is the distro key of a service: namespace##group@@name.
func datumKey(namespace, group, name string) string {
	return namespace + namespaceSep + group + groupSep + name
}

// splitKey parses a datum key; ok is false for keys that are not service keys.
func splitKey(key string) (namespace, group, name string, ok bool) {
	namespace, rest, ok := strings.Cut(key, namespaceSep)
	if !ok {
		return "", "", "", false
	}
	group, name, ok = strings.Cut(rest, groupSep)
	if !ok || namespace == "" || group == "" || name == "" {
		return "", "", "", false
	}
	return namespace, group, name, true
}

// groupedName is Nacos's group@@name.
func groupedName(group, name string) string { return group + groupSep + name }
