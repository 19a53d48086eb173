package distro

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/valyala/fasthttp"
)

// htBackend is a fake engine behind the endpoints: a newer-wins map that
// records every call, so a test can assert that nothing was applied.
type htBackend struct {
	mu        sync.Mutex
	data      map[string]Datum
	pushes    int
	queries   int
	checksums []ChecksumRequest
	notLoaded atomic.Bool
	snapshot  func(fn func(Datum) error) error // overrides the default stream
	mismatch  []int
	origin    Origin
}

func newHTBackend() *htBackend { return &htBackend{data: map[string]Datum{}} }

func (b *htBackend) Loaded() bool { return !b.notLoaded.Load() }

func (b *htBackend) HandlePush(batch []Datum) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pushes++
	for _, d := range batch {
		if cur, ok := b.data[d.Key]; !ok || Newer(d, cur) {
			b.data[d.Key] = d
		}
	}
	return nil
}

func (b *htBackend) HandleQuery(keys []string) []Datum {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.queries++
	var out []Datum
	for _, k := range keys {
		if d, ok := b.data[k]; ok {
			out = append(out, d)
		}
	}
	return out
}

func (b *htBackend) HandleChecksum(_ context.Context, req ChecksumRequest) (ChecksumResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.checksums = append(b.checksums, req)
	return ChecksumResponse{Mismatched: b.mismatch}, nil
}

func (b *htBackend) Origin() Origin { return b.origin }

func (b *htBackend) HandleSnapshot(fn func(Datum) error) error {
	if b.snapshot != nil {
		return b.snapshot(fn)
	}
	b.mu.Lock()
	all := make([]Datum, 0, len(b.data))
	for _, d := range b.data {
		all = append(all, d)
	}
	b.mu.Unlock()
	for _, d := range all {
		if err := fn(d); err != nil {
			return err
		}
	}
	return nil
}

// calls is the number of engine calls that could change state.
func (b *htBackend) calls() (pushes, checksums, keys int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pushes, len(b.checksums), len(b.data)
}

// htSlog logs to t.Log until the test ends; later lines (from goroutines
// that outlive the test by a moment) are dropped.
func htSlog(t testing.TB) *slog.Logger {
	w := &htWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type htWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *htWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

type htLogger struct{ t testing.TB }

func (l htLogger) Printf(format string, args ...any) { l.t.Logf("fasthttp: "+format, args...) }

// htServe serves handler on 127.0.0.1:0 until the test ends; paths the
// handler declines get 418 so tests can see the fall-through.
func htServe(t testing.TB, handler func(*fasthttp.RequestCtx) bool) string {
	t.Helper()
	addr, stop := htStart(t, handler, http.StatusTeapot)
	t.Cleanup(stop)
	return addr
}

// htStart serves handler on 127.0.0.1:0 (declined paths get status) until
// stop, which is idempotent and waits for the server to return.
func htStart(t testing.TB, handler func(*fasthttp.RequestCtx) bool, status int) (addr string, stop func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if !handler(ctx) {
				ctx.Error("not a distro path", status)
			}
		},
		ReadTimeout:        5 * time.Second,
		IdleTimeout:        time.Second,
		MaxRequestBodySize: 64 << 20,
		Logger:             htLogger{t},
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	var once sync.Once
	return ln.Addr().String(), func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.ShutdownWithContext(ctx); err != nil {
				t.Errorf("server shutdown: %v", err)
			}
			// Shutdown only closes listeners Serve registered; if Serve had not
			// started yet, closing ln is what makes it return.
			_ = ln.Close()
			if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
				t.Errorf("serve: %v", err)
			}
		})
	}
}

func htClient(t testing.TB, cfg ClientConfig) *Client {
	c := NewClient(cfg)
	t.Cleanup(c.Close)
	return c
}

