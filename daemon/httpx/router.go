package httpx

import (
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"
)

// Handler serves one endpoint: it returns a value to render or an error.
type Handler func(ctx *fasthttp.RequestCtx) (any, error)

// Renderer writes a front-end's answers in its wire format. Each front-end has
// one (ops: JSON; Nacos: plain-text errors and Nacos-shaped values); handlers
// never write responses themselves.
type Renderer interface {
	// Value writes a handler's result with status 200, unless v says otherwise.
	Value(ctx *fasthttp.RequestCtx, v any)
	// Error writes e with e.Status.
	Error(ctx *fasthttp.RequestCtx, e *Error)
}

// Decorate turns h into a fasthttp handler (nsq's http_api.Decorate): its
// value goes to r.Value; its error to r.Error, with the status of the *Error
// it wraps (errors.As), or as a 500 logged to log (when set) if it wraps none.
func Decorate(h Handler, r Renderer, log *slog.Logger) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		v, err := h(ctx)
		if err == nil {
			r.Value(ctx, v)
			return
		}
		var e *Error
		if !errors.As(err, &e) {
			if log != nil {
				log.Error("request failed", "path", string(ctx.Path()), "err", err)
			}
			e = &Error{Status: http.StatusInternalServerError, Msg: err.Error()}
		}
		r.Error(ctx, e)
	}
}

// Router is one front-end's routing table: path → method → handler. Unknown
// paths answer 404 and unknown methods 405 with Allow, both through the
// front-end's Renderer; HEAD is served by the GET handler.
type Router struct {
	render Renderer
	log    *slog.Logger
	routes map[string]map[string]fasthttp.RequestHandler
}

// NewRouter returns an empty Router rendering with r and logging failed
// requests to log (nil: not logged).
func NewRouter(r Renderer, log *slog.Logger) *Router {
	return &Router{render: r, log: log, routes: make(map[string]map[string]fasthttp.RequestHandler)}
}

// Handle routes method on path to h, decorated with the router's Renderer.
func (rt *Router) Handle(method, path string, h Handler) {
	rt.HandleRaw(method, path, Decorate(h, rt.render, rt.log))
}

// HandleRaw routes method on path to h, which writes its own response
// (promhttp's /metrics).
func (rt *Router) HandleRaw(method, path string, h fasthttp.RequestHandler) {
	if rt.routes[path] == nil {
		rt.routes[path] = make(map[string]fasthttp.RequestHandler)
	}
	rt.routes[path][method] = h
}

// Serve runs the handler routed for route and ctx's method. route is the
// path as the front-end keys it (the Nacos API strips its prefix); messages
// name the request's own path.
func (rt *Router) Serve(ctx *fasthttp.RequestCtx, route string) {
	methods, ok := rt.routes[route]
	if !ok {
		rt.render.Error(ctx, Errorf(http.StatusNotFound, "no such endpoint: %s %s", ctx.Method(), ctx.Path()))
		return
	}
	method := string(ctx.Method())
	h, ok := methods[method]
	if !ok && method == fasthttp.MethodHead {
		h, ok = methods[fasthttp.MethodGet]
	}
	if !ok {
		allow := make([]string, 0, len(methods))
		for m := range methods {
			allow = append(allow, m)
		}
		sort.Strings(allow)
		list := strings.Join(allow, ", ")
		rt.render.Error(ctx, Errorf(http.StatusMethodNotAllowed, "method %s not allowed on %s (allowed: %s)", method, ctx.Path(), list))
		ctx.Response.Header.Set(fasthttp.HeaderAllow, list) // after rendering: a renderer may reset the response
		return
	}
	h(ctx)
}
