package distro

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// The peer wire format. Every message starts with a three-byte header:
// codecMagic, codecVersion and a kind byte naming the message. Fields are
// length-prefixed with uvarints; digests and checksums are 8 bytes little
// endian. Decoders check every length against the bytes that remain and
// against the limits below before they allocate, copy what they keep (a
// decoded datum never aliases the input) and reject trailing bytes.
//
//	batch:    header('B') count { datum }
//	datum:    keyLen key valueLen value version flags(bit0 = deleted)
//	keys:     header('K') count { keyLen key }
//	checksum: header('C') sourceLen source ringVersion[8] horizon[8] lineage
//	          digestCount { partition digest[8] }   (ascending partitions)
//	          partitionCount { partition }
//	          keyCount { keyLen key checksum[8] }    (ascending keys)
//	mismatch: header('R') count { partition } lineage
//	lineage:  count { id[8] }                       (ascending, unique)
//
// The snapshot stream (codec_stream.go) uses the same datum encoding.
const (
	codecMagic byte = 0xD7
	// codecVersion 2 added the origin (horizon, lineage) to verify messages and snapshots.
	codecVersion byte = 2

	kindBatch        byte = 'B'
	kindKeys         byte = 'K'
	kindChecksum     byte = 'C'
	kindMismatch     byte = 'R'
	kindSnapshot     byte = 'S'
	codecHeaderBytes      = 3
)

// Wire limits. A datum or key beyond them is refused by both the encoder and
// the decoder, so a peer can never make another allocate more than it sent.
const (
	// MaxKeyLen is the longest key distro replicates.
	MaxKeyLen = 1 << 10
	// MaxValueLen is the largest value distro replicates.
	MaxValueLen = 4 << 20
	// MaxBatchLen caps the datums or keys in one message.
	MaxBatchLen = 1 << 20
	// MaxPartition is one more than the highest partition number on the wire.
	MaxPartition = 1 << 24
	// maxSourceLen bounds the node name in a checksum message.
	maxSourceLen = MaxKeyLen
)

// minimal encoded sizes, used to bound counts by the bytes that remain.
const (
	minDatumBytes     = 5  // keyLen(1) key(1) valueLen(1) version(1) flags(1)
	minKeyBytes       = 2  // keyLen(1) key(1)
	minDigestBytes    = 9  // partition(1) digest(8)
	minPartitionBytes = 1  // partition(1)
	minKeySumBytes    = 10 // keyLen(1) key(1) checksum(8)

	flagDeleted byte = 1
)

var (
	// ErrMalformed is wrapped by every decoding error: the bytes are not a
	// valid message of the expected kind.
	ErrMalformed = errors.New("distro: malformed message")
	// ErrTooLarge is wrapped when a datum, key or message exceeds the wire limits.
	ErrTooLarge = errors.New("distro: exceeds wire limits")
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// checkDatum reports whether d can be put on the wire.
func checkDatum(d Datum) error {
	switch {
	case d.Key == "":
		return fmt.Errorf("%w: empty key", ErrTooLarge)
	case len(d.Key) > MaxKeyLen:
		return fmt.Errorf("%w: key of %d bytes (max %d)", ErrTooLarge, len(d.Key), MaxKeyLen)
	case len(d.Value) > MaxValueLen:
		return fmt.Errorf("%w: value of key %q is %d bytes (max %d)", ErrTooLarge, d.Key, len(d.Value), MaxValueLen)
	}
	return nil
}

func checkKey(k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return fmt.Errorf("%w: key of %d bytes (want 1..%d)", ErrTooLarge, len(k), MaxKeyLen)
	}
	return nil
}