// htRaw sends one request by hand and returns status and body.
func htRaw(t testing.TB, method, url string, body []byte, header map[string]string) (int, string, *fasthttp.ResponseHeader) {
	t.Helper()
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	req.SetBody(body)
	c := &fasthttp.Client{}
	defer c.CloseIdleConnections()
	req.SetConnectionClose()
	if err := c.DoTimeout(req, resp, 5*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	var h fasthttp.ResponseHeader
	resp.Header.CopyTo(&h)
	return resp.StatusCode(), string(resp.Body()), &h
}

func TestHTTPPushQueryChecksumSnapshot(t *testing.T) {
	be := newHTBackend()
	be.mismatch = []int{4, 9}
	be.origin = Origin{Horizon: 1<<62 + 12345, Lineage: Lineage{3, 1 << 63}} // beyond a float64's 53 bits: travels exactly
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), Secret: "s3cret"}))
	c := htClient(t, ClientConfig{Secret: "s3cret"})
	peer := Peer{Name: "n2", Addr: addr}
	ctx := context.Background()

	batch := codecSampleBatch()
	if err := c.Push(ctx, peer, batch); err != nil {
		t.Fatal(err)
	}
	got, err := c.Query(ctx, peer, []string{batch[0].Key, "missing", batch[1].Key})
	if err != nil {
		t.Fatal(err)
	}
	codecEqualDatums(t, got, batch[:2])

	resp, err := c.Checksum(ctx, peer, ChecksumRequest{Source: "n1", RingVersion: 5, Digests: map[int]uint64{4: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resp.Mismatched) != "[4 9]" {
		t.Fatalf("mismatched = %v", resp.Mismatched)
	}
	be.mu.Lock()
	if len(be.checksums) != 1 || be.checksums[0].Source != "n1" || be.checksums[0].Digests[4] != 1 {
		t.Fatalf("checksum seen by engine: %+v", be.checksums)
	}
	be.mu.Unlock()

	var snap []Datum
	origin, err := c.Snapshot(ctx, peer, func(d Datum) error { snap = append(snap, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if origin.Horizon != be.origin.Horizon || !origin.Lineage.Equal(be.origin.Lineage) {
		t.Fatalf("snapshot origin %+v, want the sender's %+v", origin, be.origin)
	}
	if len(snap) != len(batch) {
		t.Fatalf("snapshot has %d datums, want %d", len(snap), len(batch))
	}

	st := c.Stats()
	for name, cs := range map[string]CallStats{"push": st.Push, "query": st.Query, "checksum": st.Checksum, "snapshot": st.Snapshot} {
		if cs.Calls != 1 || cs.Errors != 0 || cs.BytesSent == 0 || cs.BytesReceived == 0 {
			t.Errorf("%s stats: %+v", name, cs)
		}
	}
	if st.Push.BytesSent < 1024 { // the sample batch holds a 1 KiB key
		t.Errorf("push bytes sent %d, want at least the body", st.Push.BytesSent)
	}
}

func TestHTTPSecretRequiredAndNothingChanges(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), Secret: "right"}))
	peer := Peer{Name: "n2", Addr: addr}
	ctx := context.Background()
	for _, secret := range []string{"", "wrong", "righ", "right2"} {
		c := htClient(t, ClientConfig{Secret: secret})
		var se *StatusError
		if err := c.Push(ctx, peer, codecSampleBatch()); !errors.As(err, &se) || se.Status != http.StatusUnauthorized {
			t.Fatalf("push with secret %q: %v, want 401", secret, err)
		}
		if _, err := c.Checksum(ctx, peer, ChecksumRequest{Source: "n1"}); !errors.As(err, &se) || se.Status != 401 {
			t.Fatalf("checksum with secret %q: %v, want 401", secret, err)
		}
		if _, err := c.Query(ctx, peer, []string{"k"}); !errors.As(err, &se) || se.Status != 401 {
			t.Fatalf("query with secret %q: %v, want 401", secret, err)
		}
		if _, err := c.Snapshot(ctx, peer, func(Datum) error { return nil }); !errors.As(err, &se) || se.Status != 401 {
			t.Fatalf("snapshot with secret %q: %v, want 401", secret, err)
		}
	}
	if p, cs, keys := be.calls(); p != 0 || cs != 0 || keys != 0 || be.queries != 0 {
		t.Fatalf("unauthenticated requests reached the engine: pushes=%d checksums=%d keys=%d", p, cs, keys)
	}
	if err := htClient(t, ClientConfig{Secret: "right"}).Push(ctx, peer, codecSampleBatch()); err != nil {
		t.Fatalf("push with the secret: %v", err)
	}
}

