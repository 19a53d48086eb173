package daemon

import (
	"encoding/json"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

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
	n.ops.Serve(ctx, string(ctx.Path()))
}

// opsJSON renders the ops endpoints: values as JSON, an error as its Body or
// {"error": msg}.
type opsJSON struct{}

func (opsJSON) Value(ctx *fasthttp.RequestCtx, v any) { writeJSON(ctx, fasthttp.StatusOK, v) }

func (opsJSON) Error(ctx *fasthttp.RequestCtx, e *httpx.Error) {
	body := e.Body
	if body == nil {
		body = errorBody(e.Msg)
	}
	writeJSON(ctx, e.Status, body)
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
