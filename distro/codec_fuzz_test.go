package distro

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// The fuzzers feed network bytes to every decoder: none may panic, and
// whatever decodes must re-encode and decode to the same value.

func FuzzDecodeBatch(f *testing.F) {
	for _, batch := range [][]Datum{nil, codecSampleBatch(), {{Key: "k", Value: []byte("v"), Version: 1}}} {
		b, err := encodeBatch(batch)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{codecMagic, codecVersion, kindBatch, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, err := decodeBatch(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		re, err := encodeBatch(batch)
		if err != nil {
			t.Fatalf("decoded batch does not re-encode: %v", err)
		}
		again, err := decodeBatch(re)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		codecEqualDatums(t, again, batch)
		if len(re) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(re))
		}
	})
}

func FuzzDecodeKeys(f *testing.F) {
	for _, keys := range [][]string{nil, {"a"}, {"public##DEFAULT_GROUP@@svc", "b"}} {
		b, err := encodeKeys(keys)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{codecMagic, codecVersion, kindKeys, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := decodeKeys(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		re, err := encodeKeys(keys)
		if err != nil {
			t.Fatalf("decoded keys do not re-encode: %v", err)
		}
		again, err := decodeKeys(re)
		if err != nil || len(again) != len(keys) {
			t.Fatalf("re-encoded keys: %v %v", again, err)
		}
		for i := range keys {
			if again[i] != keys[i] {
				t.Fatalf("key %d: %q != %q", i, again[i], keys[i])
			}
		}
	})
}

func FuzzDecodeChecksum(f *testing.F) {
	reqs := []ChecksumRequest{
		{},
		{Source: "n1", RingVersion: 7, Digests: map[int]uint64{0: 1, 1023: 2}},
		{Source: "n2", Partitions: []int{1, 2}, Keys: map[string]uint64{"a": 1, "b": 2}},
		{Source: "n3", Horizon: 5, Lineage: Lineage{1, 7}, Digests: map[int]uint64{3: 4}},
	}
	for _, r := range reqs {
		b, err := encodeChecksumRequest(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	resp, _ := encodeChecksumResponse(ChecksumResponse{Mismatched: []int{1, 5, 1000}, Lineage: Lineage{3}})
	f.Add(resp)
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeChecksumResponse(b); err == nil {
			re, err := encodeChecksumResponse(r)
			if err != nil {
				t.Fatalf("decoded response does not re-encode: %v", err)
			}
			again, err := decodeChecksumResponse(re)
			if err != nil || len(again.Mismatched) != len(r.Mismatched) {
				t.Fatalf("re-encoded response: %+v %v", again, err)
			}
		} else if !errors.Is(err, ErrMalformed) {
			t.Fatalf("response error not wrapping ErrMalformed: %v", err)
		}

		req, err := decodeChecksumRequest(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		re, err := encodeChecksumRequest(req)
		if err != nil {
			t.Fatalf("decoded request does not re-encode: %v", err)
		}
		again, err := decodeChecksumRequest(re)
		if err != nil {
			t.Fatalf("re-encoded request does not decode: %v", err)
		}
		if again.Source != req.Source || again.RingVersion != req.RingVersion ||
			len(again.Digests) != len(req.Digests) || len(again.Keys) != len(req.Keys) ||
			len(again.Partitions) != len(req.Partitions) {
			t.Fatalf("round trip changed the request: %+v -> %+v", req, again)
		}
		for p, d := range req.Digests {
			if again.Digests[p] != d {
				t.Fatalf("digest of partition %d changed", p)
			}
		}
		for k, s := range req.Keys {
			if again.Keys[k] != s {
				t.Fatalf("checksum of key %q changed", k)
			}
		}
	})
}

func FuzzSnapshotReader(f *testing.F) {
	f.Add(codecSnapshotBytes(f, nil))
	f.Add(codecSnapshotBytes(f, codecSampleBatch()))
	var failed bytes.Buffer
	w := newSnapshotWriter(&failed, Origin{Horizon: 1, Lineage: Lineage{7}})
	_ = w.Write(Datum{Key: "a", Version: 1})
	_ = w.Fail(errors.New("boom"))
	f.Add(failed.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := codecReadSnapshot(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSnapshotFailed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := codecReadSnapshot(bytes.NewReader(codecSnapshotBytes(t, got)))
		if err != nil {
			t.Fatalf("re-encoded snapshot does not read: %v", err)
		}
		codecEqualDatums(t, again, got)
	})
}