func TestHTTPBodyTooLargeIs413(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), MaxBodyBytes: 1024}))
	c := htClient(t, ClientConfig{})
	err := c.Push(context.Background(), Peer{Name: "n2", Addr: addr},
		[]Datum{{Key: "k", Value: bytes.Repeat([]byte{1}, 2048), Version: 1}})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %v, want 413", err)
	}
	if p, _, keys := be.calls(); p != 0 || keys != 0 {
		t.Fatalf("oversized push reached the engine: pushes=%d keys=%d", p, keys)
	}
}

func TestHTTPMalformedBodiesAre400(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	valid, _ := encodeBatch(codecSampleBatch())
	keys, _ := encodeKeys([]string{"a"})
	sum, _ := encodeChecksumRequest(ChecksumRequest{Source: "n1"})
	cases := []struct {
		name, method, path string
		body               []byte
	}{
		{"push garbage", "PUT", PathDatum, []byte("garbage")},
		{"push empty", "PUT", PathDatum, nil},
		{"push truncated", "PUT", PathDatum, valid[:len(valid)-1]},
		{"push trailing", "PUT", PathDatum, append(append([]byte(nil), valid...), 1)},
		{"push keys", "PUT", PathDatum, keys},
		{"query garbage", "POST", PathQuery, []byte{codecMagic, codecVersion, kindKeys, 0xff}},
		{"checksum garbage", "PUT", PathChecksum + "?source=n1", []byte("{}")},
		{"checksum no source", "PUT", PathChecksum, func() []byte { b, _ := encodeChecksumRequest(ChecksumRequest{}); return b }()},
		{"checksum source differs", "PUT", PathChecksum + "?source=n9", sum},
	}
	for _, tc := range cases {
		status, body, _ := htRaw(t, tc.method, "http://"+addr+tc.path, tc.body, nil)
		if status != http.StatusBadRequest || body == "" {
			t.Errorf("%s: status %d body %q, want 400 with a message", tc.name, status, body)
		} else {
			t.Logf("%s: %s", tc.name, body)
		}
	}
	if p, cs, k := be.calls(); p != 0 || cs != 0 || k != 0 || be.queries != 0 {
		t.Fatalf("malformed requests reached the engine: pushes=%d checksums=%d keys=%d", p, cs, k)
	}

	// The query string alone names the source.
	noSource, _ := encodeChecksumRequest(ChecksumRequest{RingVersion: 1})
	if status, body, _ := htRaw(t, "PUT", "http://"+addr+PathChecksum+"?source=n7", noSource, nil); status != 200 {
		t.Fatalf("checksum with source in the query: %d %s", status, body)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if len(be.checksums) != 1 || be.checksums[0].Source != "n7" {
		t.Fatalf("engine saw %+v, want source n7", be.checksums)
	}
}

func TestHTTPRoutes(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), Secret: "s"}))
	auth := map[string]string{SecretHeader: "s"}
	cases := []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", PathDatum, 405, "PUT"},
		{"POST", PathDatum, 405, "PUT"},
		{"GET", PathQuery, 405, "POST"},
		{"POST", PathChecksum, 405, "PUT"},
		{"PUT", PathSnapshot, 405, "GET"},
		{"GET", "/distro/v1/nope", 404, ""},
		{"GET", "/distro/", 404, ""},
		{"GET", "/distro/v2/datum", 404, ""},
		{"GET", "/nacos/v1/ns/instance/list", http.StatusTeapot, ""}, // not ours: falls through
		{"GET", "/distrox", http.StatusTeapot, ""},
	}
	for _, tc := range cases {
		status, body, h := htRaw(t, tc.method, "http://"+addr+tc.path, []byte("x"), auth)
		if status != tc.status {
			t.Errorf("%s %s: status %d (%q), want %d", tc.method, tc.path, status, body, tc.status)
		}
		if tc.allow != "" && string(h.Peek("Allow")) != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, h.Peek("Allow"), tc.allow)
		}
	}
	if p, cs, _ := be.calls(); p != 0 || cs != 0 {
		t.Fatalf("wrong routes reached the engine: pushes=%d checksums=%d", p, cs)
	}
}

