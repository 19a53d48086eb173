package naming

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// The value of a service datum is a compact binary encoding of a Service.
// It is canonical: maps are written in key order and tombstones carry only
// their identity and version, so equal content gives equal bytes on every
// node and checksums agree.
//
//	value    = format(1 byte) deletedAt swept metaVersion [meta] count instance*
//	meta     = float64 protectThreshold, string selector, map metadata   (only when metaVersion > 0)
//	instance = string ip, uvarint port, string cluster, uvarint version, flags(1 byte)
//	           [float64 weight, map metadata]                             (only when not deleted)
//	map      = uvarint n, (string key, string value)* sorted by key
//	string   = uvarint length, bytes
//
// Integers are uvarints, floats are IEEE-754 bits little-endian.

const codecFormat = 2 // 2: live instances carry their registration version

const (
	flagDeleted = 1 << iota
	flagHealthy
	flagEnabled
	flagEphemeral
	flagExpired // with flagDeleted: removed by heartbeat expiry
	flagMask    = flagDeleted | flagHealthy | flagEnabled | flagEphemeral | flagExpired
)

// ErrCorrupt is returned for a value that is not a valid encoding.
var ErrCorrupt = errors.New("naming: corrupt service value")

// encode returns the canonical encoding of s.
func encode(s *Service) []byte {
	buf := make([]byte, 0, encodedSize(s)) // exact: the store keeps the value
	buf = append(buf, codecFormat)
	buf = binary.AppendUvarint(buf, s.DeletedAt)
	buf = binary.AppendUvarint(buf, s.Swept)
	buf = binary.AppendUvarint(buf, s.MetaVersion)
	if s.MetaVersion > 0 {
		buf = appendMeta(buf, s)
	}
	var stack [16]string // most services are small: sort their keys without an allocation
	keys := stack[:0]
	for k := range s.Instances {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		buf = appendInstance(buf, s.Instances[k])
	}
	return buf
}

// encodedSize is len(encode(s)).
func encodedSize(s *Service) int {
	n := 1 + uvarintLen(s.DeletedAt) + uvarintLen(s.Swept) + uvarintLen(s.MetaVersion)
	if s.MetaVersion > 0 {
		n += 8 + stringSize(s.Selector) + mapSize(s.Metadata)
	}
	n += uvarintLen(uint64(len(s.Instances)))
	for _, in := range s.Instances {
		n += stringSize(in.IP) + uvarintLen(uint64(in.Port)) + stringSize(in.Cluster) + uvarintLen(in.Version) + 1
		if !in.Deleted {
			n += uvarintLen(in.Version-in.Registered) + 8 + mapSize(in.Metadata)
		}
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func stringSize(s string) int { return uvarintLen(uint64(len(s))) + len(s) }

func mapSize(m map[string]string) int {
	n := uvarintLen(uint64(len(m)))
	for k, v := range m {
		n += stringSize(k) + stringSize(v)
	}
	return n
}

func appendMeta(buf []byte, s *Service) []byte {
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.ProtectThreshold))
	buf = appendString(buf, s.Selector)
	return appendMap(buf, s.Metadata)
}

func appendInstance(buf []byte, in *Instance) []byte {
	buf = appendString(buf, in.IP)
	buf = binary.AppendUvarint(buf, uint64(in.Port))
	buf = appendString(buf, in.Cluster)
	buf = binary.AppendUvarint(buf, in.Version)
	if in.Deleted {
		if in.Expired {
			return append(buf, flagDeleted|flagExpired)
		}
		return append(buf, flagDeleted)
	}
	var f byte
	if in.Healthy {
		f |= flagHealthy
	}
	if in.Enabled {
		f |= flagEnabled
	}
	if in.Ephemeral {
		f |= flagEphemeral
	}
	buf = append(buf, f)
	buf = binary.AppendUvarint(buf, in.Version-in.Registered) // Registered <= Version: a small delta
	buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(in.Weight))
	return appendMap(buf, in.Metadata)
}

func appendString(buf []byte, s string) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(s)))
	return append(buf, s...)
}

func appendMap(buf []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return append(buf, 0)
	}
	var stack [8]string
	keys := stack[:0]
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	buf = binary.AppendUvarint(buf, uint64(len(keys)))
	for _, k := range keys {
		buf = appendString(buf, k)
		buf = appendString(buf, m[k])
	}
	return buf
}

