// Package testutil holds the helpers the tests of distrod's packages and of the
// e2e module share. Only tests import it. It imports the standard library
// alone: the e2e module requires this one for it, and any other import here
// would become a dependency of e2e too.
package testutil

import (
	"net"
	"testing"
	"time"
)

// PollInterval is how often Poll and Eventually check their condition again.
const PollInterval = 10 * time.Millisecond

// Poll calls cond every PollInterval until it returns nil or timeout passes,
// and returns cond's last error: nil when the condition came true in time.
// cond runs at least once, and once more after the deadline has passed.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(PollInterval)
	}
}

// Eventually waits until cond returns nil, polling as Poll does. When timeout
// passes first it fails t with what and cond's last error, which says why the
// condition does not hold yet.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("%s: not within %s: %v", what, timeout, err)
	}
}

// ClosedLoopbackAddr is a 127.0.0.1 host:port nothing listens on (a TCP dial to
// it is refused): it listens on port 0, reads the address back and closes.
func ClosedLoopbackAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("close %s: %v", addr, err)
	}
	return addr
}