// Decoded datums are kept by the engine after the handler returned; they
// must not share memory with fasthttp's request buffers, which are reused.
func TestHTTPDecodedDatumsOutliveTheRequest(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	c := htClient(t, ClientConfig{})
	peer := Peer{Name: "n2", Addr: addr}
	first := []Datum{{Key: "key-A", Value: bytes.Repeat([]byte("A"), 512), Version: 1}}
	if err := c.Push(context.Background(), peer, first); err != nil {
		t.Fatal(err)
	}
	for i := range 50 { // reuse the connection and its buffers
		d := Datum{Key: fmt.Sprintf("key-%c", 'B'+i%20), Value: bytes.Repeat([]byte("Z"), 512), Version: uint64(i + 2)}
		if err := c.Push(context.Background(), peer, []Datum{d}); err != nil {
			t.Fatal(err)
		}
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if got := be.data["key-A"]; !bytes.Equal(got.Value, first[0].Value) || got.Key != "key-A" {
		t.Fatalf("stored datum was overwritten through a shared buffer: %q", got.Value[:16])
	}
}

func TestHTTPSnapshotNotLoadedIs503(t *testing.T) {
	be := newHTBackend()
	be.notLoaded.Store(true)
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	_, err := htClient(t, ClientConfig{}).Snapshot(context.Background(), Peer{Name: "n2", Addr: addr},
		func(Datum) error { return nil })
	var se *StatusError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable {
		t.Fatalf("got %v, want 503", err)
	}
}

func TestHTTPSnapshotStreamsManyDatums(t *testing.T) {
	const n = 20000
	be := newHTBackend()
	value := bytes.Repeat([]byte("v"), 1000)
	be.snapshot = func(fn func(Datum) error) error { // generated on the fly, never held
		for i := range n {
			if err := fn(Datum{Key: fmt.Sprintf("k%06d", i), Value: value, Version: uint64(i + 1)}); err != nil {
				return err
			}
		}
		return nil
	}
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	c := htClient(t, ClientConfig{})
	seen := 0
	_, err := c.Snapshot(context.Background(), Peer{Name: "n2", Addr: addr}, func(d Datum) error {
		if want := fmt.Sprintf("k%06d", seen); d.Key != want || !bytes.Equal(d.Value, value) {
			return fmt.Errorf("datum %d is %q, want %q", seen, d.Key, want)
		}
		seen++
		return nil
	})
	if err != nil || seen != n {
		t.Fatalf("snapshot: %d datums, err %v", seen, err)
	}
	if got := c.Stats().Snapshot.BytesReceived; got < n*1000 {
		t.Fatalf("snapshot bytes received %d, want >= %d", got, n*1000)
	}
}

func TestHTTPSnapshotFailureMidStreamIsReported(t *testing.T) {
	be := newHTBackend()
	be.snapshot = func(fn func(Datum) error) error {
		for i := range 3 {
			if err := fn(Datum{Key: fmt.Sprint(i), Version: 1}); err != nil {
				return err
			}
		}
		return errors.New("store went away")
	}
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	seen := 0
	_, err := htClient(t, ClientConfig{}).Snapshot(context.Background(), Peer{Name: "n2", Addr: addr},
		func(Datum) error { seen++; return nil })
	if !errors.Is(err, ErrSnapshotFailed) || !strings.Contains(err.Error(), "store went away") || seen != 3 {
		t.Fatalf("got %v after %d datums, want ErrSnapshotFailed after 3", err, seen)
	}
}

// A stalled stream ends on cancel or after the idle timeout, not never.
func TestClientSnapshotCancelAndIdleTimeout(t *testing.T) {
	be := newHTBackend()
	release := make(chan struct{})
	be.snapshot = func(fn func(Datum) error) error {
		if err := fn(Datum{Key: "first", Version: 1}); err != nil {
			return err
		}
		<-release
		return nil
	}
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	t.Cleanup(func() { close(release) }) // before the server's shutdown waits for the stream
	peer := Peer{Name: "n2", Addr: addr}

	c := htClient(t, ClientConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan struct{}, 1)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Snapshot(ctx, peer, func(Datum) error { got <- struct{}{}; return nil })
		errc <- err
	}()
	// The first datum is buffered by the server until its writer flushes, so
	// cancel without waiting for it; the stream must end either way.
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled snapshot returned %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled snapshot did not return")
	}

	idle := htClient(t, ClientConfig{SnapshotIdleTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := idle.Snapshot(context.Background(), peer, func(Datum) error { return nil })
	if err == nil {
		t.Fatal("stalled snapshot succeeded")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("stalled snapshot took %v with a 200 ms idle timeout", el)
	}
	t.Logf("stalled snapshot: %v", err)
}

func TestClientPushSplitsLargeBatches(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), MaxBodyBytes: 8 << 10}))
	c := htClient(t, ClientConfig{MaxRequestBytes: 8 << 10})
	var batch []Datum
	for i := range 100 {
		batch = append(batch, Datum{Key: fmt.Sprintf("k%d", i), Value: bytes.Repeat([]byte{byte(i)}, 500), Version: 1})
	}
	if err := c.Push(context.Background(), Peer{Name: "n2", Addr: addr}, batch); err != nil {
		t.Fatal(err)
	}
	if p, _, keys := be.calls(); keys != 100 || p < 6 {
		t.Fatalf("engine got %d keys in %d pushes, want 100 keys in >= 6 pushes", keys, p)
	}
	if calls := c.Stats().Push.Calls; calls < 6 {
		t.Fatalf("client counted %d push calls", calls)
	}
}

