package naming

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"
)

// serve runs r's API on an in-memory listener and returns a dialer for it.
func serve(t *testing.T, r *Registry) func(addr string) (net.Conn, error) {
	t.Helper()
	ln := fasthttputil.NewInmemoryListener()
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			if !r.Handle(ctx) {
				ctx.Error("not found", fasthttp.StatusNotFound)
			}
		},
		ReadTimeout: 5 * time.Second, IdleTimeout: time.Second,
		DisablePreParseMultipartForm: true,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return func(string) (net.Conn, error) { return ln.Dial() }
}

// pair builds an owner B, served in memory, and a node A that routes every key to B.
func pair(t *testing.T, secretA, secretB string) (a, b *Registry, ca, cb *fakeCluster) {
	ca, cb = newFakeCluster(), newFakeCluster()
	cb.ver.Store(9000)
	ca.owner = &Owner{Name: "b", HTTPAddr: "b.test:8848"}
	a = newTestRegistry(t, ca, func(c *Config) { c.Secret = secretA })
	b = newTestRegistry(t, cb, func(c *Config) { c.Secret = secretB })
	a.fwd.Dial = serve(t, b)
	b.fwd.Dial = func(string) (net.Conn, error) { return nil, errors.New("b must never forward") }
	return a, b, ca, cb
}

