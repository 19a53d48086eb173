package distro

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ClientConfig configures the peer client.
type ClientConfig struct {
	// Secret is sent in X-Distrod-Secret on every request when set.
	Secret string
	// Name and Incarnation identify the sending node and its process in
	// X-Distrod-Sender and X-Distrod-Incarnation on every request when set;
	// receivers with an HTTPConfig.Sender refuse pushes and checksums
	// without them.
	Name, Incarnation string
	// Timeout bounds each push, query and checksum request (and the connect
	// and request write of a snapshot). Default 5 s.
	Timeout time.Duration
	// MaxResponseBytes caps a query or checksum answer. Default 64 MiB.
	MaxResponseBytes int
	// MaxRequestBytes splits push batches whose encoding is larger into
	// several requests; keep it at most the peers' HTTPConfig.MaxBodyBytes.
	// Default 16 MiB.
	MaxRequestBytes int
	// MaxConnsPerHost caps connections to one peer. Default 16: one worker,
	// one verify exchange and the queries it triggers rarely need more.
	MaxConnsPerHost int
	// SnapshotIdleTimeout fails a snapshot stream that delivers no byte for
	// this long; the stream as a whole has no time or size limit. Default 30 s.
	SnapshotIdleTimeout time.Duration
	// MaxIdleConnDuration closes keep-alive connections idle this long. Default 10 s.
	MaxIdleConnDuration time.Duration
}

// DefaultClientConfig returns the defaults.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Timeout:             5 * time.Second,
		MaxResponseBytes:    64 << 20,
		MaxRequestBytes:     16 << 20,
		MaxConnsPerHost:     16,
		SnapshotIdleTimeout: 30 * time.Second,
		MaxIdleConnDuration: 10 * time.Second,
	}
}

func (c ClientConfig) withDefaults() ClientConfig {
	def := DefaultClientConfig()
	orDefault(&c.Timeout, def.Timeout)
	orDefault(&c.MaxResponseBytes, def.MaxResponseBytes)
	orDefault(&c.MaxRequestBytes, def.MaxRequestBytes)
	orDefault(&c.MaxConnsPerHost, def.MaxConnsPerHost)
	orDefault(&c.SnapshotIdleTimeout, def.SnapshotIdleTimeout)
	orDefault(&c.MaxIdleConnDuration, def.MaxIdleConnDuration)
	return c
}

// orDefault sets *v to def when it is zero or negative (unset).
func orDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// CallStats counts the requests of one kind and their bytes on the wire
// (headers and bodies).
type CallStats struct {
	Calls         uint64 `json:"calls"`
	Errors        uint64 `json:"errors"`
	BytesSent     uint64 `json:"bytesSent"`
	BytesReceived uint64 `json:"bytesReceived"`
}

// Bytes is the traffic in both directions.
func (s CallStats) Bytes() uint64 { return s.BytesSent + s.BytesReceived }

// Sub is the difference s - o, for measuring one round.
func (s CallStats) Sub(o CallStats) CallStats {
	return CallStats{s.Calls - o.Calls, s.Errors - o.Errors, s.BytesSent - o.BytesSent, s.BytesReceived - o.BytesReceived}
}

// ClientStats counts a client's requests per call type.
type ClientStats struct {
	Push     CallStats `json:"push"`
	Query    CallStats `json:"query"`
	Checksum CallStats `json:"checksum"`
	Snapshot CallStats `json:"snapshot"`
}

// Sub is the difference s - o.
func (s ClientStats) Sub(o ClientStats) ClientStats {
	return ClientStats{s.Push.Sub(o.Push), s.Query.Sub(o.Query), s.Checksum.Sub(o.Checksum), s.Snapshot.Sub(o.Snapshot)}
}

// Verify is the traffic of verify rounds: checksums and the queries they trigger.
func (s ClientStats) Verify() CallStats {
	return CallStats{
		s.Checksum.Calls + s.Query.Calls, s.Checksum.Errors + s.Query.Errors,
		s.Checksum.BytesSent + s.Query.BytesSent, s.Checksum.BytesReceived + s.Query.BytesReceived,
	}
}

type callCounters struct {
	calls, errors, sent, received atomic.Uint64
}

func (c *callCounters) load() CallStats {
	return CallStats{c.calls.Load(), c.errors.Load(), c.sent.Load(), c.received.Load()}
}

// StatusError is a peer's answer outside 2xx.
type StatusError struct {
	// Op names the request, e.g. "push to n2".
	Op string
	// Status is the HTTP status code.
	Status int
	// Body is the start of the answer's body.
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s: status %d: %s", e.Op, e.Status, e.Body)
}

const maxErrorBody = 256

// Client is the fasthttp Transport between distro peers.
type Client struct {
	cfg    ClientConfig
	hc     *fasthttp.Client // push, query, checksum; snapshots get their own connection
	push   callCounters
	query  callCounters
	check  callCounters
	snap   callCounters
	closed atomic.Bool
}

var _ Transport = (*Client)(nil)

// ErrClientClosed is returned by a Client after Close.
var ErrClientClosed = errors.New("distro: client closed")

