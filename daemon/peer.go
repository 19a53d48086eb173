package daemon

import (
	"context"
	"errors"
	"log/slog"

	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// peerClient is distro's transport plus Close, which the node calls on shutdown.
type peerClient interface {
	distro.Transport
	Close()
}

// errNoTransport is returned by the placeholder transport until distro's client is wired.
var errNoTransport = errors.New("distro peer transport not available")

// newPeerTransport is distro's peer client.
func newPeerTransport(cfg Config) peerClient { return noTransport{} }

// newPeerHandler is distro's /distro/v1/* handler on the node's HTTP server.
func newPeerHandler(e *distro.Engine, cfg Config, logger *slog.Logger) func(*fasthttp.RequestCtx) bool {
	return nil
}

type noTransport struct{}

func (noTransport) Close()                                                  {}
func (noTransport) Push(context.Context, distro.Peer, []distro.Datum) error { return errNoTransport }
func (noTransport) Query(context.Context, distro.Peer, []string) ([]distro.Datum, error) {
	return nil, errNoTransport
}
func (noTransport) Checksum(context.Context, distro.Peer, distro.ChecksumRequest) (distro.ChecksumResponse, error) {
	return distro.ChecksumResponse{}, errNoTransport
}
func (noTransport) Snapshot(context.Context, distro.Peer, func(distro.Datum) error) error {
	return errNoTransport
}
