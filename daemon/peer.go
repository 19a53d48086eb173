package daemon

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/membership"
	"github.com/valyala/fasthttp"
)

// peerClient is distro's transport plus Close, which the node calls on shutdown.
type peerClient interface {
	distro.Transport
	Close()
	Stats() distro.ClientStats
}

// newPeerTransport is distro's fasthttp peer client, authenticated with the
// secret and naming this node's process (self's name and incarnation).
func newPeerTransport(cfg Config, self membership.Member) peerClient {
	cc := distro.DefaultClientConfig()
	cc.Secret = cfg.Secret
	cc.Timeout = cfg.Distro.RequestTimeout // one setting bounds a peer request on both sides of the engine
	cc.Name, cc.Incarnation = self.Name, self.Incarnation
	return distro.NewClient(cc)
}

// newPeerHandler is distro's /distro/v1/* handler on the node's HTTP server; the
// server's limit for authenticated peer requests (bodyGate) and distro's body cap are the same setting.
// Without a secret, only member addresses (fromMember) reach the endpoints; a push or
// checksum must come from the process the view knows by the sender's name.
func newPeerHandler(e *distro.Engine, cfg Config, fromMember func(net.IP) bool, members *membership.Membership, logger *slog.Logger) func(*fasthttp.RequestCtx) bool {
	hc := distro.DefaultHTTPConfig()
	hc.Secret = cfg.Secret
	hc.FromMember = fromMember
	hc.MaxBodyBytes = cfg.MaxPeerBodySize
	hc.Sender = knownSender(members)
	hc.Logger = logger.With("component", "distro")
	return e.HTTPHandler(hc)
}

// knownSender accepts pushes and checksums only from the process the view
// knows by the sender's name. A second process started under a member's
// name has another incarnation, so its verify messages cannot remove keys in
// the member's name nor its pushes overwrite them. A process the view has
// not learned yet (just restarted) is refused until it has; its pushes are
// retried and its checksums sent again next round.
func knownSender(members *membership.Membership) func(name, incarnation string) error {
	return func(name, incarnation string) error {
		mb, ok := members.Lookup(name)
		switch {
		case !ok:
			return fmt.Errorf("no member %s in this node's view", name)
		case mb.Incarnation != incarnation:
			return fmt.Errorf("not the process this node knows as %s (gossip %s): another process with this name, or a restart not seen yet",
				name, mb.GossipAddr)
		}
		return nil
	}
}
