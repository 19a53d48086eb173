package naming

import (
	"net"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"
)

type serverJSON struct {
	Name          string            `json:"name"`
	IP            string            `json:"ip"`
	Port          int               `json:"port"`
	Address       string            `json:"address"`
	State         string            `json:"state"`
	ExtendInfo    map[string]string `json:"extendInfo"`
	FailAccessCnt int               `json:"failAccessCnt"`
}

type serversJSON struct {
	Servers []serverJSON `json:"servers"`
}

// nacosState maps a member state to Nacos's NodeState names.
func nacosState(s string) string {
	switch strings.ToLower(s) {
	case "alive", "up":
		return "UP"
	case "suspect", "suspicious":
		return "SUSPICIOUS"
	case "":
		return "UP"
	}
	return "DOWN"
}

// servers is GET /operator/servers.
func (r *Registry) servers(_ *fasthttp.RequestCtx, _ *params) (any, error) {
	out := serversJSON{Servers: []serverJSON{}}
	for _, s := range r.cluster.Servers() {
		host, portStr, err := net.SplitHostPort(s.HTTPAddr)
		if err != nil {
			host = s.HTTPAddr
		}
		port, _ := strconv.Atoi(portStr)
		out.Servers = append(out.Servers, serverJSON{
			Name: s.Name, IP: host, Port: port, Address: s.HTTPAddr, State: nacosState(s.State),
			ExtendInfo: map[string]string{"distrodState": s.State},
		})
	}
	return out, nil
}

type metricsJSON struct {
	Status                   string  `json:"status"`
	ServiceCount             int     `json:"serviceCount"`
	InstanceCount            int     `json:"instanceCount"`
	ResponsibleServiceCount  int     `json:"responsibleServiceCount"`
	ResponsibleInstanceCount int     `json:"responsibleInstanceCount"`
	SubscribeCount           int     `json:"subscribeCount"`
	CPU                      float64 `json:"cpu"`
	Load                     float64 `json:"load"`
	Mem                      float64 `json:"mem"`
}

// operatorMetrics is GET /operator/metrics; clients read "status" to pick a
// healthy server, so a node still loading answers 503 with status DOWN.
func (r *Registry) operatorMetrics(ctx *fasthttp.RequestCtx, _ *params) (any, error) {
	out := metricsJSON{Status: "UP"}
	for _, k := range r.entriesWhere(func(_ string, e *entry) bool { return e.exists }) {
		out.ServiceCount++
		out.InstanceCount += k.e.live
		if o, ok := r.cluster.OwnerOf(k.key); ok && o.Self {
			out.ResponsibleServiceCount++
			out.ResponsibleInstanceCount += k.e.live
		}
	}
	if r.push != nil {
		out.SubscribeCount = r.push.subscriberCount()
	}
	if !r.cluster.Ready() {
		out.Status = "DOWN"
		ctx.SetStatusCode(fasthttp.StatusServiceUnavailable)
	}
	return out, nil
}
