package naming

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own background goroutines: connection cleaners that exit on
		// their own schedule (seconds), the process-wide server date ticker and
		// the default dialer's address cache cleaner (forwards to real sockets).
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	)
}

// fakeCluster is a Cluster whose ownership the test decides (self by default).
type fakeCluster struct {
	mu       sync.Mutex
	notReady bool
	noOwner  bool
	owner    *Owner // nil: self owns everything
	changed  []string
	ver      atomic.Uint64
	servers  []Server
	settled  time.Time // ViewsSettledSince; zero: views never differed
	members  []net.IP  // MemberAddr's addresses; nil: every address is a member's
}

func newFakeCluster() *fakeCluster {
	c := &fakeCluster{}
	c.ver.Store(1000)
	return c
}

func (c *fakeCluster) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.notReady
}

func (c *fakeCluster) OwnerOf(string) (Owner, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.noOwner {
		return Owner{}, false
	}
	if c.owner == nil {
		return Owner{Name: "self", HTTPAddr: "127.0.0.1:8848", Self: true}, true
	}
	return *c.owner, true
}

func (c *fakeCluster) Changed(key string) {
	c.mu.Lock()
	c.changed = append(c.changed, key)
	c.mu.Unlock()
}

func (c *fakeCluster) changedKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.changed...)
}

func (c *fakeCluster) NextVersion() uint64 { return c.ver.Add(1) }

func (c *fakeCluster) Servers() []Server { return c.servers }

func (c *fakeCluster) ViewsSettledSince() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.settled
}

func (c *fakeCluster) MemberAddr(ip net.IP) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members == nil || slices.ContainsFunc(c.members, ip.Equal)
}

func (c *fakeCluster) set(fn func(c *fakeCluster)) {
	c.mu.Lock()
	fn(c)
	c.mu.Unlock()
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

var _ io.Writer = tWriter{}

// newTestRegistry builds a registry without UDP push unless cfgFn enables it.
func newTestRegistry(t *testing.T, c Cluster, cfgFn func(*Config)) *Registry {
	t.Helper()
	cfg := DefaultConfig()
	cfg.UDPAddr = ""
	cfg.Logger = testLogger(t)
	if cfgFn != nil {
		cfgFn(&cfg)
	}
	r, err := New(cfg, c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := r.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

// reqOpt adjusts a request before it is handled.
type reqOpt func(*fasthttp.Request)

func header(k, v string) reqOpt { return func(r *fasthttp.Request) { r.Header.Set(k, v) } }

var clientAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// call runs one request through r.Handle without sockets.
func call(t *testing.T, r *Registry, method, uri, body string, opts ...reqOpt) *fasthttp.RequestCtx {
	t.Helper()
	return callFrom(t, r, clientAddr, method, uri, body, opts...)
}

func callFrom(t *testing.T, r *Registry, from net.Addr, method, uri, body string, opts ...reqOpt) *fasthttp.RequestCtx {
	t.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if body != "" {
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(body)
	}
	for _, o := range opts {
		o(&req)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, from, nil)
	if !r.Handle(ctx) {
		t.Fatalf("%s %s: not handled", method, uri)
	}
	return ctx
}

// mustOK runs a request and fails unless it answers 200.
func mustOK(t *testing.T, r *Registry, method, uri, body string, opts ...reqOpt) []byte {
	t.Helper()
	ctx := call(t, r, method, uri, body, opts...)
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("%s %s: status %d: %s", method, uri, ctx.Response.StatusCode(), ctx.Response.Body())
	}
	return append([]byte(nil), ctx.Response.Body()...)
}

func decodeJSON[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

const ns = "/nacos/v1/ns"
