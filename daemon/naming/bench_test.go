package naming

import (
	"fmt"
	"net"
	"runtime"
	"testing"

	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// The hot paths of `distrod bench`, in process: go test -run '^$' -bench . -benchmem -cpuprofile cpu.out

// benchRegistry is a registry that owns every key, filled with services of
// ten instances each (like distrod bench's default layout).
func benchRegistry(b *testing.B, services int) *Registry {
	return benchRegistryMeta(b, services, `{"v":"1"}`)
}

// benchRegistryMeta is benchRegistry with the given instance metadata JSON ("" for none, as distrod bench registers).
func benchRegistryMeta(b *testing.B, services int, meta string) *Registry {
	b.Helper()
	cfg := DefaultConfig()
	cfg.UDPAddr = ""
	cfg.Logger = testLogger(b)
	r, err := New(cfg, newFakeCluster())
	if err != nil {
		b.Fatal(err)
	}
	for s := range services {
		for i := range 10 {
			body := fmt.Sprintf("serviceName=bench-%d&ip=10.0.%d.%d&port=8080", s, s%250, i+1)
			if meta != "" {
				body += "&metadata=" + meta
			}
			if code := benchCall(r, "POST", ns+"/instance", body).Response.StatusCode(); code != 200 {
				b.Fatalf("register: %d", code)
			}
		}
	}
	return r
}

var benchFrom = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

func benchCall(r *Registry, method, uri, body string) *fasthttp.RequestCtx {
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	if body != "" {
		req.Header.SetContentType("application/x-www-form-urlencoded")
		req.SetBodyString(body)
	}
	ctx := &fasthttp.RequestCtx{}
	ctx.Init(&req, benchFrom, nil)
	r.Handle(ctx)
	return ctx
}

// BenchmarkList is GET /instance/list of a 10-instance service, reusing one RequestCtx as fasthttp does.
func BenchmarkList(b *testing.B) {
	r := benchRegistry(b, 10)
	var req fasthttp.Request
	req.Header.SetMethod("GET")
	req.SetRequestURI(ns + "/instance/list?serviceName=DEFAULT_GROUP@@bench-3&healthyOnly=false&clusters=")
	ctx := &fasthttp.RequestCtx{}
	b.ReportAllocs()
	for b.Loop() {
		ctx.Init(&req, benchFrom, nil)
		r.Handle(ctx)
		if ctx.Response.StatusCode() != 200 || len(ctx.Response.Body()) < 1000 {
			b.Fatalf("list: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		ctx.Response.Reset()
	}
}

// BenchmarkRegister is POST /instance on the owner: re-registrations spread over 1 000 services.
func BenchmarkRegister(b *testing.B) {
	r := benchRegistry(b, 1000)
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = fmt.Appendf(nil, "serviceName=bench-%d&ip=10.0.%d.%d&port=8080&metadata={\"v\":\"2\"}", i, i%250, i%10+1)
	}
	var req fasthttp.Request
	req.Header.SetMethod("POST")
	req.SetRequestURI(ns + "/instance")
	req.Header.SetContentType("application/x-www-form-urlencoded")
	ctx := &fasthttp.RequestCtx{}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req.SetBody(bodies[i%len(bodies)])
		i++
		ctx.Init(&req, benchFrom, nil)
		r.Handle(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("register: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		ctx.Response.Reset()
	}
}

// BenchmarkApplyPush is a peer applying pushed values, each the owner's
// value after one more registration (the common push).
func BenchmarkApplyPush(b *testing.B) {
	owner := benchRegistry(b, 100)
	peer := benchRegistry(b, 100) // the state before the last registration of each service
	before := make(map[string]*entry, len(peer.entries))
	for k, e := range peer.entries {
		before[k] = e // entries are immutable: sharing them is a snapshot
	}
	pushes := make([]distro.Datum, 0, 100)
	for i := range 100 {
		body := fmt.Sprintf("serviceName=bench-%d&ip=10.1.0.%d&port=8080", i, i%200+1)
		if code := benchCall(owner, "POST", ns+"/instance", body).Response.StatusCode(); code != 200 {
			b.Fatalf("register: %d", code)
		}
		d, _ := owner.Get(datumKey(DefaultNamespace, DefaultGroup, fmt.Sprintf("bench-%d", i)))
		pushes = append(pushes, d)
	}
	b.ReportAllocs()
	for n := 0; b.Loop(); n++ {
		if n%len(pushes) == 0 {
			peer.mu.Lock()
			for k, e := range before {
				peer.entries[k] = e
			}
			peer.mu.Unlock()
		}
		if !peer.Apply(pushes[n%len(pushes)]) {
			b.Fatal("push changed nothing")
		}
	}
}

// BenchmarkExpiryRound is one heartbeat-expiry round over 10 000 owned services with nothing due.
func BenchmarkExpiryRound(b *testing.B) {
	r := benchRegistry(b, 10000)
	now := r.now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.expireOnce(now)
	}
}

// BenchmarkLiveHeapPerInstance reports the live heap after GC of an owner
// holding 10 000 services of 10 instances (beat records included): run with -benchtime 1x.
func BenchmarkLiveHeapPerInstance(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		r := benchRegistryMeta(b, 10000, "")
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/100000, "B/instance")
		runtime.KeepAlive(r)
	}
}

// BenchmarkGetDuringApply is a read of one service while a stream of peer
// applies of another, large service (3 000 instances) runs beside it: what a
// peer apply holding the registry-wide lock costs the readers of every other key.
func BenchmarkGetDuringApply(b *testing.B) {
	peer := benchRegistry(b, 10)
	const big = "public##DEFAULT_GROUP@@big"
	state := func(n int) distro.Datum {
		s := &Service{Instances: map[string]*Instance{}}
		for i := range n {
			in := &Instance{IP: fmt.Sprintf("10.2.%d.%d", i/250, i%250+1), Port: 8080, Cluster: "DEFAULT", Weight: 1,
				Healthy: true, Enabled: true, Ephemeral: true, Version: uint64(1000 + i), Registered: uint64(1000 + i),
				Metadata: map[string]string{"v": "1"}}
			s.Instances[in.Key()] = in
		}
		return newEntry(big, s).datum
	}
	if !peer.Apply(state(3000)) {
		b.Fatal("apply changed nothing")
	}
	before := peer.entry(big)
	push := state(3001)
	stop, done := make(chan struct{}), make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			peer.mu.Lock()
			peer.entries[big] = before // the state before the push (entries are immutable)
			peer.mu.Unlock()
			if !peer.Apply(push) {
				panic("push changed nothing")
			}
			n++
		}
	}()
	other := datumKey(DefaultNamespace, DefaultGroup, "bench-3")
	for b.Loop() {
		if _, ok := peer.Get(other); !ok {
			b.Fatal("no datum")
		}
	}
	close(stop)
	b.ReportMetric(float64(<-done)/b.Elapsed().Seconds(), "applies/s")
}
