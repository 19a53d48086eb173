package membership

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// bindRetries is how often a port-0 bind is retried: memberlist binds TCP and
// UDP on one port number, which another process may take in between (the
// same retry memberlist does when it builds its own transport).
const bindRetries = 10

// transport is memberlist's NetTransport whose outgoing TCP dials end when
// the membership stops, so Shutdown never waits out a join or reconnect
// attempt stuck in a dial to an unreachable host (TCPTimeout, 10 s on lan).
type transport struct {
	*memberlist.NetTransport
	ctx context.Context // cancelled by Shutdown before memberlist stops
}

var _ memberlist.NodeAwareTransport = (*transport)(nil)

// newTransport binds the gossip listeners on mc's bind address and port and,
// when the port was 0, writes the bound port back into mc (as memberlist does).
func newTransport(ctx context.Context, mc *memberlist.Config) (*transport, error) {
	nc := &memberlist.NetTransportConfig{
		BindAddrs: []string{mc.BindAddr},
		BindPort:  mc.BindPort,
		Logger:    mc.Logger,
	}
	tries := 1
	if mc.BindPort == 0 {
		tries = bindRetries
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			if mc.BindPort == 0 {
				mc.BindPort = nt.GetAutoBindPort()
				mc.AdvertisePort = mc.BindPort
			}
			return &transport{NetTransport: nt, ctx: ctx}, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, fmt.Errorf("bind gossip listeners: %w", err)
}

// DialTimeout dials like NetTransport's, but gives up when the membership stops.
func (t *transport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout dials like NetTransport's, but gives up when the membership stops.
func (t *transport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	return d.DialContext(t.ctx, "tcp", a.Addr)
}
