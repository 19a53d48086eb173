package distro

import (
	"errors"
	"fmt"
)

// Errors of the peer protocol. They carry no transport status: the HTTP
// handler maps them to one in statusOf (http.go), the only such table.
var (
	// ErrInvalid is wrapped by every refusal of a malformed or inconsistent
	// peer request: undecodable, out of range, a datum without key or too far
	// ahead of this node's clock. Retrying the same request cannot succeed.
	ErrInvalid = errors.New("distro: invalid request")
	// ErrSenderRefused is wrapped when the sender a request names is not the
	// process this node knows by that name, or differs from the checksum's
	// source (HTTPConfig.Sender).
	ErrSenderRefused = errors.New("distro: sender refused")
	// ErrNoRing answers a checksum before this node has computed a ring.
	ErrNoRing = errors.New("distro: no ring yet")
)

// requestError is a refusal whose message is Msg alone, wrapping its kind
// (ErrInvalid, ErrSenderRefused) for errors.Is.
type requestError struct {
	kind error
	msg  string
}

func (e *requestError) Error() string { return e.msg }
func (e *requestError) Unwrap() error { return e.kind }

// invalid refuses a request with ErrInvalid and the formatted message.
func invalid(format string, args ...any) error {
	return &requestError{kind: ErrInvalid, msg: fmt.Sprintf(format, args...)}
}

// refused refuses a request's sender with ErrSenderRefused and the formatted message.
func refused(format string, args ...any) error {
	return &requestError{kind: ErrSenderRefused, msg: fmt.Sprintf(format, args...)}
}