// decode parses a value. It never panics and bounds every allocation by the
// input length, so it is safe on bytes from the network.
//
// Decoding is on every write and push (the store keeps only encodings), so it
// allocates in blocks: every string of the value is a substring of one copy
// of it, the instances share one slice, and their keys one string.
func decode(b []byte) (*Service, error) {
	d := decoder{b: b, s: string(b)}
	if f := d.byte(); f != codecFormat {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: format %d", ErrCorrupt, f)
	}
	s := &Service{}
	s.DeletedAt = d.uvarint()
	s.Swept = d.uvarint()
	s.MetaVersion = d.uvarint()
	if s.MetaVersion > 0 {
		s.ProtectThreshold = d.float()
		s.Selector = d.string()
		s.Metadata = d.stringMap()
	}
	n := d.count(4)
	ins := make([]Instance, n)
	var keyStack [512]byte
	keyBuf := keyStack[:0]
	for i := 0; i < n && d.err == nil; i++ {
		in := &ins[i]
		d.instance(in)
		keyBuf = appendInstanceKey(keyBuf, in.IP, in.Port, in.Cluster)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	keys := string(keyBuf)
	s.Instances = make(map[string]*Instance, n)
	for i := range ins {
		in := &ins[i]
		kl := len(in.IP) + 1 + portLen(in.Port) + 1 + len(in.Cluster)
		k := keys[:kl]
		keys = keys[kl:]
		// A duplicate key is merged rather than rejected; re-encoding makes it canonical.
		if cur, ok := s.Instances[k]; ok && !instanceWins(in, cur) {
			continue
		}
		s.Instances[k] = in
	}
	normalize(s)
	return s, nil
}

// instance reads one instance record into in.
func (d *decoder) instance(in *Instance) {
	in.IP = d.string()
	port := d.uvarint()
	if port > math.MaxUint16 {
		d.fail("port out of range")
	}
	in.Port = int(port)
	in.Cluster = d.string()
	in.Version = d.uvarint()
	f := d.byte()
	if f&^flagMask != 0 {
		d.fail("unknown instance flags")
	}
	if f&flagDeleted != 0 {
		in.Deleted = true
		in.Expired = f&flagExpired != 0
	} else if f&flagExpired != 0 {
		d.fail("expired flag on a live instance")
	} else {
		in.Healthy = f&flagHealthy != 0
		in.Enabled = f&flagEnabled != 0
		in.Ephemeral = f&flagEphemeral != 0
		if age := d.uvarint(); age > in.Version {
			d.fail("registration after the instance's version")
		} else {
			in.Registered = in.Version - age
		}
		in.Weight = d.float()
		in.Metadata = d.stringMap()
	}
}

// lookupLive returns the live instance with key ik of a stored value (one
// that encode produced), or nil. It decodes only that instance: the beat
// path asks for one instance of a service per request.
func lookupLive(value []byte, ik string) *Instance {
	d := decoder{b: value}
	if d.byte() != codecFormat {
		return nil
	}
	d.uvarint() // deletedAt: a stored value holds nothing it covers (normalize)
	d.uvarint() // swept
	if d.uvarint() > 0 {
		d.float()
		d.skipString()
		d.skipMap()
	}
	n := d.count(4)
	for i := 0; i < n && d.err == nil; i++ {
		rec := d.b
		ip := d.rawString()
		port := d.uvarint()
		cluster := d.rawString()
		d.uvarint() // version
		f := d.byte()
		if f&flagDeleted == 0 {
			d.uvarint() // registration age
			d.float()
			d.skipMap()
		}
		if d.err != nil || !keyIs(ik, ip, port, cluster) {
			continue
		}
		if f&flagDeleted != 0 {
			return nil
		}
		in := &Instance{}
		rd := decoder{b: rec[:len(rec)-len(d.b)]}
		if rd.instance(in); rd.err != nil {
			return nil
		}
		return in
	}
	return nil
}

// keyIs reports whether ik is instanceKey(ip, port, cluster), without building it.
func keyIs(ik string, ip []byte, port uint64, cluster []byte) bool {
	if len(ik) < len(ip)+len(cluster)+3 || ik[:len(ip)] != string(ip) || ik[len(ip)] != ':' {
		return false
	}
	rest := ik[len(ip)+1:]
	if len(rest) < len(cluster)+1 || rest[len(rest)-len(cluster):] != string(cluster) || rest[len(rest)-len(cluster)-1] != ':' {
		return false
	}
	var num [20]byte
	return rest[:len(rest)-len(cluster)-1] == string(strconv.AppendUint(num[:0], port, 10))
}

// appendInstanceKey appends instanceKey(ip, port, cluster).
func appendInstanceKey(buf []byte, ip string, port int, cluster string) []byte {
	buf = append(buf, ip...)
	buf = append(buf, ':')
	buf = strconv.AppendInt(buf, int64(port), 10)
	buf = append(buf, ':')
	return append(buf, cluster...)
}

// portLen is the length of strconv.Itoa(port) for 0 <= port <= 65535.
func portLen(port int) int {
	n := 1
	for port >= 10 {
		port /= 10
		n++
	}
	return n
}

// normalize drops from a decoded s what its own DeletedAt covers, in place:
// what merge(nil, s) would return, without copying the instances.
func normalize(s *Service) {
	if s.MetaVersion <= s.DeletedAt {
		s.MetaVersion, s.ProtectThreshold, s.Metadata, s.Selector = 0, 0, nil, ""
	}
	for k, in := range s.Instances {
		if in.since() <= s.DeletedAt {
			delete(s.Instances, k)
		}
	}
}

type decoder struct {
	b   []byte
	s   string // the whole input, copied once: strings are its substrings
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, msg)
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.fail("short value")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) float() float64 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 8 {
		d.fail("short float")
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	if math.IsNaN(f) || math.IsInf(f, 0) {
		d.fail("non-finite float")
		return 0
	}
	return f
}

// count reads an element count, refusing counts the remaining bytes cannot hold
// when each element takes at least minSize bytes.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail("count exceeds value")
		return 0
	}
	return int(n)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.fail("string exceeds value")
		return ""
	}
	if d.s == "" {
		s := string(d.b[:n]) // a decoder over part of a value (lookupLive)
		d.b = d.b[n:]
		return s
	}
	off := len(d.s) - len(d.b)
	d.b = d.b[n:]
	return d.s[off : off+int(n)]
}

// rawString is string without the copy: the bytes alias the input.
func (d *decoder) rawString() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("string exceeds value")
		return nil
	}
	b := d.b[:n]
	d.b = d.b[n:]
	return b
}

func (d *decoder) skipString() { d.rawString() }

func (d *decoder) skipMap() {
	n := d.count(2)
	for i := 0; i < n && d.err == nil; i++ {
		d.skipString()
		d.skipString()
	}
}

func (d *decoder) stringMap() map[string]string {
	n := d.count(2)
	if n == 0 {
		return nil
	}
	m := make(map[string]string, n)
	for i := 0; i < n && d.err == nil; i++ {
		k := d.string()
		m[k] = d.string()
	}
	return m
}
