package distro

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"
)

// Peer endpoints, served on the node's HTTP address.
const (
	PathDatum    = "/distro/v1/datum"       // PUT: push batch
	PathQuery    = "/distro/v1/datum/query" // POST: keys -> datums
	PathChecksum = "/distro/v1/checksum"    // PUT ?source=NAME: verify
	PathSnapshot = "/distro/v1/datums"      // GET: snapshot stream

	// SecretHeader carries the cluster secret on every peer request.
	SecretHeader = "X-Distrod-Secret"
	// SenderHeader and IncarnationHeader name the sending node and its
	// process (ClientConfig.Name, Incarnation) on every peer request.
	SenderHeader      = "X-Distrod-Sender"
	IncarnationHeader = "X-Distrod-Incarnation"

	pathPrefix = "/distro/"
	// snapshotFlushInterval bounds how long streamed datums wait in the
	// writer's buffer when the store produces them slowly.
	snapshotFlushInterval = 50 * time.Millisecond
	contentType           = "application/x-distrod-v1"
)

// HTTPConfig configures the peer endpoints.
type HTTPConfig struct {
	// Secret, when set, must arrive in the X-Distrod-Secret header of every
	// request; requests without it get 401 and change nothing.
	Secret string
	// FromMember, when set and Secret is not, admits only requests whose
	// remote IP it accepts (a current member's address); others get 403 and
	// change nothing. With a Secret, the secret alone authenticates.
	FromMember func(ip net.IP) bool
	// MaxBodyBytes caps a request body; larger ones get 413. The fasthttp
	// server must let bodies this large reach the peer paths (the daemon
	// sets their limit per request from the headers). Default 32 MiB.
	MaxBodyBytes int
	// Timeout bounds the engine's work on one checksum request. Default 30 s.
	Timeout time.Duration
	// Sender, when set, vets the sender a push or checksum names in
	// SenderHeader and IncarnationHeader: an error refuses the request (409,
	// nothing applied), and so does a request without them (400). The
	// daemon accepts only the process it knows by that name, so a second
	// process started under a member's name cannot overwrite or delete its
	// data. Nil accepts every sender.
	Sender func(name, incarnation string) error
	// Logger receives the handlers' logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultHTTPConfig returns the defaults: 32 MiB bodies hold a full push
// batch (MaxBatch datums of typical instance lists) with room to spare.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{MaxBodyBytes: 32 << 20, Timeout: 30 * time.Second}
}