func TestClientRefusesBeyondLimitsAndAfterClose(t *testing.T) {
	be := newHTBackend()
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t)}))
	c := NewClient(ClientConfig{})
	peer := Peer{Name: "n2", Addr: addr}
	err := c.Push(context.Background(), peer, []Datum{{Key: strings.Repeat("k", MaxKeyLen+1)}})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if c.Stats().Push.BytesSent != 0 {
		t.Fatal("a refused push was sent")
	}
	c.Close()
	if err := c.Push(context.Background(), peer, codecSampleBatch()); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("push after close: %v", err)
	}
	if p, _, _ := be.calls(); p != 0 {
		t.Fatalf("engine saw %d pushes", p)
	}
}

func TestClientErrorCarriesStatusAndBody(t *testing.T) {
	addr := htServe(t, func(ctx *fasthttp.RequestCtx) bool {
		ctx.Error(strings.Repeat("e", 1000), http.StatusInternalServerError)
		return true
	})
	c := htClient(t, ClientConfig{})
	_, err := c.Query(context.Background(), Peer{Name: "n2", Addr: addr}, []string{"k"})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 500 || len(se.Body) > maxErrorBody+3 || !strings.HasPrefix(se.Body, "eee") {
		t.Fatalf("got %v", err)
	}
	if st := c.Stats().Query; st.Errors != 1 || st.Calls != 1 {
		t.Fatalf("query stats %+v", st)
	}

	// An unreachable peer fails within the timeout.
	dead := testutil.ClosedLoopbackAddr(t)
	fast := htClient(t, ClientConfig{Timeout: 500 * time.Millisecond})
	start := time.Now()
	if err := fast.Push(context.Background(), Peer{Name: "dead", Addr: dead}, codecSampleBatch()); err == nil {
		t.Fatal("push to a closed port succeeded")
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("push to a closed port took %v", el)
	}
}

