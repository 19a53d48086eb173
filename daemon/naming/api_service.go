package naming

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/distrod/distrod/daemon/httpx"
)

// serviceFields are the service-level parameters of POST and PUT /service.
type serviceFields struct {
	threshold    float64
	hasThreshold bool
	metadata     map[string]string
	hasMetadata  bool
	selector     string
	hasSelector  bool
}

func (p *params) serviceFields(maxMeta int) (serviceFields, error) {
	var f serviceFields
	var err error
	if v := p.str("protectThreshold"); v != "" {
		if f.threshold, err = parseThreshold(v); err != nil {
			return f, err
		}
		f.hasThreshold = true
	}
	if _, ok := p.m["metadata"]; ok {
		if f.metadata, err = parseMetadata(p.m["metadata"], maxMeta); err != nil {
			return f, err
		}
		f.hasMetadata = true
	}
	if _, ok := p.m["selector"]; ok {
		if f.selector, err = checkSelector(p.m["selector"]); err != nil {
			return f, err
		}
		f.hasSelector = true
	}
	return f, nil
}

// apply returns the service fields of base overridden by f, at version v.
func (f serviceFields) apply(base *Service, v uint64) *Service {
	d := &Service{MetaVersion: v}
	if base != nil && base.MetaVersion > 0 {
		d.ProtectThreshold, d.Metadata, d.Selector = base.ProtectThreshold, base.Metadata, base.Selector
	}
	if f.hasThreshold {
		d.ProtectThreshold = f.threshold
	}
	if f.hasMetadata {
		d.Metadata = f.metadata
	}
	if f.hasSelector {
		d.Selector = f.selector
	}
	return d
}

// createService is POST /service.
func (r *Registry) createService(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	f, err := p.serviceFields(r.cfg.MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}
	err = r.write(ref.key(), func(cur *Service, v uint64) (*Service, error) {
		if cur.exists() {
			return nil, httpx.BadRequest("specified service already exists, serviceName : %s", ref.grouped())
		}
		return f.apply(nil, v), nil
	})
	if err != nil {
		return nil, err
	}
	return "ok", nil
}

// updateService is PUT /service; absent fields keep their value.
func (r *Registry) updateService(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	f, err := p.serviceFields(r.cfg.MaxMetadataBytes)
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}
	err = r.write(ref.key(), func(cur *Service, v uint64) (*Service, error) {
		if !cur.exists() {
			return nil, httpx.BadRequest("service %s not found!", ref.grouped())
		}
		return f.apply(cur, v), nil
	})
	if err != nil {
		return nil, err
	}
	return "ok", nil
}

// deleteService is DELETE /service. As in Nacos, a service that still has
// instances cannot be deleted. The deletion is a service-level tombstone: it
// removes whatever was written at or before it, on every replica.
func (r *Registry) deleteService(ctx *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	if res, err := r.route(ctx, ref.key()); res != nil || err != nil {
		return res, err
	}
	err = r.write(ref.key(), func(cur *Service, v uint64) (*Service, error) {
		if !cur.exists() {
			return nil, httpx.BadRequest("specified service not exist, serviceName : %s", ref.grouped())
		}
		if live, _ := cur.counts(); live > 0 {
			return nil, httpx.BadRequest("specified service has instances, serviceName : %s", ref.grouped())
		}
		return &Service{DeletedAt: v}, nil
	})
	if err != nil {
		return nil, err
	}
	return "ok", nil
}

type clusterJSON struct {
	Name          string            `json:"name"`
	HealthChecker map[string]string `json:"healthChecker"`
	Metadata      map[string]string `json:"metadata"`
}

type serviceJSON struct {
	NamespaceID      string            `json:"namespaceId"`
	Name             string            `json:"name"`
	GroupName        string            `json:"groupName"`
	ProtectThreshold float64           `json:"protectThreshold"`
	Metadata         map[string]string `json:"metadata"`
	Selector         json.RawMessage   `json:"selector"`
	Clusters         []clusterJSON     `json:"clusters"`
}