// NewClient builds a peer client.
func NewClient(cfg ClientConfig) *Client {
	cfg = cfg.withDefaults()
	c := &Client{cfg: cfg}
	c.hc = &fasthttp.Client{
		Name:                "distrod",
		ReadTimeout:         cfg.Timeout,
		WriteTimeout:        cfg.Timeout,
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
		MaxConnWaitTimeout:  cfg.Timeout,
		MaxIdleConnDuration: cfg.MaxIdleConnDuration,
		MaxResponseBodySize: cfg.MaxResponseBytes,
		Dial:                func(addr string) (net.Conn, error) { return fasthttp.DialTimeout(addr, cfg.Timeout) },
	}
	return c
}

// Stats returns the bytes and calls counted so far.
func (c *Client) Stats() ClientStats {
	return ClientStats{Push: c.push.load(), Query: c.query.load(), Checksum: c.check.load(), Snapshot: c.snap.load()}
}

// Close closes idle connections; later calls fail with ErrClientClosed.
// Requests in flight finish (each is bounded by its timeout).
func (c *Client) Close() {
	c.closed.Store(true)
	c.hc.CloseIdleConnections()
}

func peerURL(p Peer, path string) string {
	if strings.Contains(p.Addr, "://") {
		return strings.TrimSuffix(p.Addr, "/") + path
	}
	return "http://" + p.Addr + path
}

// Push sends batch to a peer, split into requests of at most
// MaxRequestBytes. A datum beyond the wire limits fails the push with
// ErrTooLarge before anything is sent.
func (c *Client) Push(ctx context.Context, to Peer, batch []Datum) error {
	for _, d := range batch {
		if err := checkDatum(d); err != nil {
			return fmt.Errorf("push to %s: %w", to.Name, err)
		}
	}
	for len(batch) > 0 {
		n, size := 0, codecHeaderBytes+10
		for n < len(batch) && n < MaxBatchLen {
			ds := datumSize(batch[n])
			if n > 0 && size+ds > c.cfg.MaxRequestBytes {
				break
			}
			size += ds
			n++
		}
		body, err := encodeBatch(batch[:n])
		if err != nil {
			return fmt.Errorf("push to %s: %w", to.Name, err)
		}
		err = c.do(ctx, &c.push, "push to "+to.Name, fasthttp.MethodPut, peerURL(to, PathDatum), body, nil)
		if err != nil {
			return err
		}
		batch = batch[n:]
	}
	return nil
}

