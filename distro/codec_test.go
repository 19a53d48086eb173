package distro

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func codecSampleBatch() []Datum {
	return []Datum{
		{Key: "public##DEFAULT_GROUP@@svc-a", Value: []byte(`{"hosts":[]}`), Version: 1},
		{Key: "k", Version: 1<<63 + 7, Deleted: true},
		{Key: strings.Repeat("x", MaxKeyLen), Value: bytes.Repeat([]byte{0xAB}, 300), Version: 42},
	}
}

func codecEqualDatums(t testing.TB, got, want []Datum) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d datums, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Key != w.Key || g.Version != w.Version || g.Deleted != w.Deleted || !bytes.Equal(g.Value, w.Value) {
			t.Fatalf("datum %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestCodecBatchRoundTrip(t *testing.T) {
	want := codecSampleBatch()
	want = append(want, Datum{Key: "big", Value: bytes.Repeat([]byte{1}, MaxValueLen), Version: 3})
	b, err := encodeBatch(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	codecEqualDatums(t, got, want)

	// Decoded values must not alias the input buffer.
	for i := range b {
		b[i] = 0
	}
	codecEqualDatums(t, got, want)

	empty, err := encodeBatch(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeBatch(empty); err != nil || len(got) != 0 {
		t.Fatalf("empty batch: %v %v", got, err)
	}
}

func TestCodecKeysRoundTrip(t *testing.T) {
	want := []string{"a", "public##g@@s", strings.Repeat("k", MaxKeyLen)}
	b, err := encodeKeys(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeKeys(b)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestCodecChecksumRoundTrip(t *testing.T) {
	want := ChecksumRequest{
		Source:      "node-1",
		RingVersion: 0xDEADBEEFCAFEBABE,
		Horizon:     1<<63 + 5,
		Lineage:     Lineage{2, 1 << 62},
		Digests:     map[int]uint64{0: 1, 7: 2, 1023: 1 << 63},
		Partitions:  []int{3, 1, 1023},
		Keys:        map[string]uint64{"a": 9, "b": 0},
	}
	b, err := encodeChecksumRequest(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeChecksumRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != want.Source || got.RingVersion != want.RingVersion || got.Horizon != want.Horizon ||
		!got.Lineage.Equal(want.Lineage) || len(got.Digests) != 3 ||
		len(got.Keys) != 2 || len(got.Partitions) != 3 {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for p, d := range want.Digests {
		if got.Digests[p] != d {
			t.Fatalf("digest %d: got %d want %d", p, got.Digests[p], d)
		}
	}
	for k, s := range want.Keys {
		if got.Keys[k] != s {
			t.Fatalf("key %s: got %d want %d", k, got.Keys[k], s)
		}
	}
	for i, p := range want.Partitions {
		if got.Partitions[i] != p {
			t.Fatalf("partitions: got %v want %v", got.Partitions, want.Partitions)
		}
	}
	b2, _ := encodeChecksumRequest(want)
	if !bytes.Equal(b, b2) {
		t.Fatal("equal requests must encode equally (sorted maps)")
	}

	resp := ChecksumResponse{Mismatched: []int{5, 0, 1000}, Lineage: Lineage{9}}
	rb, err := encodeChecksumResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	gotResp, err := decodeChecksumResponse(rb)
	if err != nil || len(gotResp.Mismatched) != 3 || gotResp.Mismatched[2] != 1000 || !gotResp.Lineage.Equal(resp.Lineage) {
		t.Fatalf("response: %+v %v", gotResp, err)
	}
}

// A steady-state verify message is one digest per owned partition; it must
// stay near 10 bytes per partition whatever the key count.
func TestCodecChecksumDigestsAreSmall(t *testing.T) {
	req := ChecksumRequest{Source: "n1", RingVersion: 1, Digests: map[int]uint64{}}
	for p := range 1024 {
		req.Digests[p] = uint64(p) * 0x9E3779B97F4A7C15
	}
	b, err := encodeChecksumRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if max := 1024*11 + 32; len(b) > max {
		t.Fatalf("1024 digests encode to %d bytes, want <= %d", len(b), max)
	}
	t.Logf("1024 partition digests: %d bytes (%.1f per partition)", len(b), float64(len(b))/1024)
}

func TestCodecEncodeRefusesBeyondLimits(t *testing.T) {
	cases := map[string]func() error{
		"empty key": func() error { _, err := encodeBatch([]Datum{{Key: ""}}); return err },
		"long key":  func() error { _, err := encodeBatch([]Datum{{Key: strings.Repeat("k", MaxKeyLen+1)}}); return err },
		"big value": func() error {
			_, err := encodeBatch([]Datum{{Key: "k", Value: make([]byte, MaxValueLen+1)}})
			return err
		},
		"query key": func() error { _, err := encodeKeys([]string{""}); return err },
		"partition": func() error { _, err := encodeChecksumResponse(ChecksumResponse{Mismatched: []int{-1}}); return err },
		"digest part": func() error {
			_, err := encodeChecksumRequest(ChecksumRequest{Digests: map[int]uint64{MaxPartition: 1}})
			return err
		},
	}
	for name, fn := range cases {
		if err := fn(); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: got %v, want ErrTooLarge", name, err)
		}
	}
}

func codecMsg(kind byte, parts ...[]byte) []byte {
	b := appendHeader(nil, kind)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func TestCodecDecodeRejectsMalformed(t *testing.T) {
	valid, err := encodeBatch(codecSampleBatch())
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":             nil,
		"short header":      {codecMagic, codecVersion},
		"wrong magic":       append([]byte{0x00}, valid[1:]...),
		"wrong version":     append([]byte{codecMagic, 99}, valid[2:]...),
		"wrong kind":        codecMsg(kindKeys, uv(0)),
		"trailing garbage":  append(append([]byte(nil), valid...), 0),
		"huge count":        codecMsg(kindBatch, uv(1<<60)),
		"count over limit":  codecMsg(kindBatch, uv(MaxBatchLen+1)),
		"count > bytes":     codecMsg(kindBatch, uv(1000), []byte("kk")),
		"empty key":         codecMsg(kindBatch, uv(1), uv(0), uv(0), uv(1), []byte{0}, []byte{0}),
		"key too long":      codecMsg(kindBatch, uv(1), uv(MaxKeyLen+1), make([]byte, MaxKeyLen+1), uv(0), uv(1), []byte{0}),
		"key past end":      codecMsg(kindBatch, uv(1), uv(200), []byte("abcd")),
		"value too long":    codecMsg(kindBatch, uv(1), uv(1), []byte("k"), uv(MaxValueLen+1), make([]byte, 8)),
		"value past end":    codecMsg(kindBatch, uv(1), uv(1), []byte("k"), uv(1<<20), []byte("abcd")),
		"unknown flags":     codecMsg(kindBatch, uv(1), uv(1), []byte("k"), uv(0), uv(1), []byte{2}),
		"varint overflow":   codecMsg(kindBatch, bytes.Repeat([]byte{0xff}, 11)),
		"missing flags":     codecMsg(kindBatch, uv(1), uv(1), []byte("k"), uv(0), uv(1)),
		"no count":          codecMsg(kindBatch),
		"truncated version": codecMsg(kindBatch, uv(1), uv(1), []byte("k"), uv(0), []byte{0x80}),
	}
	for name, b := range cases {
		if _, err := decodeBatch(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	// Every strict prefix of a valid message is malformed.
	for n := range len(valid) {
		if _, err := decodeBatch(valid[:n]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d/%d bytes: got %v, want ErrMalformed", n, len(valid), err)
		}
	}
}

func TestCodecDecodeChecksumRejectsMalformed(t *testing.T) {
	src := append(uv(2), "n1"...)
	ring := make([]byte, 17) // ring version, horizon and an empty lineage
	id := func(v byte) []byte { return []byte{v, 0, 0, 0, 0, 0, 0, 0} }
	cases := map[string][]byte{
		"lineage unordered": codecMsg(kindChecksum, src, make([]byte, 16), uv(2), id(5), id(3), uv(0), uv(0), uv(0)),
		"lineage repeated":  codecMsg(kindChecksum, src, make([]byte, 16), uv(2), id(5), id(5), uv(0), uv(0), uv(0)),
		"lineage too long":  codecMsg(kindChecksum, src, make([]byte, 16), uv(maxLineage+1), make([]byte, 8*(maxLineage+1)), uv(0), uv(0), uv(0)),
		"wrong kind":        codecMsg(kindBatch),
		"truncated ring":    codecMsg(kindChecksum, src, []byte{1, 2}),
		"duplicate digest":  codecMsg(kindChecksum, src, ring, uv(2), uv(5), make([]byte, 8), uv(5), make([]byte, 8), uv(0), uv(0)),
		"partition too big": codecMsg(kindChecksum, src, ring, uv(1), uv(MaxPartition), make([]byte, 8), uv(0), uv(0)),
		"digests > bytes":   codecMsg(kindChecksum, src, ring, uv(100), uv(5), make([]byte, 8)),
		"duplicate key":     codecMsg(kindChecksum, src, ring, uv(0), uv(0), uv(2), uv(1), []byte("a"), make([]byte, 8), uv(1), []byte("a"), make([]byte, 8)),
		"truncated sum":     codecMsg(kindChecksum, src, ring, uv(0), uv(0), uv(1), uv(1), []byte("a"), make([]byte, 7)),
		"source too long":   codecMsg(kindChecksum, uv(maxSourceLen+1), make([]byte, maxSourceLen+1), ring, uv(0), uv(0), uv(0)),
		"trailing":          codecMsg(kindChecksum, src, ring, uv(0), uv(0), uv(0), []byte{0}),
	}
	for name, b := range cases {
		if _, err := decodeChecksumRequest(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
	if _, err := decodeChecksumRequest(codecMsg(kindChecksum, src, ring, uv(0), uv(0), uv(0))); err != nil {
		t.Fatalf("minimal request: %v", err)
	}
	for name, b := range map[string][]byte{
		"partition too big": codecMsg(kindMismatch, uv(1), uv(MaxPartition)),
		"count > bytes":     codecMsg(kindMismatch, uv(10), uv(1)),
		"trailing":          codecMsg(kindMismatch, uv(0), uv(0), []byte{1}),
		"lineage truncated": codecMsg(kindMismatch, uv(0), uv(1), []byte{1, 2}),
	} {
		if _, err := decodeChecksumResponse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("response %s: got %v, want ErrMalformed", name, err)
		}
	}
	for name, b := range map[string][]byte{
		"empty key":  codecMsg(kindKeys, uv(1), uv(0)),
		"long key":   codecMsg(kindKeys, uv(1), uv(MaxKeyLen+1), make([]byte, MaxKeyLen+1)),
		"count big":  codecMsg(kindKeys, uv(MaxBatchLen+1)),
		"past end":   codecMsg(kindKeys, uv(1), uv(5), []byte("ab")),
		"trailing":   codecMsg(kindKeys, uv(0), []byte{0}),
		"wrong kind": codecMsg(kindBatch, uv(0)),
	} {
		if _, err := decodeKeys(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("keys %s: got %v, want ErrMalformed", name, err)
		}
	}
}

func codecSnapshotBytes(t testing.TB, batch []Datum) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newSnapshotWriter(&buf, Origin{Horizon: 1, Lineage: Lineage{7}})
	for _, d := range batch {
		if err := w.Write(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.End(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func codecReadSnapshot(r io.Reader) ([]Datum, error) {
	sr := newSnapshotReader(r)
	var out []Datum
	for {
		d, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
}

func TestCodecSnapshotRoundTrip(t *testing.T) {
	want := append(codecSampleBatch(), Datum{Key: "big", Value: bytes.Repeat([]byte{7}, 3*readChunk+5), Version: 9})
	b := codecSnapshotBytes(t, want)
	got, err := codecReadSnapshot(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	codecEqualDatums(t, got, want)

	// Incremental reads: one byte at a time works the same.
	got, err = codecReadSnapshot(iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	codecEqualDatums(t, got, want)

	empty := codecSnapshotBytes(t, nil)
	if got, err := codecReadSnapshot(bytes.NewReader(empty)); err != nil || len(got) != 0 {
		t.Fatalf("empty snapshot: %v %v", got, err)
	}
}

func TestCodecSnapshotDetectsTruncation(t *testing.T) {
	b := codecSnapshotBytes(t, codecSampleBatch())
	for n := range len(b) {
		if _, err := codecReadSnapshot(bytes.NewReader(b[:n])); err == nil {
			t.Fatalf("prefix of %d/%d bytes read without error", n, len(b))
		} else if !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("prefix of %d bytes: unexpected error kind %v", n, err)
		}
	}
}

func TestCodecSnapshotRejectsMalformed(t *testing.T) {
	valid := codecSnapshotBytes(t, codecSampleBatch()[:1])
	hdr := appendHeader(nil, kindSnapshot)
	cases := map[string][]byte{
		"trailing after end": append(append([]byte(nil), valid...), 0),
		"wrong magic":        append([]byte{1}, valid[1:]...),
		"wrong kind":         append(appendHeader(nil, kindBatch), valid[3:]...),
		"end count wrong":    append(append([]byte(nil), hdr...), frameEnd, 5),
		"unknown frame":      append(append([]byte(nil), hdr...), 'z'),
		"huge key":           append(append([]byte(nil), hdr...), append([]byte{frameDatum}, uv(1<<40)...)...),
		"huge value":         append(append([]byte(nil), hdr...), append(append([]byte{frameDatum}, uv(1)...), append([]byte("k"), uv(MaxValueLen+1)...)...)...),
		"huge error":         append(append([]byte(nil), hdr...), append([]byte{frameError}, uv(1<<30)...)...),
		"varint overflow":    append(append([]byte(nil), hdr...), append([]byte{frameDatum}, bytes.Repeat([]byte{0xff}, 10)...)...),
	}
	for name, b := range cases {
		if _, err := codecReadSnapshot(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}

	var buf bytes.Buffer
	w := newSnapshotWriter(&buf, Origin{Horizon: 1, Lineage: Lineage{7}})
	_ = w.Write(Datum{Key: "a", Version: 1})
	_ = w.Fail(errors.New("store exploded"))
	got, err := codecReadSnapshot(&buf)
	if !errors.Is(err, ErrSnapshotFailed) || !strings.Contains(err.Error(), "store exploded") || len(got) != 1 {
		t.Fatalf("failed stream: got %d datums, err %v", len(got), err)
	}
}

// A stream that announces a large value and then stops must not cost the
// announced size up front.
func TestCodecSnapshotLargeAnnouncedValueAllocatesLittle(t *testing.T) {
	b := append(appendHeader(nil, kindSnapshot), frameDatum)
	b = append(b, uv(1)...)
	b = append(b, 'k')
	b = append(b, uv(MaxValueLen)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 20 {
		if _, err := codecReadSnapshot(bytes.NewReader(b)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("got %v, want truncation", err)
		}
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / 20; per > 1<<20 {
		t.Fatalf("a truncated 4 MiB announcement allocated %d bytes per read", per)
	}
}
