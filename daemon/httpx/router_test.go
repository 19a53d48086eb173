package httpx

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/valyala/fasthttp"
)

// textRenderer answers values with fmt.Sprint and errors with their message.
type textRenderer struct{}

func (textRenderer) Value(ctx *fasthttp.RequestCtx, v any) { ctx.SetBodyString(fmt.Sprint(v)) }

func (textRenderer) Error(ctx *fasthttp.RequestCtx, e *Error) {
	ctx.Response.Reset() // as the Nacos renderer does: Allow must survive it
	ctx.SetStatusCode(e.Status)
	ctx.SetBodyString(e.Msg)
}

func TestRouterAnswers404And405OnceAndRendersErrorsByStatus(t *testing.T) {
	rt := NewRouter(textRenderer{}, nil)
	rt.Handle("GET", "/ok", func(*fasthttp.RequestCtx) (any, error) { return "fine", nil })
	rt.Handle("PUT", "/ok", func(*fasthttp.RequestCtx) (any, error) {
		return nil, fmt.Errorf("wrapped: %w", BadRequest("Param '%s' is required.", "ip"))
	})
	rt.Handle("POST", "/ok", func(*fasthttp.RequestCtx) (any, error) { return nil, errors.New("disk on fire") })
	rt.HandleRaw("GET", "/raw", func(ctx *fasthttp.RequestCtx) { ctx.SetStatusCode(http.StatusTeapot) })

	for _, tc := range []struct {
		method, path string
		status       int
		body, allow  string
	}{
		{"GET", "/ok", 200, "fine", ""},
		{"HEAD", "/ok", 200, "fine", ""},
		{"PUT", "/ok", 400, "Param 'ip' is required.", ""},
		{"POST", "/ok", 500, "disk on fire", ""},
		{"GET", "/raw", http.StatusTeapot, "", ""},
		{"DELETE", "/ok", 405, "method DELETE not allowed on /ok (allowed: GET, POST, PUT)", "GET, POST, PUT"},
		{"GET", "/nope", 404, "no such endpoint: GET /nope", ""},
	} {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(tc.method)
		ctx.Request.SetRequestURI(tc.path)
		rt.Serve(&ctx, string(ctx.Path()))
		if ctx.Response.StatusCode() != tc.status || string(ctx.Response.Body()) != tc.body ||
			string(ctx.Response.Header.Peek("Allow")) != tc.allow {
			t.Errorf("%s %s = %d %q Allow %q, want %d %q Allow %q", tc.method, tc.path, ctx.Response.StatusCode(),
				ctx.Response.Body(), ctx.Response.Header.Peek("Allow"), tc.status, tc.body, tc.allow)
		}
	}
}