func appendHeader(dst []byte, kind byte) []byte {
	return append(dst, codecMagic, codecVersion, kind)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendDatum encodes d; the caller has checked it with checkDatum.
func appendDatum(dst []byte, d Datum) []byte {
	dst = appendString(dst, d.Key)
	dst = binary.AppendUvarint(dst, uint64(len(d.Value)))
	dst = append(dst, d.Value...)
	dst = binary.AppendUvarint(dst, d.Version)
	var flags byte
	if d.Deleted {
		flags |= flagDeleted
	}
	return append(dst, flags)
}

func datumSize(d Datum) int {
	return 2*binary.MaxVarintLen64 + len(d.Key) + len(d.Value) + binary.MaxVarintLen64 + 1
}

// encodeBatch encodes a push batch or a query answer.
func encodeBatch(batch []Datum) ([]byte, error) {
	if len(batch) > MaxBatchLen {
		return nil, fmt.Errorf("%w: batch of %d datums (max %d)", ErrTooLarge, len(batch), MaxBatchLen)
	}
	size := codecHeaderBytes + binary.MaxVarintLen64
	for _, d := range batch {
		if err := checkDatum(d); err != nil {
			return nil, err
		}
		size += datumSize(d)
	}
	dst := make([]byte, 0, size)
	dst = appendHeader(dst, kindBatch)
	dst = binary.AppendUvarint(dst, uint64(len(batch)))
	for _, d := range batch {
		dst = appendDatum(dst, d)
	}
	return dst, nil
}

// encodeKeys encodes the keys of a query.
func encodeKeys(keys []string) ([]byte, error) {
	if len(keys) > MaxBatchLen {
		return nil, fmt.Errorf("%w: %d keys (max %d)", ErrTooLarge, len(keys), MaxBatchLen)
	}
	size := codecHeaderBytes + binary.MaxVarintLen64
	for _, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		size += binary.MaxVarintLen64 + len(k)
	}
	dst := make([]byte, 0, size)
	dst = appendHeader(dst, kindKeys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = appendString(dst, k)
	}
	return dst, nil
}

// encodeChecksumRequest encodes a verify message. Digests are sent as
// (uvarint partition, 8-byte digest) pairs in ascending partition order and
// key checksums in ascending key order, so equal requests encode equally.
func encodeChecksumRequest(req ChecksumRequest) ([]byte, error) {
	if len(req.Source) > maxSourceLen {
		return nil, fmt.Errorf("%w: source of %d bytes (max %d)", ErrTooLarge, len(req.Source), maxSourceLen)
	}
	if len(req.Digests) > MaxPartition || len(req.Partitions) > MaxPartition || len(req.Keys) > MaxBatchLen {
		return nil, fmt.Errorf("%w: checksum request with %d digests, %d partitions, %d keys",
			ErrTooLarge, len(req.Digests), len(req.Partitions), len(req.Keys))
	}
	parts := make([]int, 0, len(req.Digests))
	for p := range req.Digests {
		if err := checkPartition(p); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	slices.Sort(parts)
	keys := make([]string, 0, len(req.Keys))
	keyBytes := 0
	for k := range req.Keys {
		if err := checkKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
		keyBytes += len(k)
	}
	sort.Strings(keys)
	for _, p := range req.Partitions {
		if err := checkPartition(p); err != nil {
			return nil, err
		}
	}

	if err := checkLineage(req.Lineage); err != nil {
		return nil, err
	}
	size := codecHeaderBytes + binary.MaxVarintLen64 + len(req.Source) + 16 + binary.MaxVarintLen64 + 8*len(req.Lineage) +
		3*binary.MaxVarintLen64 + len(parts)*(4+8) + len(req.Partitions)*4 +
		len(keys)*(2+8) + keyBytes
	dst := make([]byte, 0, size)
	dst = appendHeader(dst, kindChecksum)
	dst = appendString(dst, req.Source)
	dst = binary.LittleEndian.AppendUint64(dst, req.RingVersion)
	dst = binary.LittleEndian.AppendUint64(dst, req.Horizon)
	dst = appendLineage(dst, req.Lineage)
	dst = binary.AppendUvarint(dst, uint64(len(parts)))
	for _, p := range parts {
		dst = binary.AppendUvarint(dst, uint64(p))
		dst = binary.LittleEndian.AppendUint64(dst, req.Digests[p])
	}
	dst = binary.AppendUvarint(dst, uint64(len(req.Partitions)))
	for _, p := range req.Partitions {
		dst = binary.AppendUvarint(dst, uint64(p))
	}
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = appendString(dst, k)
		dst = binary.LittleEndian.AppendUint64(dst, req.Keys[k])
	}
	return dst, nil
}

// encodeChecksumResponse encodes the partitions a receiver found different.
func encodeChecksumResponse(resp ChecksumResponse) ([]byte, error) {
	if len(resp.Mismatched) > MaxPartition {
		return nil, fmt.Errorf("%w: %d mismatched partitions", ErrTooLarge, len(resp.Mismatched))
	}
	if err := checkLineage(resp.Lineage); err != nil {
		return nil, err
	}
	dst := make([]byte, 0, codecHeaderBytes+2*binary.MaxVarintLen64+4*len(resp.Mismatched)+8*len(resp.Lineage))
	dst = appendHeader(dst, kindMismatch)
	dst = binary.AppendUvarint(dst, uint64(len(resp.Mismatched)))
	for _, p := range resp.Mismatched {
		if err := checkPartition(p); err != nil {
			return nil, err
		}
		dst = binary.AppendUvarint(dst, uint64(p))
	}
	return appendLineage(dst, resp.Lineage), nil
}

