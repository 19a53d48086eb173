package daemon

import (
	"log/slog"
	"net"

	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// peerClient is distro's transport plus Close, which the node calls on shutdown.
type peerClient interface {
	distro.Transport
	Close()
	Stats() distro.ClientStats
}

// newPeerTransport is distro's fasthttp peer client, authenticated with the secret.
func newPeerTransport(cfg Config) peerClient {
	cc := distro.DefaultClientConfig()
	cc.Secret = cfg.Secret
	cc.Timeout = cfg.PeerTimeout
	return distro.NewClient(cc)
}

// newPeerHandler is distro's /distro/v1/* handler on the node's HTTP server; the
// server's limit for authenticated peer requests (bodyGate) and distro's body cap are the same setting.
// Without a secret, only member addresses (fromMember) reach the endpoints.
func newPeerHandler(e *distro.Engine, cfg Config, fromMember func(net.IP) bool, logger *slog.Logger) func(*fasthttp.RequestCtx) bool {
	hc := distro.DefaultHTTPConfig()
	hc.Secret = cfg.Secret
	hc.FromMember = fromMember
	hc.MaxBodyBytes = cfg.MaxPeerBodySize
	hc.Logger = logger.With("component", "distro")
	return e.HTTPHandler(hc)
}
