package membership

import (
	"errors"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	in := meta{Protocol: ProtocolVersion, Partitions: 1024, HTTPAddr: "10.0.0.1:8848", Ready: true, Leaving: true,
		Incarnation: newIncarnation()}
	b := in.encode()
	if len(b) > memberlist.MetaMaxSize {
		t.Fatalf("metadata is %d bytes", len(b))
	}
	out, err := decodeMeta(b)
	if err != nil || out != in {
		t.Fatalf("decodeMeta(%s) = %+v, %v; want %+v", b, out, err, in)
	}
}

func TestMetaCompatible(t *testing.T) {
	ok := meta{Protocol: ProtocolVersion, Partitions: 64, Incarnation: "0123456789abcdef"}
	if err := ok.compatible(64); err != nil {
		t.Errorf("same settings refused: %v", err)
	}
	for _, md := range []meta{
		{Protocol: ProtocolVersion + 1, Partitions: 64, Incarnation: ok.Incarnation},
		{Protocol: ProtocolVersion, Partitions: 65, Incarnation: ok.Incarnation},
		{Protocol: ProtocolVersion, Partitions: 64}, // no incarnation id: it could not be told from another process of its name
	} {
		if err := md.compatible(64); !errors.Is(err, ErrIncompatible) {
			t.Errorf("%+v.compatible(64) = %v, want ErrIncompatible", md, err)
		}
	}
}

func TestDecodeMetaRejects(t *testing.T) {
	for _, b := range []string{"", "{", `{"p":1}`, `{"v":0,"p":1}`, `[]`, "\x00\x01"} {
		if _, err := decodeMeta([]byte(b)); err == nil {
			t.Errorf("decodeMeta(%q) accepted", b)
		}
	}
}

// FuzzDecodeMeta: metadata comes from the network; decoding never panics and
// whatever decodes re-encodes to something that decodes the same.
func FuzzDecodeMeta(f *testing.F) {
	f.Add([]byte(`{"v":1,"p":1024,"h":"10.0.0.1:8848","r":true}`))
	f.Add([]byte(`{"v":1,"p":-3,"h":"","l":true}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := decodeMeta(b)
		if err != nil {
			return
		}
		again, err := decodeMeta(md.encode())
		if err != nil || again != md {
			t.Fatalf("re-decoding %+v: %+v, %v", md, again, err)
		}
	})
}
