package naming

import (
	"fmt"
	"net"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// Cache hints for clients (Nacos SwitchDomain defaults): a pushed service may
// be cached longer than a polled one.
const (
	defaultCacheMillis = 3000
	pushCacheMillis    = 10000
)

// register is POST /instance.
func (r *Registry) register(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	return r.putInstance(ctx, p, false)
}

// update is PUT /instance. Nacos replaces the instance; for Java clients 1.0+
// the instance must exist, other clients get a register.
func (r *Registry) update(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	return r.putInstance(ctx, p, isJavaClient(ctx))
}

// putInstance registers or replaces the instance p describes; with mustExist
// it refuses an instance that is not live.
func (r *Registry) putInstance(ctx *fasthttp.RequestCtx, p *params, mustExist bool) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	in, err := p.parseInstance(r.cfg.MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}
	var check func(*Service) error
	if mustExist {
		check = func(cur *Service) error {
			if cur.live(in.Key()) == nil {
				return httpx.BadRequest("instance not exist: %s:%d in cluster %s", in.IP, in.Port, in.Cluster)
			}
			return nil
		}
	}
	if err := r.upsert(ref.key(), in, check); err != nil {
		return nil, err
	}
	return "ok", nil
}

// isJavaClient reports a Nacos Java client (User-Agent or Client-Version
// "Nacos-Java-Client:v1.x" or later).
func isJavaClient(ctx *fasthttp.RequestCtx) bool {
	for _, h := range []string{"User-Agent", "Client-Version"} {
		if strings.HasPrefix(string(ctx.Request.Header.Peek(h)), "Nacos-Java-Client:v") {
			return true
		}
	}
	return false
}

// upsert writes in (at a new version) into key's service, creating the
// service with defaults when it does not exist. It records a beat. check,
// when not nil, may refuse the write given the current service (under the
// key's write lock).
func (r *Registry) upsert(key string, in *Instance, check func(cur *Service) error) error {
	err := r.write(key, func(cur *Service, v uint64) (*Service, error) {
		if check != nil {
			if err := check(cur); err != nil {
				return nil, err
			}
		}
		delta := &Service{Instances: map[string]*Instance{}}
		if !cur.exists() {
			delta.MetaVersion = v // implicit creation with default service fields
		}
		n := *in
		n.Version, n.Registered = v, v
		if prev := cur.live(n.Key()); prev != nil {
			n.Registered = prev.Registered // an update of the same incarnation
		}
		n.Deleted = false
		delta.Instances[n.Key()] = &n
		return delta, nil
	})
	if err == nil {
		r.recordBeat(key, in.Key())
	}
	return err
}

// deregister is DELETE /instance; removing an unknown instance is a success.
func (r *Registry) deregister(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	ip, port, cluster, err := p.parseAddr()
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}
	ik := instanceKey(ip, port, cluster)
	err = r.write(ref.key(), func(cur *Service, v uint64) (*Service, error) {
		in := cur.live(ik)
		if in == nil {
			return nil, nil
		}
		return &Service{Instances: map[string]*Instance{ik: tombstone(in, v)}}, nil
	})
	if err != nil {
		return nil, err
	}
	r.forgetBeat(ref.key(), ik)
	return "ok", nil
}

// instanceDetail is GET /instance's answer.
type instanceDetail struct {
	Service     string            `json:"service"`
	IP          string            `json:"ip"`
	Port        int               `json:"port"`
	ClusterName string            `json:"clusterName"`
	Weight      float64           `json:"weight"`
	Healthy     bool              `json:"healthy"`
	Enabled     bool              `json:"enabled"`
	Ephemeral   bool              `json:"ephemeral"`
	InstanceID  string            `json:"instanceId"`
	Metadata    map[string]string `json:"metadata"`
}

// detail is GET /instance.
func (r *Registry) detail(_ *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	ip, port, cluster, err := p.parseAddr()
	if err != nil {
		return nil, err
	}
	svc := r.service(ref.key())
	if !svc.exists() {
		return nil, httpx.Errorf(fasthttp.StatusNotFound, "no service %s found!", ref.grouped())
	}
	in := svc.live(instanceKey(ip, port, cluster))
	if in == nil {
		return nil, httpx.Errorf(fasthttp.StatusNotFound, "no matched ip found!")
	}
	return instanceDetail{
		Service: ref.grouped(), IP: in.IP, Port: in.Port, ClusterName: in.Cluster,
		Weight: in.Weight, Healthy: in.Healthy, Enabled: in.Enabled, Ephemeral: in.Ephemeral,
		InstanceID: instanceID(in, ref.grouped()), Metadata: nonNil(in.Metadata),
	}, nil
}

// listHost is one entry of /instance/list's hosts: the union of the Nacos 1.4
// and 2.x fields.
type listHost struct {
	InstanceID                string            `json:"instanceId"`
	IP                        string            `json:"ip"`
	Port                      int               `json:"port"`
	Weight                    float64           `json:"weight"`
	Healthy                   bool              `json:"healthy"`
	Enabled                   bool              `json:"enabled"`
	Ephemeral                 bool              `json:"ephemeral"`
	ClusterName               string            `json:"clusterName"`
	ServiceName               string            `json:"serviceName"`
	Metadata                  map[string]string `json:"metadata"`
	InstanceHeartBeatInterval int64             `json:"instanceHeartBeatInterval"`
	InstanceHeartBeatTimeOut  int64             `json:"instanceHeartBeatTimeOut"`
	IPDeleteTimeout           int64             `json:"ipDeleteTimeout"`
	InstanceIDGenerator       string            `json:"instanceIdGenerator"`
	Marked                    bool              `json:"marked"`
	Valid                     bool              `json:"valid"`
}