// TestHTTPSenderIdentityRefusedChangesNothing pins issue 8 item 5: a push or
// checksum whose sender is not the process the receiver knows by that name
// (a second process started with a member's name) is refused and nothing
// reaches the engine; the known process's requests pass.
func TestHTTPSenderIdentityRefusedChangesNothing(t *testing.T) {
	be := newHTBackend()
	known := map[string]string{"n1": "aaaa1111"} // name -> incarnation
	sender := func(name, incarnation string) error {
		want, ok := known[name]
		switch {
		case !ok:
			return fmt.Errorf("no member %s", name)
		case want != incarnation:
			return fmt.Errorf("member %s is incarnation %s", name, want)
		}
		return nil
	}
	addr := htServe(t, newHTTPHandler(be, HTTPConfig{Logger: htSlog(t), Sender: sender}))
	peer := Peer{Name: "n2", Addr: addr}
	ctx := context.Background()
	sum := ChecksumRequest{Source: "n1", RingVersion: 5, Digests: map[int]uint64{4: 1}}

	for _, tc := range []struct {
		name   string
		client ClientConfig
		source string // the checksum's source; "" is the client's name
		status int
	}{
		{"wrong incarnation", ClientConfig{Name: "n1", Incarnation: "bbbb2222"}, "", http.StatusConflict},
		{"unknown name", ClientConfig{Name: "n9", Incarnation: "aaaa1111"}, "", http.StatusConflict},
		{"no identity", ClientConfig{}, "n1", http.StatusBadRequest},
		{"source is another member", ClientConfig{Name: "n1", Incarnation: "aaaa1111"}, "n3", http.StatusConflict},
	} {
		c := htClient(t, tc.client)
		var se *StatusError
		if tc.source == "" {
			if err := c.Push(ctx, peer, codecSampleBatch()); !errors.As(err, &se) || se.Status != tc.status {
				t.Errorf("%s: push: %v, want %d", tc.name, err, tc.status)
			} else {
				t.Logf("%s: push: %s", tc.name, se.Body)
			}
		}
		req := sum
		if tc.source != "" {
			req.Source = tc.source
		} else {
			req.Source = tc.client.Name
		}
		if _, err := c.Checksum(ctx, peer, req); !errors.As(err, &se) || se.Status != tc.status {
			t.Errorf("%s: checksum: %v, want %d", tc.name, err, tc.status)
		} else {
			t.Logf("%s: checksum: %s", tc.name, se.Body)
		}
	}
	if p, cs, keys := be.calls(); p != 0 || cs != 0 || keys != 0 {
		t.Fatalf("refused senders reached the engine: pushes=%d checksums=%d keys=%d", p, cs, keys)
	}

	good := htClient(t, ClientConfig{Name: "n1", Incarnation: "aaaa1111"})
	if err := good.Push(ctx, peer, codecSampleBatch()); err != nil {
		t.Fatalf("push from the known process: %v", err)
	}
	if _, err := good.Checksum(ctx, peer, sum); err != nil {
		t.Fatalf("checksum from the known process: %v", err)
	}
	if p, cs, keys := be.calls(); p != 1 || cs != 1 || keys != len(codecSampleBatch()) {
		t.Fatalf("known sender: pushes=%d checksums=%d keys=%d, want 1, 1, %d", p, cs, keys, len(codecSampleBatch()))
	}
}

// The engine's errors carry no status; statusOf is the one table that gives
// them theirs, through any wrapping.
func TestStatusOfProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errNoSource, http.StatusBadRequest},
		{fmt.Errorf("push datum 3: %w", errEmptyKey), http.StatusBadRequest},
		{fmt.Errorf("push datum 0: %w", fmt.Errorf("%w: key", errVersionAhead)), http.StatusBadRequest},
		{invalid("decode push batch: %v", ErrTooLarge), http.StatusBadRequest},
		{refused("source %q differs from the sender %q", "a", "b"), http.StatusConflict},
		{fmt.Errorf("checksum from n1: %w", ErrNoRing), http.StatusServiceUnavailable},
		{ErrNotLoaded, http.StatusServiceUnavailable},
		{fmt.Errorf("pull: %w", context.DeadlineExceeded), http.StatusServiceUnavailable},
		{errors.New("disk on fire"), http.StatusInternalServerError},
	} {
		if got := statusOf(tc.err); got != tc.want {
			t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	if got := invalid("source is required").Error(); got != "source is required" {
		t.Errorf("a refusal's text is its message alone, got %q", got)
	}
}
