package daemon

import (
	"strings"

	"github.com/distrod/distrod/daemon/httpx"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/membership"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// opsRoutes are the node's own endpoints, next to distro's and the Nacos API.
func (n *Node) opsRoutes() *httpx.Router {
	metrics := fasthttpadaptor.NewFastHTTPHandler(promhttp.HandlerFor(n.prom, promhttp.HandlerOpts{
		ErrorLog: promLogger{n}, ErrorHandling: promhttp.ContinueOnError,
	}))
	rt := httpx.NewRouter(opsJSON{}, n.log)
	rt.Handle(fasthttp.MethodGet, "/health", n.handleHealth)
	rt.Handle(fasthttp.MethodGet, "/v1/cluster/members", n.handleMembers)
	rt.Handle(fasthttp.MethodGet, "/v1/cluster/ring", n.handleRing)
	rt.Handle(fasthttp.MethodGet, "/v1/distro/status", n.handleDistroStatus)
	rt.HandleRaw(fasthttp.MethodGet, "/metrics", metrics)
	return rt
}

// HealthResponse is GET /health.
type HealthResponse struct {
	Status string `json:"status"` // UP, LOADING, STALE or SHUTTING_DOWN
	Node   string `json:"node"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason,omitempty"` // why a LOADING node is not ready, or why a STALE one refuses
}

// staleReason is /health's reason while the registry recovers from a stall.
const staleReason = "the process was stalled (SIGSTOP, VM pause, swap): its view is stale until gossip and verify " +
	"refresh it; reads and local writes answer 503 meanwhile"

func (n *Node) handleHealth(*fasthttp.RequestCtx) (any, error) {
	h := HealthResponse{Status: "UP", Node: n.cfg.Name, Ready: n.Ready()}
	switch {
	case n.closing.Load():
		h.Status = "SHUTTING_DOWN"
	case !h.Ready:
		h.Status = "LOADING"
		h.Reason = n.loadingReason()
	case n.registry.Stalled():
		h.Status = "STALE"
		h.Reason = staleReason
	default:
		return h, nil
	}
	return nil, &httpx.Error{Status: fasthttp.StatusServiceUnavailable, Msg: h.Status, Body: h}
}

// loadingReason says why the node is not loaded yet: distro's reason and, while
// no join has succeeded, the join's last error.
func (n *Node) loadingReason() string {
	why := n.engine.LoadingReason()
	if jerr := n.members.JoinError(); jerr != "" {
		why += "; join " + strings.Join(n.cfg.Membership.Join, ", ") + " failed: " + jerr
	}
	return why
}

// MembersResponse is GET /v1/cluster/members.
type MembersResponse struct {
	Members []membership.Member `json:"members"`
}

func (n *Node) handleMembers(*fasthttp.RequestCtx) (any, error) {
	ms := n.members.Members()
	if ms == nil {
		ms = []membership.Member{}
	}
	return MembersResponse{Members: ms}, nil
}

// RingResponse is GET /v1/cluster/ring.
type RingResponse struct {
	Version    string   `json:"version"`    // "" while no member is ready
	Partitions int      `json:"partitions"` // the configured partition count
	Members    []string `json:"members"`    // ready members, sorted
	Owners     []string `json:"owners"`     // owner of each partition, indexed by partition
}

func (n *Node) handleRing(*fasthttp.RequestCtx) (any, error) {
	r := n.Ring()
	resp := RingResponse{Version: ringVersion(r), Partitions: n.cfg.Membership.Partitions, Members: []string{}, Owners: []string{}}
	if r != nil {
		resp.Members = r.Members()
		resp.Owners = r.Owners()
	}
	return resp, nil
}

// DistroStatusResponse is GET /v1/distro/status: distro's status plus the registry's counts.
type DistroStatusResponse struct {
	distro.Status
	Services  int `json:"services"`
	Instances int `json:"instances"`
}

func (n *Node) handleDistroStatus(*fasthttp.RequestCtx) (any, error) {
	st := n.engine.Status()
	if st.Node == "" {
		st.Node = n.cfg.Name
	}
	// Ready means serving, as /health says: not while stale after a stall, when reads answer 503.
	st.Ready = n.Ready() && !n.registry.Stalled()
	switch {
	case st.Loading != "":
		st.Loading = n.loadingReason()
	case !st.Ready && n.registry.Stalled():
		st.Loading = staleReason
	}
	if st.RingVersion == "" {
		st.RingVersion = ringVersion(n.Ring())
	}
	services, instances := n.registry.Counts()
	return DistroStatusResponse{Status: st, Services: services, Instances: instances}, nil
}

// promLogger bridges promhttp's error log into slog.
type promLogger struct{ n *Node }

func (p promLogger) Println(v ...any) { p.n.log.Warn("metrics", "err", v) }
