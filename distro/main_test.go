package distro

import (
	"fmt"
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines. fasthttp starts package-level cleaners
// (idle connections, worker pools, the server date) that sleep and exit on their
// own schedule and have no stop method; a leaked server or client request still
// shows up through its Serve, accept or request goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
	)
}

// loaded is nil once e has loaded a snapshot (or bootstrapped), else why not.
func loaded(e *Engine) error {
	if !e.Loaded() {
		return fmt.Errorf("still loading: %s", e.LoadingReason())
	}
	return nil
}