func (c HTTPConfig) withDefaults() HTTPConfig {
	def := DefaultHTTPConfig()
	orDefault(&c.MaxBodyBytes, def.MaxBodyBytes)
	orDefault(&c.Timeout, def.Timeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// peerBackend is what the endpoints need from the engine; tests supply a fake.
type peerBackend interface {
	Loaded() bool
	HandlePush(batch []Datum) error
	HandleQuery(keys []string) []Datum
	HandleChecksum(ctx context.Context, req ChecksumRequest) (ChecksumResponse, error)
	HandleSnapshot(fn func(Datum) error) error
	Origin() Origin
}

type httpHandler struct {
	e      peerBackend
	cfg    HTTPConfig
	secret PeerSecret
	log    *slog.Logger
}

type route struct {
	method string
	handle func(*httpHandler, *fasthttp.RequestCtx) error
}

var routes = map[string]route{
	PathDatum:    {fasthttp.MethodPut, (*httpHandler).push},
	PathQuery:    {fasthttp.MethodPost, (*httpHandler).query},
	PathChecksum: {fasthttp.MethodPut, (*httpHandler).checksum},
	PathSnapshot: {fasthttp.MethodGet, (*httpHandler).snapshot},
}

// HTTPHandler serves the peer endpoints. It returns false, having written
// nothing, for a path outside /distro/ so the daemon can route it elsewhere.
// Every request is decoded in full before the engine sees it: a request that
// is unauthenticated, too large or malformed gets a 4xx and changes nothing.
func (e *Engine) HTTPHandler(cfg HTTPConfig) func(ctx *fasthttp.RequestCtx) bool {
	return newHTTPHandler(e, cfg)
}

func newHTTPHandler(e peerBackend, cfg HTTPConfig) func(ctx *fasthttp.RequestCtx) bool {
	cfg = cfg.withDefaults()
	h := &httpHandler{e: e, cfg: cfg, secret: NewPeerSecret(cfg.Secret), log: cfg.Logger.With("component", "distro-http")}
	return h.serve
}

// IsPeerPath reports whether path (as fasthttp normalises it) belongs to the
// peer endpoints, which HTTPHandler serves.
func IsPeerPath(path []byte) bool { return bytes.HasPrefix(path, []byte(pathPrefix)) }

// PeerSecret checks the cluster secret of a peer request from its header
// alone, so a server can decide before it reads the body (the daemon sizes
// body limits with it). The zero value accepts every request.
type PeerSecret struct {
	digest [sha256.Size]byte
	set    bool
}

// NewPeerSecret checks for secret; an empty secret accepts every request.
func NewPeerSecret(secret string) PeerSecret {
	if secret == "" {
		return PeerSecret{}
	}
	return PeerSecret{digest: sha256.Sum256([]byte(secret)), set: true}
}

// Authorized reports whether h carries the secret in X-Distrod-Secret (always
// true without one). It compares digests of the secrets in constant time, so
// neither the content nor the length of the secret leaks through timing.
func (s PeerSecret) Authorized(h *fasthttp.RequestHeader) bool {
	if !s.set {
		return true
	}
	got := h.Peek(SecretHeader)
	sum := sha256.Sum256(got)
	return len(got) > 0 && subtle.ConstantTimeCompare(sum[:], s.digest[:]) == 1
}

func (h *httpHandler) serve(ctx *fasthttp.RequestCtx) bool {
	path := ctx.Path()
	if !IsPeerPath(path) {
		return false
	}
	r, ok := routes[string(path)]
	switch {
	case !ok:
		h.refuse(ctx, http.StatusNotFound, "no distro endpoint "+string(path))
	case string(ctx.Method()) != r.method:
		h.refuse(ctx, http.StatusMethodNotAllowed, "use "+r.method+" for "+string(path))
		ctx.Response.Header.Set(fasthttp.HeaderAllow, r.method)
	case !h.authorized(ctx):
		h.refuse(ctx, http.StatusUnauthorized, "missing or wrong "+SecretHeader)
	case !h.fromMember(ctx):
		h.refuse(ctx, http.StatusForbidden, "peer requests are accepted only from the address of a current cluster member (or with the cluster secret)")
	case len(ctx.Request.Body()) > h.cfg.MaxBodyBytes:
		h.refuse(ctx, http.StatusRequestEntityTooLarge,
			fmt.Sprintf("body of %d bytes exceeds %d", len(ctx.Request.Body()), h.cfg.MaxBodyBytes))
	default:
		if err := r.handle(h, ctx); err != nil {
			h.fail(ctx, err)
		}
	}
	return true
}

func (h *httpHandler) authorized(ctx *fasthttp.RequestCtx) bool {
	return h.secret.Authorized(&ctx.Request.Header)
}

// fromMember applies HTTPConfig.FromMember: without a secret, the source
// address is the only evidence that a request comes from a peer.
func (h *httpHandler) fromMember(ctx *fasthttp.RequestCtx) bool {
	return h.cfg.Secret != "" || h.cfg.FromMember == nil || h.cfg.FromMember(ctx.RemoteIP())
}

// statusOf is the one map from the protocol's errors to HTTP statuses (etcd's
// togRPCError): the engine and the codec return typed errors, never statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrSenderRefused):
		return http.StatusConflict
	case errors.Is(err, ErrNotLoaded), errors.Is(err, ErrNoRing),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// fail answers err as plain text with its status (statusOf).
func (h *httpHandler) fail(ctx *fasthttp.RequestCtx, err error) {
	h.refuse(ctx, statusOf(err), err.Error())
}

// refuse answers msg as plain text with status: peers read it as the body
// of their StatusError.
func (h *httpHandler) refuse(ctx *fasthttp.RequestCtx, status int, msg string) {
	if status >= 500 {
		h.log.Warn("peer request failed", "path", string(ctx.Path()), "remote", ctx.RemoteAddr().String(), "err", msg)
	} else {
		h.log.Debug("peer request refused", "path", string(ctx.Path()), "remote", ctx.RemoteAddr().String(),
			"status", status, "err", msg)
	}
	ctx.Error(msg, status)
}

// sender vets the sender a push or checksum names (HTTPConfig.Sender) and
// returns its name; "" when no Sender is configured.
func (h *httpHandler) sender(ctx *fasthttp.RequestCtx) (string, error) {
	if h.cfg.Sender == nil {
		return "", nil
	}
	name := string(ctx.Request.Header.Peek(SenderHeader))
	incarnation := string(ctx.Request.Header.Peek(IncarnationHeader))
	if name == "" || incarnation == "" {
		return "", invalid("%s and %s are required: peer pushes and checksums name their sender",
			SenderHeader, IncarnationHeader)
	}
	if err := h.cfg.Sender(name, incarnation); err != nil {
		return "", refused("sender %q incarnation %q refused: %v", truncateKey(name), truncateKey(incarnation), err)
	}
	return name, nil
}

func (h *httpHandler) push(ctx *fasthttp.RequestCtx) error {
	if _, err := h.sender(ctx); err != nil {
		return err
	}
	batch, err := decodeBatch(ctx.Request.Body())
	if err != nil {
		return invalid("decode push batch: %v", err)
	}
	if err := h.e.HandlePush(batch); err != nil {
		return fmt.Errorf("apply push batch of %d: %w", len(batch), err)
	}
	ctx.SetStatusCode(http.StatusNoContent)
	return nil
}

func (h *httpHandler) query(ctx *fasthttp.RequestCtx) error {
	keys, err := decodeKeys(ctx.Request.Body())
	if err != nil {
		return invalid("decode query keys: %v", err)
	}
	body, err := encodeBatch(h.e.HandleQuery(keys))
	if err != nil {
		return fmt.Errorf("encode query answer: %w", err)
	}
	ctx.SetContentType(contentType)
	ctx.SetBody(body)
	return nil
}

func (h *httpHandler) checksum(ctx *fasthttp.RequestCtx) error {
	sender, err := h.sender(ctx)
	if err != nil {
		return err
	}
	req, err := decodeChecksumRequest(ctx.Request.Body())
	if err != nil {
		return invalid("decode checksum request: %v", err)
	}
	source := string(ctx.QueryArgs().Peek("source"))
	switch {
	case source == "" && req.Source == "":
		return invalid("source is required")
	case source != "" && req.Source != "" && source != req.Source:
		return invalid("source %q in the query differs from %q in the body", source, req.Source)
	case req.Source == "":
		req.Source = source
	}
	if sender != "" && req.Source != sender {
		// Verify removes keys in the source's name: only the source may send it.
		return refused("source %q differs from the sender %q", truncateKey(req.Source), truncateKey(sender))
	}
	cctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	resp, err := h.e.HandleChecksum(cctx, req)
	if err != nil {
		return fmt.Errorf("checksum from %s: %w", req.Source, err)
	}
	body, err := encodeChecksumResponse(resp)
	if err != nil {
		return fmt.Errorf("encode checksum answer: %w", err)
	}
	ctx.SetContentType(contentType)
	ctx.SetBody(body)
	return nil
}

// snapshot streams every datum as HandleSnapshot produces it; the whole
// snapshot is never held in memory. A failure after the first byte cannot
// change the status any more, so it ends the stream with an error frame.
func (h *httpHandler) snapshot(ctx *fasthttp.RequestCtx) error {
	if !h.e.Loaded() {
		return ErrNotLoaded
	}
	e, log := h.e, h.log
	ctx.SetContentType(contentType)
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		sw := newSnapshotWriter(w, e.Origin())
		skipped := 0
		// The header goes out at once so the peer sees the answer start;
		// then w flushes when full, or when the store is slow to produce.
		err := sw.Start()
		if err == nil {
			err = w.Flush()
		}
		lastFlush := time.Now()
		if err == nil {
			err = e.HandleSnapshot(func(d Datum) error {
				err := sw.Write(d)
				if errors.Is(err, ErrTooLarge) { // cannot travel; pushes refuse it too
					skipped++
					log.Warn("snapshot skips a datum beyond the wire limits", "key", truncateKey(d.Key), "err", err)
					return nil
				}
				if err == nil && time.Since(lastFlush) > snapshotFlushInterval {
					err, lastFlush = w.Flush(), time.Now()
				}
				return err
			})
		}
		if err != nil {
			log.Warn("snapshot stream failed", "sent", sw.n, "err", err)
			_ = sw.Fail(err)
		} else {
			err = sw.End()
		}
		if err == nil {
			err = w.Flush()
		}
		log.Debug("snapshot streamed", "datums", sw.n, "skipped", skipped, "err", err)
	})
	return nil
}

func truncateKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}