func checkPartition(p int) error {
	if p < 0 || p >= MaxPartition {
		return fmt.Errorf("%w: partition %d (want 0..%d)", ErrTooLarge, p, MaxPartition-1)
	}
	return nil
}

// decoder reads one message from a byte slice. Every read checks the bytes
// that remain; nothing it returns aliases the input.
type decoder struct {
	b []byte
}

func newDecoder(b []byte, kind byte) (*decoder, error) {
	if len(b) < codecHeaderBytes {
		return nil, malformed("message of %d bytes is shorter than its header", len(b))
	}
	if b[0] != codecMagic {
		return nil, malformed("bad magic byte 0x%02x", b[0])
	}
	if b[1] != codecVersion {
		return nil, malformed("unsupported codec version %d (want %d)", b[1], codecVersion)
	}
	if b[2] != kind {
		return nil, malformed("message kind %q, want %q", b[2], kind)
	}
	return &decoder{b: b[codecHeaderBytes:]}, nil
}

func (d *decoder) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(d.b)
	if n == 0 {
		return 0, malformed("truncated %s", what)
	}
	if n < 0 {
		return 0, malformed("%s overflows 64 bits", what)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if len(d.b) < 8 {
		return 0, malformed("truncated %s", what)
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v, nil
}

// take returns the next n bytes without copying; callers copy what they keep.
func (d *decoder) take(n uint64, what string) ([]byte, error) {
	if n > uint64(len(d.b)) {
		return nil, malformed("%s of %d bytes but only %d remain", what, n, len(d.b))
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v, nil
}

// count reads an element count and checks it against max and against the
// bytes left, given the smallest encoding of one element.
func (d *decoder) count(what string, max, minSize int) (int, error) {
	n, err := d.uvarint(what + " count")
	if err != nil {
		return 0, err
	}
	if n > uint64(max) {
		return 0, malformed("%d %s (max %d)", n, what, max)
	}
	if n*uint64(minSize) > uint64(len(d.b)) {
		return 0, malformed("%d %s cannot fit in %d bytes", n, what, len(d.b))
	}
	return int(n), nil
}

func (d *decoder) key(what string, allowEmpty bool) (string, error) {
	n, err := d.uvarint(what + " length")
	if err != nil {
		return "", err
	}
	if n > MaxKeyLen || (n == 0 && !allowEmpty) {
		return "", malformed("%s length %d (want 1..%d)", what, n, MaxKeyLen)
	}
	b, err := d.take(n, what)
	if err != nil {
		return "", err
	}
	return string(b), nil // string() copies
}

func (d *decoder) partition() (int, error) {
	p, err := d.uvarint("partition")
	if err != nil {
		return 0, err
	}
	if p >= MaxPartition {
		return 0, malformed("partition %d (max %d)", p, MaxPartition-1)
	}
	return int(p), nil
}

func (d *decoder) datum() (Datum, error) {
	key, err := d.key("key", false)
	if err != nil {
		return Datum{}, err
	}
	n, err := d.uvarint("value length")
	if err != nil {
		return Datum{}, err
	}
	if n > MaxValueLen {
		return Datum{}, malformed("value of key %q is %d bytes (max %d)", key, n, MaxValueLen)
	}
	raw, err := d.take(n, "value")
	if err != nil {
		return Datum{}, err
	}
	version, err := d.uvarint("version")
	if err != nil {
		return Datum{}, err
	}
	flags, err := d.take(1, "flags")
	if err != nil {
		return Datum{}, err
	}
	if flags[0]&^flagDeleted != 0 {
		return Datum{}, malformed("unknown datum flags 0x%02x", flags[0])
	}
	dt := Datum{Key: key, Version: version, Deleted: flags[0]&flagDeleted != 0}
	if len(raw) > 0 {
		dt.Value = append([]byte(nil), raw...)
	}
	return dt, nil
}

func (d *decoder) end() error {
	if len(d.b) != 0 {
		return malformed("%d trailing bytes", len(d.b))
	}
	return nil
}

// decodeBatch decodes a push batch or a query answer.
func decodeBatch(b []byte) ([]Datum, error) {
	d, err := newDecoder(b, kindBatch)
	if err != nil {
		return nil, err
	}
	n, err := d.count("datums", MaxBatchLen, minDatumBytes)
	if err != nil {
		return nil, err
	}
	batch := make([]Datum, 0, n)
	for range n {
		dt, err := d.datum()
		if err != nil {
			return nil, fmt.Errorf("datum %d: %w", len(batch), err)
		}
		batch = append(batch, dt)
	}
	return batch, d.end()
}

// decodeKeys decodes the keys of a query.
func decodeKeys(b []byte) ([]string, error) {
	d, err := newDecoder(b, kindKeys)
	if err != nil {
		return nil, err
	}
	n, err := d.count("keys", MaxBatchLen, minKeyBytes)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, n)
	for range n {
		k, err := d.key("key", false)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, d.end()
}

// decodeChecksumRequest decodes a verify message. Duplicate partitions or
// keys are malformed: an encoder never produces them.
func decodeChecksumRequest(b []byte) (ChecksumRequest, error) {
	var req ChecksumRequest
	d, err := newDecoder(b, kindChecksum)
	if err != nil {
		return req, err
	}
	if req.Source, err = d.key("source", true); err != nil {
		return req, err
	}
	if req.RingVersion, err = d.u64("ring version"); err != nil {
		return req, err
	}
	if req.Horizon, err = d.u64("horizon"); err != nil {
		return req, err
	}
	if req.Lineage, err = d.lineage(); err != nil {
		return req, err
	}

	n, err := d.count("digests", MaxPartition, minDigestBytes)
	if err != nil {
		return req, err
	}
	if n > 0 {
		req.Digests = make(map[int]uint64, n)
	}
	for range n {
		p, err := d.partition()
		if err != nil {
			return req, err
		}
		sum, err := d.u64("digest")
		if err != nil {
			return req, err
		}
		if _, dup := req.Digests[p]; dup {
			return req, malformed("duplicate digest for partition %d", p)
		}
		req.Digests[p] = sum
	}

	if n, err = d.count("partitions", MaxPartition, minPartitionBytes); err != nil {
		return req, err
	}
	if n > 0 {
		req.Partitions = make([]int, 0, n)
	}
	for range n {
		p, err := d.partition()
		if err != nil {
			return req, err
		}
		req.Partitions = append(req.Partitions, p)
	}

	if n, err = d.count("key checksums", MaxBatchLen, minKeySumBytes); err != nil {
		return req, err
	}
	if n > 0 {
		req.Keys = make(map[string]uint64, n)
	}
	for range n {
		k, err := d.key("key", false)
		if err != nil {
			return req, err
		}
		sum, err := d.u64("checksum")
		if err != nil {
			return req, err
		}
		if _, dup := req.Keys[k]; dup {
			return req, malformed("duplicate checksum for key %q", k)
		}
		req.Keys[k] = sum
	}
	return req, d.end()
}

// decodeChecksumResponse decodes the partitions a receiver found different.
func decodeChecksumResponse(b []byte) (ChecksumResponse, error) {
	var resp ChecksumResponse
	d, err := newDecoder(b, kindMismatch)
	if err != nil {
		return resp, err
	}
	n, err := d.count("partitions", MaxPartition, minPartitionBytes)
	if err != nil {
		return resp, err
	}
	if n > 0 {
		resp.Mismatched = make([]int, 0, n)
	}
	for range n {
		p, err := d.partition()
		if err != nil {
			return resp, err
		}
		resp.Mismatched = append(resp.Mismatched, p)
	}
	if resp.Lineage, err = d.lineage(); err != nil {
		return resp, err
	}
	return resp, d.end()
}

// checkLineage refuses a lineage the decoder would refuse.
func checkLineage(l Lineage) error {
	if len(l) > maxLineage {
		return fmt.Errorf("%w: lineage of %d ids (max %d)", ErrTooLarge, len(l), maxLineage)
	}
	return nil
}

// appendLineage appends count { id[8] }.
func appendLineage(dst []byte, l Lineage) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(l)))
	for _, id := range l {
		dst = binary.LittleEndian.AppendUint64(dst, id)
	}
	return dst
}

// lineage decodes count { id[8] }.
func (d *decoder) lineage() (Lineage, error) {
	n, err := d.count("lineage ids", maxLineage, 8)
	if err != nil {
		return nil, err
	}
	b, err := d.take(uint64(8*n), "lineage")
	if err != nil {
		return nil, err
	}
	return decodeLineageIDs(b)
}

// decodeLineageIDs reads ids of 8 bytes each; they must ascend strictly, as
// every encoder sends them, so equal lineages compare equal.
func decodeLineageIDs(b []byte) (Lineage, error) {
	if len(b) == 0 {
		return nil, nil
	}
	l := make(Lineage, len(b)/8)
	for i := range l {
		l[i] = binary.LittleEndian.Uint64(b[8*i:])
		if i > 0 && l[i] <= l[i-1] {
			return nil, malformed("lineage ids not ascending")
		}
	}
	return l, nil
}
