package naming

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/valyala/fasthttp"
)

// Error is an API error carrying the HTTP status it is answered with. Nacos
// answers errors as plain text, so Msg is the whole response body.
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %s", e.Status, e.Msg) }

func errf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *Error {
	return errf(fasthttp.StatusBadRequest, format, args...)
}

// Sentinel API errors.
var (
	ErrNotReady      = &Error{Status: fasthttp.StatusServiceUnavailable, Msg: "server is not ready: loading snapshot"}
	ErrNoReadyMember = &Error{Status: fasthttp.StatusServiceUnavailable, Msg: "no ready member: the cluster has no member that owns this service"}
	ErrBadSecret     = &Error{Status: fasthttp.StatusUnauthorized, Msg: "forwarded request with a wrong or missing secret"}
)

// rawJSON is a handler result that is already JSON.
type rawJSON []byte

// relayed is a response copied from the owner of a forwarded write.
type relayed struct {
	status      int
	contentType string
	body        []byte
}

// handlerFunc is one API endpoint: it returns a value to render or an error.
type handlerFunc func(ctx *fasthttp.RequestCtx, p *params) (any, error)

// decorate turns a handlerFunc into a fasthttp handler (nsq's http_api.Decorate):
// strings are plain text, rawJSON and other values JSON, errors plain text
// with the status of their *Error (500 for anything else).
func (r *Registry) decorate(h handlerFunc) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		p := parseParams(ctx)
		v, err := h(ctx, p)
		if err != nil {
			r.renderError(ctx, err)
			return
		}
		render(ctx, v, r.log)
	}
}

func (r *Registry) renderError(ctx *fasthttp.RequestCtx, err error) {
	var e *Error
	if !errors.As(err, &e) {
		r.log.Error("request failed", "path", string(ctx.Path()), "err", err)
		e = &Error{Status: fasthttp.StatusInternalServerError, Msg: err.Error()}
	}
	ctx.Response.Reset()
	ctx.SetStatusCode(e.Status)
	ctx.SetContentType("text/plain; charset=utf-8")
	ctx.SetBodyString(e.Msg)
}

func render(ctx *fasthttp.RequestCtx, v any, log *slog.Logger) {
	switch v := v.(type) {
	case string:
		ctx.SetContentType("text/plain; charset=utf-8")
		ctx.SetBodyString(v)
	case rawJSON:
		ctx.SetContentType("application/json;charset=UTF-8")
		ctx.SetBody(v)
	case *listAnswer:
		ctx.SetContentType("application/json;charset=UTF-8")
		v.writeTo(&ctx.Response)
	case *relayed:
		ctx.SetStatusCode(v.status)
		if v.contentType != "" {
			ctx.SetContentType(v.contentType)
		}
		ctx.SetBody(v.body)
	default:
		b, err := json.Marshal(v)
		if err != nil {
			log.Error("encode response", "err", err)
			ctx.SetStatusCode(fasthttp.StatusInternalServerError)
			ctx.SetBodyString("encode response: " + err.Error())
			return
		}
		ctx.SetContentType("application/json;charset=UTF-8")
		ctx.SetBody(b)
	}
}