// getService is GET /service.
func (r *Registry) getService(_ *fasthttp.RequestCtx, p *params) (any, error) {
	ref, err := p.service()
	if err != nil {
		return nil, err
	}
	svc := r.service(ref.key())
	if !svc.exists() {
		return nil, httpx.Errorf(fasthttp.StatusNotFound, "service %s is not found!", ref.grouped())
	}
	sel := json.RawMessage(`{"type":"none"}`)
	if svc.Selector != "" {
		sel = json.RawMessage(svc.Selector)
	}
	out := serviceJSON{
		NamespaceID: ref.namespace, Name: ref.name, GroupName: ref.group,
		ProtectThreshold: svc.ProtectThreshold, Metadata: nonNil(svc.Metadata), Selector: sel,
		Clusters: []clusterJSON{},
	}
	seen := map[string]bool{}
	for _, in := range svc.Instances {
		if !in.Deleted {
			seen[in.Cluster] = true
		}
	}
	for _, c := range sortedKeys(seen) {
		out.Clusters = append(out.Clusters, clusterJSON{Name: c, HealthChecker: map[string]string{"type": "NONE"}, Metadata: map[string]string{}})
	}
	return out, nil
}

// serviceStat is one live service as listings see it.
type serviceStat struct {
	group, name   string
	clusters      int
	live, healthy int
}

// services returns the live services of a namespace, sorted by group then name.
func (r *Registry) services(namespace string) []serviceStat {
	var out []serviceStat
	r.mu.RLock()
	for k, e := range r.entries {
		ns, g, n, ok := splitKey(k)
		if !ok || ns != namespace || !e.exists {
			continue
		}
		out = append(out, serviceStat{group: g, name: n, clusters: e.nclust, live: e.live, healthy: e.health})
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].group != out[j].group {
			return out[i].group < out[j].group
		}
		return out[i].name < out[j].name
	})
	return out
}

// pageParams reads pageNo (from 1, default 1) and pageSize (default 10).
func (p *params) pageParams() (pageNo, pageSize int, err error) {
	if pageNo, err = p.intOr("pageNo", 1, 1, 1<<30); err != nil {
		return 0, 0, err
	}
	if pageSize, err = p.intOr("pageSize", 10, 1, 1<<30); err != nil {
		return 0, 0, err
	}
	return pageNo, pageSize, nil
}

// page returns a copy of page pageNo (from 1) of size pageSize of all; never nil.
func page[T any](all []T, pageNo, pageSize int) []T {
	from := (pageNo - 1) * pageSize
	if from > len(all) || from < 0 {
		from = len(all)
	}
	to := min(from+pageSize, len(all))
	return append([]T{}, all[from:to]...)
}

type serviceList struct {
	Count int      `json:"count"`
	Doms  []string `json:"doms"`
}

// listServices is GET /service/list: the names (without group) of one group's services.
func (r *Registry) listServices(_ *fasthttp.RequestCtx, p *params) (any, error) {
	ns, err := p.namespace()
	if err != nil {
		return nil, err
	}
	pageNo, pageSize, err := p.pageParams()
	if err != nil {
		return nil, err
	}
	group := p.str("groupName")
	if group == "" {
		group = DefaultGroup
	}
	var names []string
	for _, s := range r.services(ns) {
		if s.group == group {
			names = append(names, s.name)
		}
	}
	return serviceList{Count: len(names), Doms: page(names, pageNo, pageSize)}, nil
}

type catalogEntry struct {
	Name                 string `json:"name"`
	GroupName            string `json:"groupName"`
	ClusterCount         int    `json:"clusterCount"`
	IPCount              int    `json:"ipCount"`
	HealthyInstanceCount int    `json:"healthyInstanceCount"`
	TriggerFlag          string `json:"triggerFlag"`
}

type catalogList struct {
	Count       int            `json:"count"`
	ServiceList []catalogEntry `json:"serviceList"`
}

// catalogServices is GET /catalog/services (the console's list): every group,
// optionally filtered by substrings of the service and group names.
func (r *Registry) catalogServices(_ *fasthttp.RequestCtx, p *params) (any, error) {
	ns, err := p.namespace()
	if err != nil {
		return nil, err
	}
	pageNo, pageSize, err := p.pageParams()
	if err != nil {
		return nil, err
	}
	nameLike, groupLike := p.str("serviceNameParam"), p.str("groupNameParam")
	var all []catalogEntry
	for _, s := range r.services(ns) {
		if !strings.Contains(s.name, nameLike) || !strings.Contains(s.group, groupLike) {
			continue
		}
		all = append(all, catalogEntry{
			Name: s.name, GroupName: s.group, ClusterCount: s.clusters, IPCount: s.live,
			HealthyInstanceCount: s.healthy, TriggerFlag: "false",
		})
	}
	return catalogList{Count: len(all), ServiceList: page(all, pageNo, pageSize)}, nil
}
