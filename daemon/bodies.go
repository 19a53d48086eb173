package daemon

import (
	"fmt"
	"strings"
	"sync"

	"github.com/distrod/distrod/distro"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// Request bodies are sized from the headers alone, before fasthttp reads them.
// fasthttp allocates a Content-Length body in one piece of the announced size
// (appendBodyFixedSize) as soon as the headers are in, whether or not the
// bytes ever follow, so a limit checked after the read (or one server-wide
// limit fit for the peers' pushes) lets a few connections that announce 32 MiB
// and send nothing hold gigabytes. bodyGate runs in Server.HeaderReceived:
//   - it picks the route's limit: the large peer limit only for /distro/ paths
//     carrying the cluster secret (or any /distro/ path when none is configured),
//     the small client limit for everything else, unknown paths included;
//     fasthttp refuses a larger Content-Length before reading a byte of it;
//   - it reserves the announced size from a node-wide budget split in two
//     halves, one for the peer class and one for the client class, so neither
//     can starve the other (without a secret, anyone can send as a peer), and a
//     request that does not fit is refused at once with 503 rather than
//     waiting: a waiting request would hold fasthttp's connection goroutine and
//     the sender's connection, while distro's pushes retry with backoff anyway
//     and Nacos clients retry on another server.
//
// A reservation lives in a ticket keyed by the request's header, which fasthttp
// keeps in the connection's RequestCtx for the connection's life. It is
// released when the handler returns (serveHTTP) or when fasthttp could not
// read the body (serverError): for a Content-Length body fasthttp reaches one
// of the two on every path but a connection the server itself closed. Two
// kinds of request could leave unseen (fasthttp drops the connection without
// an answer when a chunked body ends at a chunk boundary, or when the client
// is gone before "100 Continue" is written), so they are refused from their
// headers and never reserve: chunked bodies (411; every client of distrod
// sends Content-Length) and "Expect: 100-continue" with a body (417: send
// the body without the expectation). The connection's next request drops a
// ticket that was left all the same.
type bodyGate struct {
	secret      distro.PeerSecret
	clientLimit int
	peerLimit   int
	budget      int64             // all reserved bodies: the sum of the two halves
	classBudget [classCount]int64 // each class's half of budget

	mu       sync.Mutex
	inFlight [classCount]int64                      // reserved bytes per class
	tickets  map[*fasthttp.RequestHeader]bodyTicket // the current request of each connection

	refused *prometheus.CounterVec
}

// bodyClass is who may send a request, as far as its header tells.
type bodyClass uint8

const (
	classClient     bodyClass = iota // Nacos API, ops endpoints, unknown paths
	classPeer                        // a /distro/ path with the secret, or any when none is configured
	classPeerNoAuth                  // a /distro/ path without the right secret: sized and budgeted as a client
	classCount      = 2              // budget halves: classPeerNoAuth shares the client's
)

// pool is the budget half the class draws from.
func (c bodyClass) pool() bodyClass {
	if c == classPeer {
		return classPeer
	}
	return classClient
}

func (c bodyClass) String() string {
	if c == classPeer {
		return "the peer endpoints"
	}
	return "the client API"
}

// bodyTicket is one request's admission.
type bodyTicket struct {
	class    bodyClass
	limit    int   // the route's limit, named in the 413
	reserved int64 // bytes taken from the budget, returned by release
	busy     bool  // the budget had no room: the request is answered 503
}

func newBodyGate(cfg Config, reg prometheus.Registerer) *bodyGate {
	g := &bodyGate{
		secret:      distro.NewPeerSecret(cfg.Secret),
		clientLimit: cfg.MaxClientBodySize,
		peerLimit:   cfg.MaxPeerBodySize,
		budget:      int64(cfg.MaxBodyBytesInFlight),
		classBudget: [classCount]int64{classClient: int64(cfg.MaxBodyBytesInFlight) / 2, classPeer: int64(cfg.MaxBodyBytesInFlight) - int64(cfg.MaxBodyBytesInFlight)/2},
		tickets:     map[*fasthttp.RequestHeader]bodyTicket{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "distrod", Subsystem: "http", Name: "bodies_refused_total",
			Help: "Requests refused from their headers: 413 over the route's limit, 401 peer request without the secret, 503 over the in-flight budget, 411 chunked, 417 Expect: 100-continue.",
		}, []string{"status"}),
	}
	inFlight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "distrod", Subsystem: "http", Name: "body_bytes_in_flight",
		Help: "Request-body bytes reserved by requests being read or handled (bounded by MaxBodyBytesInFlight).",
	}, func() float64 { return float64(g.InFlight()) })
	reg.MustRegister(g.refused, inFlight)
	return g
}

