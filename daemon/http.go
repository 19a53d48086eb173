package daemon

import (
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

// apiHandler serves one ops endpoint: it returns a value rendered as JSON, or an error.
type apiHandler func(ctx *fasthttp.RequestCtx) (any, error)

// route is one (path, method) entry: either an apiHandler, rendered by decorate, or a raw handler.
type route struct {
	api apiHandler
	raw fasthttp.RequestHandler
}

// HTTPError is an error with the HTTP status it is answered with. When Body is
// set it is rendered as the JSON response instead of {"error": msg}.
type HTTPError struct {
	Status int
	Msg    string
	Body   any
}

func (e *HTTPError) Error() string { return e.Msg }

// serveHTTP is the node's one fasthttp handler: distro's peer endpoints first,
// then the Nacos API, then the ops endpoints.
func (n *Node) serveHTTP(ctx *fasthttp.RequestCtx) {
	t, _ := n.bodies.take(&ctx.Request.Header)
	defer func() {
		n.bodies.release(t)
		if t.reserved > int64(n.cfg.MaxClientBodySize) {
			// fasthttp keeps a connection's body buffer for its next request;
			// a large one would stay parked, outside the budget, while idle.
			ctx.Request.SwapBody(nil)
		}
	}()
	if t.busy {
		n.bodies.refuse(ctx, t)
		return
	}
	if n.peerHTTP != nil && n.peerHTTP(ctx) {
		return
	}
	if n.registry.Handle(ctx) {
		return
	}
	methods, ok := n.routes[string(ctx.Path())]
	if !ok {
		writeJSON(ctx, fasthttp.StatusNotFound, errorBody("no such endpoint: "+string(ctx.Path())))
		return
	}
	method := string(ctx.Method())
	r, ok := methods[method]
	if !ok && method == fasthttp.MethodHead {
		r, ok = methods[fasthttp.MethodGet]
	}
	if !ok {
		allowed := make([]string, 0, len(methods))
		for m := range methods {
			allowed = append(allowed, m)
		}
		sort.Strings(allowed)
		ctx.Response.Header.Set("Allow", strings.Join(allowed, ", "))
		writeJSON(ctx, fasthttp.StatusMethodNotAllowed, errorBody("method "+method+" not allowed"))
		return
	}
	if r.raw != nil {
		r.raw(ctx)
		return
	}
	decorate(r.api)(ctx)
}

// decorate renders an apiHandler's result: 200 with the value as JSON, or the
// error's status (an *HTTPError, found with errors.As; 500 otherwise).
func decorate(h apiHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		v, err := h(ctx)
		if err != nil {
			var he *HTTPError
			if errors.As(err, &he) {
				body := he.Body
				if body == nil {
					body = errorBody(he.Msg)
				}
				writeJSON(ctx, he.Status, body)
				return
			}
			writeJSON(ctx, fasthttp.StatusInternalServerError, errorBody(err.Error()))
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, v)
	}
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody("encode response: " + err.Error()))
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(append(b, '\n'))
}
