package distro

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The snapshot stream: header('S') and the sender's origin (horizon[8]
// lineageCount { id[8] }), then frames, each one tag byte and its body, read
// one at a time so a snapshot of any size streams in bounded memory:
//
//	frameDatum: datum (as in a batch)
//	frameEnd:   count of datums sent — a stream without it was truncated
//	frameError: message — the sender failed mid-stream and says why
//
// Nothing may follow frameEnd or frameError.
const (
	frameDatum byte = 'd'
	frameEnd   byte = 'e'
	frameError byte = 'x'

	maxErrorLen = 1 << 10
	// readChunk bounds each allocation while reading a long value, so a
	// stream that announces a large value and stops costs little.
	readChunk = 64 << 10
)

// ErrSnapshotFailed is wrapped when the sender reported a failure mid-stream.
var ErrSnapshotFailed = errors.New("distro: peer failed while streaming its snapshot")

// snapshotWriter writes the snapshot stream to w. It does not flush w.
type snapshotWriter struct {
	w       io.Writer
	origin  Origin
	n       uint64
	scratch []byte
	started bool
}

// newSnapshotWriter streams a snapshot of a store of the given origin.
func newSnapshotWriter(w io.Writer, origin Origin) *snapshotWriter {
	return &snapshotWriter{w: w, origin: origin}
}

// Start writes the stream header; Write, End and Fail call it when needed.
func (s *snapshotWriter) Start() error {
	if s.started {
		return nil
	}
	s.started = true
	hdr := binary.LittleEndian.AppendUint64(appendHeader(nil, kindSnapshot), s.origin.Horizon)
	_, err := s.w.Write(appendLineage(hdr, s.origin.Lineage))
	return err
}

func (s *snapshotWriter) write(b []byte) error {
	if err := s.Start(); err != nil {
		return err
	}
	_, err := s.w.Write(b)
	return err
}

// Write sends one datum. A datum beyond the wire limits is refused with
// ErrTooLarge and nothing is written.
func (s *snapshotWriter) Write(d Datum) error {
	if err := checkDatum(d); err != nil {
		return err
	}
	s.scratch = appendDatum(append(s.scratch[:0], frameDatum), d)
	if err := s.write(s.scratch); err != nil {
		return err
	}
	s.n++
	if cap(s.scratch) > readChunk { // don't pin one large value's buffer
		s.scratch = nil
	}
	return nil
}

// End marks the stream complete.
func (s *snapshotWriter) End() error {
	return s.write(binary.AppendUvarint([]byte{frameEnd}, s.n))
}

// Fail ends the stream with the sender's error so the reader can say why.
func (s *snapshotWriter) Fail(cause error) error {
	msg := cause.Error()
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	return s.write(appendString([]byte{frameError}, msg))
}

// snapshotReader reads the snapshot stream incrementally.
type snapshotReader struct {
	br      *bufio.Reader
	origin  Origin // the sender's, read with the header
	n       uint64
	started bool
	done    bool
}

func newSnapshotReader(r io.Reader) *snapshotReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	return &snapshotReader{br: br}
}

// truncated turns an early end of input into a clear error; other read
// errors (a broken connection, a deadline) pass through.
func (s *snapshotReader) truncated(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: snapshot truncated in %s after %d datums: %w", ErrMalformed, what, s.n, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("read snapshot (%s, after %d datums): %w", what, s.n, err)
}

func (s *snapshotReader) uvarint(what string) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := s.br.ReadByte()
		if err != nil {
			return 0, s.truncated(err, what)
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			break
		}
		if b < 0x80 {
			return x | uint64(b)<<(7*i), nil
		}
		x |= uint64(b&0x7f) << (7 * i)
	}
	return 0, malformed("%s overflows 64 bits", what)
}

// bytes reads n bytes whose length the caller already checked against a
// limit, growing the buffer as bytes arrive rather than trusting n up front.
func (s *snapshotReader) bytes(n uint64, what string) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	buf := make([]byte, 0, min(n, readChunk))
	for uint64(len(buf)) < n {
		chunk := int(min(n-uint64(len(buf)), readChunk))
		buf = slices.Grow(buf, chunk)
		m, err := io.ReadFull(s.br, buf[len(buf):len(buf)+chunk])
		buf = buf[:len(buf)+m]
		if err != nil {
			return nil, s.truncated(err, what)
		}
	}
	return buf, nil
}