// listResult is /instance/list's answer and the data of a UDP push.
type listResult struct {
	Name                     string            `json:"name"`
	GroupName                string            `json:"groupName"`
	Clusters                 string            `json:"clusters"`
	CacheMillis              int64             `json:"cacheMillis"`
	Hosts                    []listHost        `json:"hosts"`
	LastRefTime              int64             `json:"lastRefTime"`
	Checksum                 string            `json:"checksum"`
	AllIPs                   bool              `json:"allIPs"`
	ReachProtectionThreshold bool              `json:"reachProtectionThreshold"`
	Valid                    bool              `json:"valid"`
	Dom                      string            `json:"dom"`
	UseSpecifiedURL          bool              `json:"useSpecifiedURL"`
	Env                      string            `json:"env"`
	Metadata                 map[string]string `json:"metadata"`
}

// list is GET /instance/list; with udpPort > 0 it also subscribes the caller to pushes.
func (r *Registry) list(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	udpPort, err := p.intOr("udpPort", 0, 0, 65535)
	if err != nil {
		return nil, err
	}
	clusters := p.m["clusters"] // echoed exactly: clients key their cache on it
	cache := int64(defaultCacheMillis)
	if udpPort > 0 && r.push != nil {
		if r.push.subscribe(ref, clusters, r.pushTarget(ctx, p), udpPort) {
			cache = pushCacheMillis
		}
	}
	l, err := r.renderedList(ref, clusters, p.boolOr("healthyOnly", false))
	if err != nil {
		return nil, err
	}
	return &listAnswer{list: l, cacheMillis: cache, env: p.str("env")}, nil
}

// pushTarget is the address pushes for this request go to: the request's
// source, or the clientIP parameter when the operator trusts it.
func (r *Registry) pushTarget(ctx *fasthttp.RequestCtx, p *params) net.IP {
	if r.cfg.PushTrustClientIP {
		for _, name := range []string{"clientIP", "clientIp"} {
			if ip := net.ParseIP(p.str(name)); ip != nil {
				return ip
			}
		}
	}
	return ctx.RemoteIP()
}

// pushData is the pusher's data for a subscriber of ref and clusters
// (pushSource): the list answer a query without healthyOnly gets, with the
// push cacheMillis.
func (r *Registry) pushData(ref serviceRef, clusters string) ([]byte, error) {
	l, err := r.renderedList(ref, clusters, false)
	if err != nil {
		return nil, err
	}
	return l.appendTo(nil, pushCacheMillis, ""), nil
}

// listOf builds the list answer of e, the stored entry of ref (nil: none),
// with Nacos's semantics: cluster filter, protection threshold (when
// healthy/total <= threshold every instance is returned as healthy), disabled
// instances hidden, healthyOnly; lastRefTime the state's (refTimeOf). The
// per-request fields (cacheMillis, env) are left zero: see renderedList.
func (r *Registry) listOf(ref serviceRef, e *entry, clusters string, healthyOnly bool) *listResult {
	res := &listResult{
		Name: ref.grouped(), GroupName: ref.group, Clusters: clusters,
		Hosts: []listHost{}, Valid: true, Dom: ref.grouped(), Metadata: map[string]string{},
		LastRefTime: refTimeOf(e),
	}
	if e == nil || !e.exists {
		return res
	}
	svc := e.service()
	res.Checksum = fmt.Sprintf("%016x", e.datum.Checksum())
	res.Metadata = nonNil(svc.Metadata)

	want := map[string]bool{}
	for _, c := range strings.Split(clusters, ",") {
		if c = strings.TrimSpace(c); c != "" {
			want[c] = true
		}
	}
	var healthy, sick []*Instance
	for _, k := range sortedKeys(svc.Instances) {
		in := svc.Instances[k]
		if in.Deleted || (len(want) > 0 && !want[in.Cluster]) {
			continue
		}
		if in.Healthy {
			healthy = append(healthy, in)
		} else {
			sick = append(sick, in)
		}
	}
	total := len(healthy) + len(sick)
	if total == 0 {
		return res
	}
	if float64(len(healthy))/float64(total) <= svc.ProtectThreshold {
		res.ReachProtectionThreshold = true
		healthy, sick = append(healthy, sick...), nil
	}
	add := func(ins []*Instance, ok bool) {
		for _, in := range ins {
			if !in.Enabled {
				continue
			}
			res.Hosts = append(res.Hosts, r.host(in, ref.grouped(), ok))
		}
	}
	add(healthy, true)
	if !healthyOnly {
		add(sick, false)
	}
	return res
}

func (r *Registry) host(in *Instance, grouped string, healthy bool) listHost {
	interval, timeout, del := r.timeouts(in)
	return listHost{
		InstanceID: instanceID(in, grouped), IP: in.IP, Port: in.Port, Weight: in.Weight,
		Healthy: healthy, Enabled: in.Enabled, Ephemeral: in.Ephemeral, ClusterName: in.Cluster,
		ServiceName: grouped, Metadata: nonNil(in.Metadata),
		InstanceHeartBeatInterval: interval.Milliseconds(), InstanceHeartBeatTimeOut: timeout.Milliseconds(),
		IPDeleteTimeout: del.Milliseconds(), InstanceIDGenerator: "simple", Valid: healthy,
	}
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