// headerReceived is fasthttp's Server.HeaderReceived: it admits the request
// whose header h just arrived and returns its body limit.
func (g *bodyGate) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	g.mu.Lock()
	g.releaseLocked(g.tickets[h]) // left by a request that ended unseen (see bodyGate)
	delete(g.tickets, h)
	g.mu.Unlock()
	t := g.classify(h)
	cl := h.ContentLength()
	switch {
	case cl == -1: // chunked: refused unread (serverError), unless of 1 byte at most
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	case cl <= 0 || cl > t.limit || expectsContinue(h):
		// Nothing to reserve: no body, one fasthttp refuses before reading it,
		// or one expectContinue refuses.
		return fasthttp.RequestConfig{MaxRequestBodySize: t.limit}
	}
	want, pool := int64(cl), t.class.pool()
	g.mu.Lock()
	if g.inFlight[pool]+want > g.classBudget[pool] {
		t.busy = true
	} else {
		t.reserved = want
		g.inFlight[pool] += want
	}
	g.tickets[h] = t
	g.mu.Unlock()
	if t.busy {
		// The smallest limit fasthttp honours: it refuses the body unread and
		// serverError answers 503 (a 1-byte body reaches serveHTTP, which does).
		return fasthttp.RequestConfig{MaxRequestBodySize: 1}
	}
	return fasthttp.RequestConfig{MaxRequestBodySize: t.limit}
}

func expectsContinue(h *fasthttp.RequestHeader) bool {
	return h.IsHTTP11() && strings.EqualFold(string(h.Peek(fasthttp.HeaderExpect)), "100-continue")
}

// expectContinue is fasthttp's Server.ExpectHandler: a request announcing a
// body with "Expect: 100-continue" is refused with a final status instead of
// "100 Continue" (see bodyGate): 413 over its route's limit, 417 otherwise.
// A client may resend it without the expectation.
func (g *bodyGate) expectContinue(ctx *fasthttp.RequestCtx) int {
	h := &ctx.Request.Header
	switch cl := h.ContentLength(); {
	case cl == 0:
		return fasthttp.StatusContinue
	case cl > g.classify(h).limit:
		g.refused.WithLabelValues("413").Inc()
		return fasthttp.StatusRequestEntityTooLarge
	default:
		g.refused.WithLabelValues("417").Inc()
		return fasthttp.StatusExpectationFailed
	}
}

// classify decides the route's class and limit from the path fasthttp will
// route by (the same normalisation as ctx.Path) and the secret header.
func (g *bodyGate) classify(h *fasthttp.RequestHeader) bodyTicket {
	u := fasthttp.AcquireURI()
	defer fasthttp.ReleaseURI(u)
	if u.Parse(h.Host(), h.RequestURI()) != nil || !distro.IsPeerPath(u.Path()) {
		return bodyTicket{class: classClient, limit: g.clientLimit}
	}
	if !g.secret.Authorized(h) {
		return bodyTicket{class: classPeerNoAuth, limit: g.clientLimit}
	}
	return bodyTicket{class: classPeer, limit: g.peerLimit}
}

// take removes and returns the ticket of the request with header h; ok is
// false when there is none (nothing was reserved).
func (g *bodyGate) take(h *fasthttp.RequestHeader) (t bodyTicket, ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok = g.tickets[h]
	delete(g.tickets, h)
	return t, ok
}

// release returns a taken ticket's bytes to the budget.
func (g *bodyGate) release(t bodyTicket) {
	if t.reserved == 0 {
		return
	}
	g.mu.Lock()
	g.releaseLocked(t)
	g.mu.Unlock()
}

func (g *bodyGate) releaseLocked(t bodyTicket) {
	g.inFlight[t.class.pool()] -= t.reserved
}

// InFlight is the number of body bytes reserved now.
func (g *bodyGate) InFlight() int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight[classClient] + g.inFlight[classPeer]
}

// refuse answers a request whose body fasthttp refused (ErrBodyTooLarge):
// 503 over the budget, 401 for a peer request without the secret (the real
// cause, which the body's size only revealed first), 411 for a chunked body,
// otherwise 413 naming the route's limit.
func (g *bodyGate) refuse(ctx *fasthttp.RequestCtx, t bodyTicket) {
	switch {
	case t.busy:
		g.refused.WithLabelValues("503").Inc()
		ctx.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		ctx.Error(fmt.Sprintf("node busy: request bodies in flight for %s would exceed their budget of %d bytes; retry later",
			t.class, g.classBudget[t.class.pool()]), fasthttp.StatusServiceUnavailable)
	case ctx.Request.Header.ContentLength() <= 0:
		// Only a chunked body is refused without a length: fasthttp reset its header.
		g.refused.WithLabelValues("411").Inc()
		ctx.Error("chunked request bodies are not accepted: send the body with Content-Length", fasthttp.StatusLengthRequired)
	case t.class == classPeerNoAuth:
		g.refused.WithLabelValues("401").Inc()
		ctx.Error("missing or wrong "+distro.SecretHeader, fasthttp.StatusUnauthorized)
	default:
		g.refused.WithLabelValues("413").Inc()
		ctx.Error(fmt.Sprintf("request body too large: the limit for %s is %d bytes", t.class, t.limit),
			fasthttp.StatusRequestEntityTooLarge)
	}
}