func TestWritesAreForwardedOnceToTheOwner(t *testing.T) {
	a, b, ca, cb := pair(t, "", "")
	body := `serviceName=DEFAULT_GROUP@@svc&ip=10.0.0.1&port=80&metadata={"k":"v"}`
	if got := string(mustOK(t, a, "POST", ns+"/instance", body)); got != "ok" {
		t.Fatalf("relayed answer %q", got)
	}
	if _, ok := a.Get(svcKey); ok {
		t.Fatalf("the non-owner stored the write")
	}
	if in := b.service(svcKey).live("10.0.0.1:80:DEFAULT"); in == nil || in.Metadata["k"] != "v" {
		t.Fatalf("owner did not get the write intact: %+v", in)
	}
	if len(ca.changedKeys()) != 0 || len(cb.changedKeys()) != 1 {
		t.Fatalf("changed: a=%v b=%v", ca.changedKeys(), cb.changedKeys())
	}

	// B thinks A owns the key (views differ during a membership change): the
	// forwarded request still runs on B, it is never forwarded back.
	cb.set(func(c *fakeCluster) { c.owner = &Owner{Name: "a", HTTPAddr: "a.test:8848"} })
	mustOK(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "")
	if b.service(svcKey).live("10.0.0.2:80:DEFAULT") == nil {
		t.Fatalf("forwarded write not executed by the receiver")
	}

	// Beats are forwarded too, and the owner's JSON answer is relayed.
	ctx := call(t, a, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.9&port=80", "")
	if ctx.Response.StatusCode() != 200 || string(ctx.Response.Body()) != `{"clientBeatInterval":5000,"code":20404}` ||
		!strings.HasPrefix(string(ctx.Response.Header.ContentType()), "application/json") {
		t.Fatalf("relayed beat: %d %q %s", ctx.Response.StatusCode(), ctx.Response.Header.ContentType(), ctx.Response.Body())
	}
	// The owner's errors are relayed with their status.
	ctx = call(t, a, "DELETE", ns+"/service?serviceName=svc", "")
	if ctx.Response.StatusCode() != 400 || !strings.Contains(string(ctx.Response.Body()), "has instances") {
		t.Fatalf("relayed error: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	// Reads are served locally.
	if l := decodeJSON[sdkService](t, mustOK(t, a, "GET", ns+"/instance/list?serviceName=svc", "")); len(l.Hosts) != 0 {
		t.Fatalf("A answered a read with B's data: %+v", l.Hosts)
	}
}

func TestForwardSecret(t *testing.T) {
	a, b, _, _ := pair(t, "wrong", "right")
	ctx := call(t, a, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if ctx.Response.StatusCode() != 401 {
		t.Fatalf("wrong secret: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	ctx = call(t, b, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "", header(HeaderForwarded, "1"))
	if ctx.Response.StatusCode() != 401 {
		t.Fatalf("forwarded header without secret: %d", ctx.Response.StatusCode())
	}
	if _, ok := b.Get(svcKey); ok {
		t.Fatalf("an unauthenticated forwarded write changed the store")
	}
	mustOK(t, b, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "", header(HeaderForwarded, "1"), header(HeaderSecret, "right"))
	if _, ok := b.Get(svcKey); !ok {
		t.Fatalf("an authenticated forwarded write was not applied")
	}
}

// Regression (issue 9, item 3): after kill -9 of a node, writes for the
// services it owned were refused (503 "owner unreachable") until gossip
// declared it dead. An AP registry applies them where they landed.
func TestUnreachableOwnerWriteIsAppliedHere(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newFakeCluster()
	c.owner = &Owner{Name: "b", HTTPAddr: testutil.ClosedLoopbackAddr(t)}
	r := newTestRegistry(t, c, func(c *Config) { c.Metrics = reg })

	if got := string(mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")); got != "ok" {
		t.Fatalf("register with the owner's port closed answered %q, want ok", got)
	}
	if r.service(svcKey).live("10.0.0.1:80:DEFAULT") == nil {
		t.Fatalf("the write was answered but not applied here")
	}
	// Pushed from here like any local write: to every peer, the owner included.
	if got := c.changedKeys(); len(got) != 1 || got[0] != svcKey {
		t.Fatalf("changed keys %v, want [%s]", got, svcKey)
	}
	// A beat heard here is recorded here (re-asserted over a peer's expiry).
	beat := `serviceName=svc&beat={"ip":"10.0.0.2","port":80,"cluster":"DEFAULT"}`
	if b := decodeJSON[beatResponse](t, mustOK(t, r, "PUT", ns+"/instance/beat", beat)); b.Code != codeOK {
		t.Fatalf("beat with beat info through an unreachable owner: code %d", b.Code)
	}
	if r.service(svcKey).live("10.0.0.2:80:DEFAULT") == nil {
		t.Fatalf("beat with beat info did not register the instance here")
	}
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if r.service(svcKey).live("10.0.0.1:80:DEFAULT") != nil {
		t.Fatalf("deregistration through an unreachable owner not applied here")
	}
	if got := gathered(t, reg)["distrod_naming_forwarded_requests_total{result=applied_here}"]; got != 3 {
		t.Fatalf("forwarded_requests_total{applied_here} = %v, want 3", got)
	}

	// An owner that takes the connection but never answers (stopped, or a
	// dead host behind a live listener) is unreachable too, after ForwardTimeout.
	silent, err := net.Listen("tcp", "127.0.0.1:0") // never accepts: the kernel completes handshakes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	cs := newFakeCluster()
	cs.owner = &Owner{Name: "b", HTTPAddr: silent.Addr().String()}
	s := newTestRegistry(t, cs, func(c *Config) {
		c.ForwardTimeout, c.ForwardDialTimeout = 200*time.Millisecond, 200*time.Millisecond
	})
	mustOK(t, s, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.3&port=80", "")
	if s.service(svcKey).live("10.0.0.3:80:DEFAULT") == nil {
		t.Fatalf("write to a silent owner not applied here")
	}
}

func TestUnreachableOwnerWriteIsRefusedWhenItCannotRunHere(t *testing.T) {
	c := newFakeCluster()
	c.owner = &Owner{Name: "b", HTTPAddr: testutil.ClosedLoopbackAddr(t)}
	r := newTestRegistry(t, c, nil)
	clk := withClock(r)

	// Loading: this node does not know the service; a write built on nothing
	// would override the cluster's service fields.
	c.set(func(c *fakeCluster) { c.notReady = true })
	ctx := call(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "unreachable") ||
		!strings.Contains(string(ctx.Response.Body()), "loading") {
		t.Fatalf("unreachable owner, node loading: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	// Stalled: its view is stale (stall.go).
	c.set(func(c *fakeCluster) { c.notReady = false })
	armStallGuard(r, clk)
	clk.Advance(time.Minute)
	wantStalled(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	// No owner at all: nothing is ready.
	c.set(func(c *fakeCluster) { c.noOwner = true })
	ctx = call(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	if ctx.Response.StatusCode() != 503 || !strings.Contains(string(ctx.Response.Body()), "no ready member") {
		t.Fatalf("no owner: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if _, ok := r.Get(svcKey); ok {
		t.Fatalf("a refused write stored something locally")
	}
}

// TestForwardAnswerIsBounded pins an unbounded read: the forwarding client
// had no response size limit, so an owner (or whatever answered at its
// address) could make a node buffer an answer of any size per forwarded write.
func TestForwardAnswerIsBounded(t *testing.T) {
	c := newFakeCluster()
	c.owner = &Owner{Name: "b", HTTPAddr: "b.test:8848"}
	r := newTestRegistry(t, c, nil)
	ln := fasthttputil.NewInmemoryListener()
	huge := strings.Repeat("x", 2*maxForwardAnswer)
	srv := &fasthttp.Server{Handler: func(ctx *fasthttp.RequestCtx) { ctx.SetBodyString(huge) }, IdleTimeout: time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	r.fwd.Dial = func(string) (net.Conn, error) { return ln.Dial() }
	ctx := call(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if ctx.Response.StatusCode() != 503 || len(ctx.Response.Body()) >= maxForwardAnswer {
		t.Fatalf("owner answering %d bytes: %d with %d bytes, want 503 and no relay", len(huge), ctx.Response.StatusCode(), len(ctx.Response.Body()))
	}
}

// Without a secret the forwarded header counts only from a member's address;
// from another it is an ordinary client request, routed to the owner.
func TestForwardedHeaderFromNonMemberIsRouted(t *testing.T) {
	a, b, ca, _ := pair(t, "", "")
	member := &net.TCPAddr{IP: net.ParseIP("10.1.1.1"), Port: 40000}
	ca.set(func(c *fakeCluster) { c.members = []net.IP{member.IP} })

	stranger := &net.TCPAddr{IP: net.ParseIP("10.6.6.6"), Port: 40000}
	ctx := callFrom(t, a, stranger, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "", header(HeaderForwarded, "1"))
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("stranger's request: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if _, ok := a.Get(svcKey); ok {
		t.Fatalf("the non-owner ran a stranger's request because of its forwarded header")
	}
	if b.service(svcKey).live("10.0.0.1:80:DEFAULT") == nil {
		t.Fatalf("the stranger's request did not reach the owner")
	}

	ctx = callFrom(t, a, member, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80", "", header(HeaderForwarded, "1"))
	if ctx.Response.StatusCode() != 200 {
		t.Fatalf("member's forwarded request: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if a.service(svcKey).live("10.0.0.2:80:DEFAULT") == nil {
		t.Fatalf("a member's forwarded request did not run where it landed")
	}
}

// Regression (issue 9): a request in absolute form (POST http://host/path?q,
// valid HTTP/1.1) sent to a non-owner was relayed to "http://owner" followed
// by the whole target, an address with too many colons: 503.
func TestAbsoluteFormRequestIsForwardedByPathAndQuery(t *testing.T) {
	a, b, _, _ := pair(t, "", "")
	uri := "http://a.test:8848" + ns + "/instance?serviceName=DEFAULT_GROUP@@svc&ip=10.0.0.1&port=80"
	if got := string(mustOK(t, a, "POST", uri, "")); got != "ok" {
		t.Fatalf("relayed answer %q", got)
	}
	if in := b.service(svcKey).live("10.0.0.1:80:DEFAULT"); in == nil {
		t.Fatal("the owner did not get the absolute-form write")
	}
}
