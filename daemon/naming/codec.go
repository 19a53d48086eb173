package naming

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
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
	buf := make([]byte, 0, 32+len(s.Instances)*48)
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
func decode(b []byte) (*Service, error) {
	d := decoder{b: b}
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
	s.Instances = make(map[string]*Instance, n)
	for i := 0; i < n && d.err == nil; i++ {
		in := &Instance{IP: d.string()}
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
		if d.err != nil {
			break
		}
		// A duplicate key is merged rather than rejected; re-encoding makes it canonical.
		k := in.Key()
		if cur, ok := s.Instances[k]; ok && !instanceWins(in, cur) {
			continue
		}
		s.Instances[k] = in
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return nil, d.err
	}
	normalize(s)
	return s, nil
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
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
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
