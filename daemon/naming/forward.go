package naming

import (
	"errors"
	"io"
	"math"
	"net"
	"syscall"

	"github.com/distrod/distrod/daemon/httpx"
	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// Headers of a forwarded write.
const (
	HeaderForwarded = "X-Distrod-Forwarded"
	HeaderSecret    = distro.SecretHeader // the cluster secret, as on peer requests
)

// route decides where a write to key runs. It returns (nil, nil) when the
// write must run here, or the owner's relayed answer (or an error) when it was
// forwarded. A request that was already forwarded always runs here: a write
// is forwarded at most once, so two nodes with different views cannot loop.
func (r *Registry) route(ctx *fasthttp.RequestCtx, key string) (any, error) {
	if len(ctx.Request.Header.Peek(HeaderForwarded)) > 0 {
		switch {
		case r.cfg.Secret != "":
			if !r.secret.Authorized(&ctx.Request.Header) {
				return nil, ErrBadSecret
			}
			return nil, r.runHere()
		case r.cluster.MemberAddr(ctx.RemoteIP()):
			return nil, r.runHere()
		}
		// No secret, and not a member's address: any client can send the
		// header, so it decides nothing and the request is routed like any other.
		r.log.Debug("forwarded header from a non-member address ignored", "remote", ctx.RemoteAddr().String())
	}
	o, ok := r.cluster.OwnerOf(key)
	if !ok {
		return nil, ErrNoReadyMember
	}
	if o.Self {
		return nil, r.runHere()
	}
	ans, err := r.forward(ctx, o)
	switch {
	case err == nil:
		return ans, nil
	case unreachable(err):
		return nil, r.runInsteadOf(ctx, o, err)
	default: // an unreadable answer, or no free connection to the owner (it is busy, not gone)
		r.stats.forwarded.WithLabelValues("error").Inc()
		r.log.Warn("forward failed", "owner", o.Name, "addr", o.HTTPAddr, "path", string(ctx.Path()), "err", err)
		return nil, httpx.Errorf(fasthttp.StatusServiceUnavailable, "forward to owner %s (%s) of this service failed: %v", o.Name, o.HTTPAddr, err)
	}
}

// unreachable reports whether a forward's error means that the owner gave no
// answer: it refused the connection or did not take it in time, lost it, or
// did not answer within ForwardTimeout. Any other error (an answer too large
// or malformed) came from something that did answer, or from this node's own
// connection limit to a busy owner.
func unreachable(err error) bool {
	var ne net.Error // dial errors (refused, unresolvable, timed out), resets, I/O timeouts
	return errors.As(err, &ne) || errors.Is(err, fasthttp.ErrDialTimeout) || errors.Is(err, fasthttp.ErrTimeout) ||
		errors.Is(err, fasthttp.ErrConnectionClosed) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// runInsteadOf admits a write here whose owner o gave no answer (refused,
// timed out, connection lost): an AP registry does not refuse a write while
// a node is up (DESIGN "Availability of writes"). The write is applied here
// at a new version and pushed to every peer, the owner included once it is
// back; the merge and verify's send-back of what an owner lacks reconcile it,
// and the owner, or whoever inherits its partitions, expires it. An owner
// that answered, even with an error, decides: its answer is relayed.
//
// A node that has not loaded its snapshot refuses instead: it does not know
// the service, so a write built on nothing here (an implicit creation with
// default fields at a new version) would override what the cluster holds.
func (r *Registry) runInsteadOf(ctx *fasthttp.RequestCtx, o Owner, ferr error) error {
	if !r.cluster.Ready() {
		r.stats.forwarded.WithLabelValues("error").Inc()
		return httpx.Errorf(fasthttp.StatusServiceUnavailable,
			"owner %s (%s) of this service is unreachable (%v) and this node is still loading", o.Name, o.HTTPAddr, ferr)
	}
	if err := r.runHere(); err != nil {
		r.stats.forwarded.WithLabelValues("error").Inc()
		return err
	}
	r.stats.forwarded.WithLabelValues("applied_here").Inc()
	r.log.Warn("owner unreachable: write applied here", "owner", o.Name, "addr", o.HTTPAddr,
		"path", string(ctx.Path()), "err", ferr)
	return nil
}

// runHere admits a write that would execute on this node: not while the node
// is stalled (stall.go), checked now, in the request, because requests that
// queued during a stop are served before the stall ticker runs again.
func (r *Registry) runHere() error {
	if r.stalled(r.now()) {
		return ErrStalled
	}
	return nil
}

// forward sends the request unchanged to the owner and returns its answer,
// whatever its status; an error means that no answer came.
func (r *Registry) forward(ctx *fasthttp.RequestCtx, o Owner) (*relayed, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)

	ctx.Request.Header.CopyTo(&req.Header)
	// The path and query only: a client may send the absolute form (POST http://host/path).
	req.SetRequestURI("http://" + o.HTTPAddr + string(ctx.URI().RequestURI()))
	req.Header.SetHost(o.HTTPAddr)
	req.Header.Set(HeaderForwarded, "1")
	if r.cfg.Secret != "" {
		req.Header.Set(HeaderSecret, r.cfg.Secret)
	}
	req.SetBody(ctx.PostBody())

	err := r.fwd.DoTimeout(req, resp, r.cfg.ForwardTimeout)
	if err != nil {
		return nil, err
	}
	r.stats.forwarded.WithLabelValues("ok").Inc()
	return &relayed{
		status:      resp.StatusCode(),
		contentType: string(resp.Header.ContentType()),
		body:        append([]byte(nil), resp.Body()...),
	}, nil
}

// write runs a local write to key: build gets the current service (nil when
// unknown) and a fresh version, and returns the delta to merge (nil: nothing
// to write). The delta is applied, distro is told, subscribers are pushed.
func (r *Registry) write(key string, build func(cur *Service, v uint64) (*Service, error)) error {
	changed := false
	defer func() {
		if changed {
			r.changes.notify(key) // runs after the deferred Unlock below: outside the registry's locks
		}
	}()
	l := r.lockFor(key)
	l.Lock()
	defer l.Unlock()
	var cur *Service
	var curVersion uint64
	old := r.entry(key)
	if old != nil {
		cur, curVersion = old.service(), old.datum.Version // the highest version anywhere in cur (newEntry)
	}
	// The clock normally exceeds every version it has seen; be safe anyway,
	// since a write must beat the state it was built from. Saturating: at
	// 2^64-1 the write ties rather than wrapping to a version everything outranks.
	v := r.cluster.NextVersion()
	if curVersion < math.MaxUint64 {
		v = max(v, curVersion+1)
	}
	delta, err := build(cur, v)
	if err != nil || delta == nil {
		return err
	}
	changed, _, _, err = r.mergeWriteLocked(key, old, cur, delta)
	if err != nil {
		return err
	}
	if changed {
		r.cluster.Changed(key)
	}
	return nil
}
