package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/distrod/distrod/daemon/httpx"
	"github.com/distrod/distrod/daemon/naming"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/membership"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/valyala/fasthttp"
)

// Node is one distrod node: gossip membership, the responsibility ring,
// distro replication and the naming registry behind one HTTP server.
type Node struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener // the bound HTTP listener, served from Start
	httpAddr string       // the HTTP address published to peers

	members  *membership.Membership
	registry *naming.Registry
	engine   *distro.Engine
	peers    peerClient                      // distro's client to the other nodes
	peerHTTP func(*fasthttp.RequestCtx) bool // distro's /distro/v1/* handler
	bodies   *bodyGate                       // per-route body limits and the in-flight budget
	server   *fasthttp.Server
	ops      *httpx.Router // the ops endpoints
	prom     *prometheus.Registry
	metrics  *nodeMetrics

	view     atomic.Pointer[view] // the current ring and member addresses
	deadSeen map[string]bool      // members dead at the last rebuild (rebuild goroutine only)
	kick     chan struct{}        // coalesced "membership changed" signals for rebuildLoop
	stop     chan struct{}        // closed by Shutdown: stops the node's own goroutines
	closing  atomic.Bool          // set first thing in Shutdown: /health answers 503
	readySet atomic.Bool          // the ready flag was published in gossip

	wg           sync.WaitGroup // the node's own goroutines (rebuild loop, HTTP server)
	startOnce    sync.Once
	started      atomic.Bool
	shutdownOnce sync.Once
	shutdownErr  error
}

// New validates cfg, binds the HTTP and gossip listeners and builds every part
// of the node; nothing runs until Start. On error everything bound is released.
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	logger = logger.With("node", cfg.Name)
	n := &Node{
		cfg:  cfg,
		log:  logger.With("component", "daemon"),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		prom: prometheus.NewRegistry(),
	}
	var cleanup []func() // releases what was bound, in reverse, when New fails
	ok := false
	defer func() {
		if !ok {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	var err error

	n.ln, err = net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return nil, &FieldError{Field: "HTTPAddr", Err: fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)}
	}
	cleanup = append(cleanup, func() { _ = n.ln.Close() })
	n.httpAddr = publishedHTTPAddr(n.ln.Addr().String(), cfg.Membership.AdvertiseAddr, cfg.Membership.BindAddr)

	n.prom.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.metrics = newNodeMetrics(n.prom, n.Ready)

	n.members, err = membership.New(cfg.membershipConfig(n.httpAddr, n.membershipChanged, logger))
	if err != nil {
		if gossipBindFailed(err) {
			return nil, &FieldError{Field: "Membership.BindAddr", Err: err}
		}
		return nil, fmt.Errorf("membership: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.members.Shutdown(context.Background()) })

	udpAddr := cfg.Registry.UDPAddr
	if udpAddr == "" {
		host, _, _ := net.SplitHostPort(n.ln.Addr().String())
		udpAddr = net.JoinHostPort(host, "0")
	}
	rc := cfg.registryConfig(udpAddr, logger, n.prom)
	n.registry, err = naming.New(rc, (*cluster)(n))
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	cleanup = append(cleanup, func() { _ = n.registry.Shutdown(context.Background()) })

	dc := cfg.distroConfig(logger, n.prom)
	n.peers = newPeerTransport(cfg, n.members.Local())
	cleanup = append(cleanup, n.peers.Close)
	n.prom.MustRegister(newPeerTrafficCollector(n.peers.Stats))
	// Fault injection wraps the transport only when a test asks for it (ratios of 0 return it unchanged).
	tr := distro.DropPushes(distro.LosePushes(n.peers, cfg.FaultLosePushRatio, cfg.FaultSeed), cfg.FaultDropPushRatio, cfg.FaultSeed+1)
	n.engine, err = distro.New(dc, n.registry, tr)
	if err != nil {
		return nil, fmt.Errorf("distro: %w", err)
	}
	n.peerHTTP = newPeerHandler(n.engine, cfg, n.memberAddr, n.members, logger)
	n.engine.OnLoaded(n.markReady)

	n.ops = n.opsRoutes()
	n.bodies = newBodyGate(cfg, n.prom)
	n.server = &fasthttp.Server{
		Name:         "distrod",
		Handler:      n.serveHTTP,
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout,
		IdleTimeout:  cfg.IdleTimeout,
		// The request line and headers must fit in the read buffer.
		ReadBufferSize: cfg.MaxRequestHeaderBytes,
		// Every request gets its limit from bodyGate; this one applies only if it did not run.
		MaxRequestBodySize: cfg.MaxClientBodySize,
		HeaderReceived:     n.bodies.headerReceived,
		ExpectHandler:      n.bodies.expectContinue,
		// No route takes multipart forms; unparsed, such a body is one more sized, budgeted body
		// instead of temporary files fasthttp would write for large parts.
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{n.log},
		ErrorHandler:                 n.serverError,
	}
	ok = true
	return n, nil
}

// publishedHTTPAddr is the HTTP address peers and clients should use: the bound
// address, or, when it binds every interface, the advertised (or gossip) host with the bound port.
func publishedHTTPAddr(bound, advertise, gossip string) string {
	host, port, _ := net.SplitHostPort(bound)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return bound
	}
	for _, a := range []string{advertise, gossip} {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				return net.JoinHostPort(h, port)
			}
		}
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// Name is the node's name.
func (n *Node) Name() string { return n.cfg.Name }

// HTTPAddr is the HTTP address peers and clients use (the real port when HTTPAddr had port 0).
func (n *Node) HTTPAddr() string { return n.httpAddr }

