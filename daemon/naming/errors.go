package naming

import (
	"encoding/json"
	"log/slog"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// Sentinel API errors.
var (
	ErrNotReady      = &httpx.Error{Status: fasthttp.StatusServiceUnavailable, Msg: "server is not ready: loading snapshot"}
	ErrNoReadyMember = &httpx.Error{Status: fasthttp.StatusServiceUnavailable, Msg: "no ready member: the cluster has no member that owns this service"}
	ErrBadSecret     = &httpx.Error{Status: fasthttp.StatusUnauthorized, Msg: "forwarded request with a wrong or missing secret"}
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

// api adapts a handlerFunc to the router: it parses the request's params first.
func api(h handlerFunc) httpx.Handler {
	return func(ctx *fasthttp.RequestCtx) (any, error) { return h(ctx, parseParams(ctx)) }
}

// nacosText renders the Nacos API as Nacos does: errors as plain text, the
// message alone; strings as plain text, rawJSON and other values as JSON.
type nacosText struct{ log *slog.Logger }

func (n nacosText) Value(ctx *fasthttp.RequestCtx, v any) { render(ctx, v, n.log) }

func (nacosText) Error(ctx *fasthttp.RequestCtx, e *httpx.Error) {
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
