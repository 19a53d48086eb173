package testutil

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message instead of
// failing the test; like the real one, it stops the calling goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// eventuallyOn runs Eventually on a fatalRecorder in its own goroutine (Fatalf
// ends that goroutine) and returns what Fatalf recorded, "" if it was not called.
func eventuallyOn(timeout time.Duration, what string, cond func() error) string {
	f := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(f, timeout, what, cond)
	}()
	<-done
	return f.msg
}

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	msg := eventuallyOn(5*time.Second, "three calls", func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("only %d calls", calls)
		}
		return nil
	})
	if msg != "" || calls != 3 {
		t.Fatalf("Fatalf %q after %d calls, want no failure after 3", msg, calls)
	}
}

func TestEventuallyFailsWithTheLastError(t *testing.T) {
	calls := 0
	start := time.Now()
	msg := eventuallyOn(30*time.Millisecond, "the impossible", func() error {
		calls++
		return fmt.Errorf("still false after %d calls", calls)
	})
	if el := time.Since(start); el < 30*time.Millisecond || el > 2*time.Second {
		t.Errorf("gave up after %v, want about 30ms", el)
	}
	want := fmt.Sprintf("the impossible: not within 30ms: still false after %d calls", calls)
	if msg != want || calls < 2 {
		t.Fatalf("Fatalf %q after %d calls, want %q", msg, calls, want)
	}
}

func TestPollReturnsTheLastError(t *testing.T) {
	errNo := errors.New("no")
	if err := Poll(0, func() error { return errNo }); err != errNo {
		t.Fatalf("Poll with timeout 0 = %v, want %v (cond runs once)", err, errNo)
	}
	if err := Poll(time.Second, func() error { return nil }); err != nil {
		t.Fatalf("Poll of a true condition = %v", err)
	}
}

func TestClosedLoopbackAddrRefusesDials(t *testing.T) {
	addr := ClosedLoopbackAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("address %q is not on 127.0.0.1", addr)
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded", addr)
	}
}