// Next returns the next datum, io.EOF after a complete stream, or an error
// for a truncated, malformed or failed one.
func (s *snapshotReader) Next() (Datum, error) {
	if s.done {
		return Datum{}, io.EOF
	}
	if !s.started {
		var hdr [codecHeaderBytes + 8]byte
		if _, err := io.ReadFull(s.br, hdr[:]); err != nil {
			return Datum{}, s.truncated(err, "header")
		}
		if _, err := newDecoder(hdr[:codecHeaderBytes], kindSnapshot); err != nil {
			return Datum{}, err
		}
		s.origin.Horizon = binary.LittleEndian.Uint64(hdr[codecHeaderBytes:])
		if err := s.lineage(); err != nil {
			return Datum{}, err
		}
		s.started = true
	}
	tag, err := s.br.ReadByte()
	if err != nil {
		return Datum{}, s.truncated(err, "frame tag")
	}
	switch tag {
	case frameDatum:
		d, err := s.datum()
		if err != nil {
			return Datum{}, fmt.Errorf("snapshot datum %d: %w", s.n, err)
		}
		s.n++
		return d, nil
	case frameEnd:
		count, err := s.uvarint("end marker")
		if err != nil {
			return Datum{}, err
		}
		if count != s.n {
			return Datum{}, malformed("snapshot end marker counts %d datums, received %d", count, s.n)
		}
		if err := s.eof(); err != nil {
			return Datum{}, err
		}
		s.done = true
		return Datum{}, io.EOF
	case frameError:
		n, err := s.uvarint("error length")
		if err != nil {
			return Datum{}, err
		}
		if n > maxErrorLen {
			return Datum{}, malformed("error message of %d bytes (max %d)", n, maxErrorLen)
		}
		msg, err := s.bytes(n, "error message")
		if err != nil {
			return Datum{}, err
		}
		return Datum{}, fmt.Errorf("%w after %d datums: %q", ErrSnapshotFailed, s.n, msg)
	default:
		return Datum{}, malformed("unknown snapshot frame 0x%02x after %d datums", tag, s.n)
	}
}

// lineage reads the origin's lineage from the header.
func (s *snapshotReader) lineage() error {
	n, err := s.uvarint("lineage count")
	if err != nil {
		return err
	}
	if n > maxLineage {
		return malformed("lineage of %d ids (max %d)", n, maxLineage)
	}
	b, err := s.bytes(8*n, "lineage")
	if err != nil {
		return err
	}
	s.origin.Lineage, err = decodeLineageIDs(b)
	return err
}

func (s *snapshotReader) eof() error {
	switch _, err := s.br.ReadByte(); {
	case err == nil:
		return malformed("bytes after the snapshot end marker")
	case errors.Is(err, io.EOF):
		return nil
	default:
		return fmt.Errorf("read snapshot end: %w", err)
	}
}

func (s *snapshotReader) datum() (Datum, error) {
	klen, err := s.uvarint("key length")
	if err != nil {
		return Datum{}, err
	}
	if klen == 0 || klen > MaxKeyLen {
		return Datum{}, malformed("key length %d (want 1..%d)", klen, MaxKeyLen)
	}
	key, err := s.bytes(klen, "key")
	if err != nil {
		return Datum{}, err
	}
	vlen, err := s.uvarint("value length")
	if err != nil {
		return Datum{}, err
	}
	if vlen > MaxValueLen {
		return Datum{}, malformed("value of key %q is %d bytes (max %d)", key, vlen, MaxValueLen)
	}
	value, err := s.bytes(vlen, "value")
	if err != nil {
		return Datum{}, err
	}
	version, err := s.uvarint("version")
	if err != nil {
		return Datum{}, err
	}
	flags, err := s.br.ReadByte()
	if err != nil {
		return Datum{}, s.truncated(err, "flags")
	}
	if flags&^flagDeleted != 0 {
		return Datum{}, malformed("unknown datum flags 0x%02x", flags)
	}
	return Datum{Key: string(key), Value: value, Version: version, Deleted: flags&flagDeleted != 0}, nil
}
