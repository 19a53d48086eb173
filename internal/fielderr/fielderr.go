// Package fielderr is the error a package's Config.Validate returns for one
// field, so that the daemon can name the field's place in its configuration
// tree and the CLI the flag that sets it. It imports only the standard library.
package fielderr

import "fmt"

// Error is a Validate error tied to one Config field.
type Error struct {
	Field string // the field of the package's Config at fault
	Err   error
}

// New is an Error for field with a formatted message; %w in format wraps as fmt.Errorf does.
func New(field, format string, args ...any) error {
	return &Error{Field: field, Err: fmt.Errorf(format, args...)}
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ConfigField names the Config field at fault.
func (e *Error) ConfigField() string { return e.Field }