// Query fetches the peer's datums for keys.
func (c *Client) Query(ctx context.Context, to Peer, keys []string) ([]Datum, error) {
	op := "query " + to.Name
	body, err := encodeKeys(keys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var out []Datum
	err = c.do(ctx, &c.query, op, fasthttp.MethodPost, peerURL(to, PathQuery), body, func(b []byte) error {
		out, err = decodeBatch(b)
		return err
	})
	return out, err
}

// Checksum delivers one verify message and returns the peer's mismatches.
func (c *Client) Checksum(ctx context.Context, to Peer, req ChecksumRequest) (ChecksumResponse, error) {
	op := "checksum to " + to.Name
	body, err := encodeChecksumRequest(req)
	if err != nil {
		return ChecksumResponse{}, fmt.Errorf("%s: %w", op, err)
	}
	u := peerURL(to, PathChecksum) + "?source=" + url.QueryEscape(req.Source)
	var out ChecksumResponse
	err = c.do(ctx, &c.check, op, fasthttp.MethodPut, u, body, func(b []byte) error {
		out, err = decodeChecksumResponse(b)
		return err
	})
	return out, err
}

// do runs one buffered request. The deadline is the earlier of ctx's and
// Timeout; fasthttp cannot abort a request when ctx is cancelled, so a
// cancelled call may take up to Timeout to return.
func (c *Client) do(ctx context.Context, cnt *callCounters, op, method, u string, body []byte,
	decode func([]byte) error) (err error) {
	cnt.calls.Add(1)
	defer func() {
		if err != nil {
			cnt.errors.Add(1)
		}
	}()
	if c.closed.Load() {
		return fmt.Errorf("%s: %w", op, ErrClientClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.prepare(req, method, u)
	req.SetBodyRaw(body)

	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	err = c.hc.DoDeadline(req, resp, deadline)
	cnt.sent.Add(uint64(len(req.Header.Header()) + len(body)))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	cnt.received.Add(uint64(len(resp.Header.Header()) + len(resp.Body())))
	if sc := resp.StatusCode(); sc < 200 || sc > 299 {
		return &StatusError{Op: op, Status: sc, Body: snippet(resp.Body())}
	}
	if decode != nil {
		if err := decode(resp.Body()); err != nil {
			return fmt.Errorf("%s: decode answer: %w", op, err)
		}
	}
	return nil
}

func (c *Client) prepare(req *fasthttp.Request, method, u string) {
	req.Header.SetMethod(method)
	req.SetRequestURI(u)
	req.Header.SetContentType(contentType)
	if c.cfg.Secret != "" {
		req.Header.Set(SecretHeader, c.cfg.Secret)
	}
	if c.cfg.Name != "" {
		req.Header.Set(SenderHeader, c.cfg.Name)
		req.Header.Set(IncarnationHeader, c.cfg.Incarnation)
	}
}

func snippet(b []byte) string {
	if len(b) > maxErrorBody {
		return string(b[:maxErrorBody]) + "..."
	}
	return string(b)
}

// Snapshot streams every datum of the peer to fn, frame by frame, with no
// size limit. The stream fails when ctx ends, when no byte arrives for
// SnapshotIdleTimeout, or when fn returns an error. It returns the peer's
// origin, sent at the start of the stream, once the stream is complete.
func (c *Client) Snapshot(ctx context.Context, from Peer, fn func(Datum) error) (origin Origin, err error) {
	op := "snapshot from " + from.Name
	c.snap.calls.Add(1)
	defer func() {
		if err != nil {
			c.snap.errors.Add(1)
			err = fmt.Errorf("%s: %w", op, err)
		}
	}()
	if c.closed.Load() {
		return Origin{}, ErrClientClosed
	}
	if err := ctx.Err(); err != nil {
		return Origin{}, err
	}
	u := peerURL(from, PathSnapshot)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c.prepare(req, fasthttp.MethodGet, u)
	req.SetConnectionClose() // a snapshot is rare and long: its own connection

	// The call owns its connection, so ending ctx can close it and abort the
	// request at any stage: connecting, awaiting the answer, or streaming.
	conn := &snapshotConn{}
	closing := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closing)
		conn.abort()
	})
	defer func() {
		if !stop() {
			<-closing
		}
	}()
	hc := &fasthttp.HostClient{
		Addr:               string(req.URI().Host()),
		IsTLS:              string(req.URI().Scheme()) == "https",
		Name:               "distrod",
		WriteTimeout:       c.cfg.Timeout,
		ReadBufferSize:     64 << 10,
		StreamResponseBody: true,
		Dial: func(addr string) (net.Conn, error) {
			nc, err := fasthttp.DialTimeout(addr, c.cfg.Timeout)
			if err != nil {
				return nil, err
			}
			return conn.set(&idleConn{Conn: nc, idle: c.cfg.SnapshotIdleTimeout})
		},
	}
	// A deadline on ctx bounds the whole stream; otherwise only idleness does.
	if d, ok := ctx.Deadline(); ok {
		err = hc.DoDeadline(req, resp, d)
	} else {
		err = hc.Do(req, resp)
	}
	c.snap.sent.Add(uint64(len(req.Header.Header())))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return Origin{}, fmt.Errorf("%w (%v)", cerr, err)
		}
		return Origin{}, err
	}
	c.snap.received.Add(uint64(len(resp.Header.Header())))
	stream, ok := resp.BodyStream().(fasthttp.ReadCloserWithError)
	if !ok || stream == nil {
		// No stream (an empty or buffered body): read what there is.
		body := resp.Body()
		c.snap.received.Add(uint64(len(body)))
		if sc := resp.StatusCode(); sc != fasthttp.StatusOK {
			return Origin{}, &StatusError{Op: op, Status: sc, Body: snippet(body)}
		}
		return readSnapshot(ctx, bytes.NewReader(body), fn)
	}
	defer func() { _ = stream.CloseWithError(err) }()

	body := &countingReader{r: stream, n: &c.snap.received}
	if sc := resp.StatusCode(); sc != fasthttp.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(body, maxErrorBody))
		return Origin{}, &StatusError{Op: op, Status: sc, Body: snippet(b)}
	}
	return readSnapshot(ctx, body, fn)
}

// readSnapshot feeds every datum of the stream to fn and returns the sender's
// origin once the stream ended complete.
func readSnapshot(ctx context.Context, r io.Reader, fn func(Datum) error) (Origin, error) {
	sr := newSnapshotReader(r)
	for {
		d, err := sr.Next()
		if errors.Is(err, io.EOF) {
			return sr.origin, nil
		}
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return Origin{}, fmt.Errorf("%w (%v)", cerr, err)
			}
			return Origin{}, err
		}
		if err := fn(d); err != nil {
			return Origin{}, err
		}
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Uint64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(uint64(n))
	return n, err
}

// snapshotConn is the connection of one snapshot call, closed when its
// context ends; a dial after that fails.
type snapshotConn struct {
	mu      sync.Mutex
	c       net.Conn
	aborted bool
}

func (s *snapshotConn) set(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.aborted {
		_ = c.Close()
		return nil, context.Canceled
	}
	s.c = c
	return c, nil
}

func (s *snapshotConn) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.aborted = true
	if s.c != nil {
		_ = s.c.Close()
	}
}

// idleConn turns a connection's read deadline into an idle timeout: each
// Read must make progress within idle, and never past a deadline fasthttp set.
type idleConn struct {
	net.Conn
	idle time.Duration

	mu   sync.Mutex
	hard time.Time // the deadline fasthttp asked for; zero for none
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	dl := time.Now().Add(c.idle)
	if !c.hard.IsZero() && c.hard.Before(dl) {
		dl = c.hard
	}
	c.mu.Unlock()
	if err := c.Conn.SetReadDeadline(dl); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *idleConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.hard = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *idleConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.hard = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}