// GossipAddr is the bound gossip address.
func (n *Node) GossipAddr() string { return n.members.GossipAddr() }

// Failed is closed when the node cannot take part in the cluster: a live
// node holds its name at another address (membership.NameConflictError).
// Err says why; the node stays out of the cluster and should be shut down.
func (n *Node) Failed() <-chan struct{} { return n.members.Failed() }

// Err is the reason Failed was closed, nil before.
func (n *Node) Err() error { return n.members.Err() }

// Ready reports whether the node serves: its snapshot is loaded, it has a ring
// to route writes by (built just after the ready flag is published), and it is
// not shutting down.
func (n *Node) Ready() bool { return !n.closing.Load() && n.engine.Loaded() && n.Ring() != nil }

// Start launches the HTTP server, membership, the rebuild loop, distro and
// the registry. Calling it again does nothing.
func (n *Node) Start() {
	n.startOnce.Do(func() {
		if n.closing.Load() {
			return
		}
		n.started.Store(true)
		n.wg.Add(2)
		go func() {
			defer n.wg.Done()
			if err := n.server.Serve(n.ln); err != nil {
				n.log.Error("http server stopped", "err", err)
			}
		}()
		go n.rebuildLoop()
		n.engine.Start()
		n.registry.Start()
		n.members.Start()
		n.log.Info("node started", "http", n.httpAddr, "gossip", n.members.GossipAddr(),
			"join", n.cfg.Membership.Join, "profile", n.cfg.Membership.Profile)
		if exposed := nonLoopback(n.ln.Addr().String(), n.members.GossipAddr()); n.cfg.Secret == "" && len(exposed) > 0 {
			n.log.Warn("listening beyond loopback without a cluster secret (--secret): gossip is not encrypted, "+
				"and peer requests and forwarded writes are trusted by source address alone, which a host on the network may share or spoof",
				"addrs", exposed)
		}
		if n.engine.Loaded() {
			n.markReady()
		}
		n.membershipChanged()
	})
}

// markReady publishes the ready flag in gossip once the snapshot is loaded;
// the node then enters Ready() and, through the next rebuild, the ring.
func (n *Node) markReady() {
	if n.closing.Load() || !n.started.Load() || n.readySet.Swap(true) {
		return
	}
	if err := n.members.SetReady(true); err != nil {
		n.readySet.Store(false)
		n.log.Error("publish ready flag", "err", err)
		return
	}
	n.log.Info("node ready")
	n.membershipChanged()
}

// Shutdown marks the node not ready, leaves gossip gracefully, stops distro,
// the registry and the HTTP server, and waits for every goroutine. It is
// idempotent: later calls return the first call's result.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		n.closing.Store(true)
		n.log.Info("node shutting down")
		var errs []error
		// Leaving is best effort: when the leave message cannot be confirmed (the
		// peers are stopping too) they detect the node as failed instead.
		if err := n.members.Shutdown(ctx); err != nil {
			n.log.Warn("graceful leave incomplete", "err", err)
		}
		close(n.stop) // the rebuild loop stops before the parts it drives
		if n.started.Load() {
			if err := n.server.ShutdownWithContext(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http server: %w", err))
			}
		} else {
			_ = n.ln.Close()
		}
		n.wg.Wait()
		if err := n.engine.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("distro: %w", err))
		}
		n.peers.Close()
		if err := n.registry.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("registry: %w", err))
		}
		n.shutdownErr = errors.Join(errs...)
		n.log.Info("node stopped", "err", n.shutdownErr)
	})
	return n.shutdownErr
}

// nonLoopback returns the addresses whose host is not a loopback IP (an
// unspecified host listens on every interface, so it counts).
func nonLoopback(addrs ...string) []string {
	var out []string
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil || !ap.Addr().Unmap().IsLoopback() {
			out = append(out, a)
		}
	}
	return out
}

// gossipBindFailed tells a failure to bind the gossip address. memberlist
// formats its listener errors with %v, so the cause is only in the text.
func gossipBindFailed(err error) bool {
	if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EACCES) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "could not set up network transport") ||
		strings.Contains(msg, "address already in use")
}

// serverError answers requests fasthttp could not read, before any handler:
// a body the headers showed too large for its route or for the budget is
// refused by bodyGate (fasthttp's default says 400 for everything).
func (n *Node) serverError(ctx *fasthttp.RequestCtx, err error) {
	t, ok := n.bodies.take(&ctx.Request.Header)
	n.bodies.release(t)
	if !ok {
		t = n.bodies.classify(&ctx.Request.Header) // a refusal that reserved nothing
	}
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		n.bodies.refuse(ctx, t)
	case errors.As(err, &small):
		ctx.Error(fmt.Sprintf("request line and headers too large (limit %d bytes)", n.cfg.MaxRequestHeaderBytes),
			fasthttp.StatusRequestHeaderFieldsTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		ctx.Error("request timeout", fasthttp.StatusRequestTimeout)
	default:
		ctx.Error("malformed request: "+err.Error(), fasthttp.StatusBadRequest)
	}
}

// fasthttpLogger bridges fasthttp's logger into slog.
type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if strings.Contains(msg, fasthttp.ErrBodyTooLarge.Error()) {
		// Answered from the headers (bodyGate) and counted in distrod_http_bodies_refused_total;
		// at Warn, a flood of such requests would flood the log too.
		f.l.Debug(msg, "source", "fasthttp")
		return
	}
	f.l.Warn(msg, "source", "fasthttp")
}
