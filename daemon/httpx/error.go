// Package httpx is the HTTP convention of distrod's front-ends (the ops
// endpoints and the Nacos API): handlers return (value, error), one
// decorator renders them through the front-end's Renderer, an *Error carries
// the status it is answered with, and a Router maps path → method → handler
// and answers 404 and 405 (with Allow) once. It imports nothing of ours.
package httpx

import (
	"fmt"
	"net/http"
)

// Error is an error answered with its HTTP status: Msg is the message the
// front-end renders (Nacos: the whole plain-text body; ops: {"error": Msg}).
// Body, when set, is rendered instead of the message by front-ends that
// answer values (the ops /health answers its JSON with a 503).
type Error struct {
	Status int
	Msg    string
	Body   any
}

func (e *Error) Error() string { return e.Msg }

// Errorf returns an *Error with status and the formatted message.
func Errorf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// BadRequest returns a 400 *Error with the formatted message.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, format, args...)
}
