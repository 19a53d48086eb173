package daemon

import (
	"context"
	"errors"

	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// errNoTransport is returned by the placeholder transport until distro's client is wired.
var errNoTransport = errors.New("distro peer transport not available")

// newPeerTransport is distro's peer client.
func newPeerTransport(cfg Config) distro.Transport { return noTransport{} }

// newPeerHandler is distro's /distro/v1/* handler on the node's HTTP server.
func newPeerHandler(e *distro.Engine, cfg Config) func(*fasthttp.RequestCtx) bool { return nil }

// setDistroMetrics registers distro's collectors on the node's registry.
func setDistroMetrics(dc *distro.Config, reg any) {}

type noTransport struct{}

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
