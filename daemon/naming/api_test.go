package naming

import (
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/distrod/distrod/distro"
	"github.com/valyala/fasthttp"
)

// sdkService mirrors nacos-sdk-go v1 model.Service: the list JSON must decode into it.
type sdkService struct {
	Dom             string            `json:"dom"`
	CacheMillis     uint64            `json:"cacheMillis"`
	UseSpecifiedURL bool              `json:"useSpecifiedUrl"`
	Hosts           []sdkInstance     `json:"hosts"`
	Checksum        string            `json:"checksum"`
	LastRefTime     uint64            `json:"lastRefTime"`
	Env             string            `json:"env"`
	Clusters        string            `json:"clusters"`
	Metadata        map[string]string `json:"metadata"`
	Name            string            `json:"name"`
}

type sdkInstance struct {
	Valid       bool              `json:"valid"`
	Marked      bool              `json:"marked"`
	InstanceID  string            `json:"instanceId"`
	Port        uint64            `json:"port"`
	IP          string            `json:"ip"`
	Weight      float64           `json:"weight"`
	Metadata    map[string]string `json:"metadata"`
	ClusterName string            `json:"clusterName"`
	ServiceName string            `json:"serviceName"`
	Enable      bool              `json:"enabled"`
	Healthy     bool              `json:"healthy"`
	Ephemeral   bool              `json:"ephemeral"`
}

func keysOf(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

// nacos-sdk-go v1 sends parameters unescaped: raw JSON metadata, '@@' in names.
func TestRegisterAndListLikeNacosSDKGo(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	body := `groupName=DEFAULT_GROUP&clusterName=c1&ip=10.0.0.1&port=8080&weight=2&enable=true&healthy=true&metadata={"version":"1.0","url":"http://x/?a=b&c=d"}&ephemeral=true&namespaceId=&serviceName=DEFAULT_GROUP@@svc`
	if got := string(mustOK(t, r, "POST", ns+"/instance", body)); got != "ok" {
		t.Fatalf("register answered %q", got)
	}
	raw := mustOK(t, r, "GET", ns+"/instance/list?namespaceId=&serviceName=DEFAULT_GROUP@@svc&clusters=c1&udpPort=0&healthyOnly=false&clientIp=10.9.9.9", "")

	top := decodeJSON[map[string]any](t, raw)
	const wantTop = "allIPs,cacheMillis,checksum,clusters,dom,env,groupName,hosts,lastRefTime,metadata,name,reachProtectionThreshold,useSpecifiedURL,valid"
	if got := keysOf(top); got != wantTop {
		t.Fatalf("top-level fields:\n got %s\nwant %s", got, wantTop)
	}
	host := top["hosts"].([]any)[0].(map[string]any)
	const wantHost = "clusterName,enabled,ephemeral,healthy,instanceHeartBeatInterval,instanceHeartBeatTimeOut,instanceId,instanceIdGenerator,ip,ipDeleteTimeout,marked,metadata,port,serviceName,valid,weight"
	if got := keysOf(host); got != wantHost {
		t.Fatalf("host fields:\n got %s\nwant %s", got, wantHost)
	}

	svc := decodeJSON[sdkService](t, raw)
	if svc.Name != "DEFAULT_GROUP@@svc" || svc.Clusters != "c1" || svc.CacheMillis != 3000 || svc.Checksum == "" || svc.LastRefTime == 0 {
		t.Fatalf("service: %+v", svc)
	}
	if len(svc.Hosts) != 1 {
		t.Fatalf("hosts: %+v", svc.Hosts)
	}
	h := svc.Hosts[0]
	want := sdkInstance{
		Valid: true, InstanceID: "10.0.0.1#8080#c1#DEFAULT_GROUP@@svc", Port: 8080, IP: "10.0.0.1", Weight: 2,
		Metadata:    map[string]string{"version": "1.0", "url": "http://x/?a=b&c=d"},
		ClusterName: "c1", ServiceName: "DEFAULT_GROUP@@svc", Enable: true, Healthy: true, Ephemeral: true,
	}
	if h.InstanceID != want.InstanceID || h.IP != want.IP || h.Port != want.Port || h.Weight != want.Weight ||
		h.ClusterName != want.ClusterName || h.ServiceName != want.ServiceName || !h.Enable || !h.Healthy ||
		!h.Ephemeral || !h.Valid || h.Marked || len(h.Metadata) != 2 || h.Metadata["url"] != want.Metadata["url"] {
		t.Fatalf("host:\n got %+v\nwant %+v", h, want)
	}
	if host["instanceHeartBeatInterval"].(float64) != 5000 || host["instanceHeartBeatTimeOut"].(float64) != 15000 || host["ipDeleteTimeout"].(float64) != 30000 {
		t.Fatalf("timings: %v", host)
	}
}

func TestRegisterEscapedLikeJavaClient(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=DEFAULT_GROUP%40%40svc&ip=10.0.0.1&port=80&metadata=%7B%22a%22%3A%22b+c%22%7D&namespaceId=dev", "")
	svc := decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc&namespaceId=dev", ""))
	if len(svc.Hosts) != 1 || svc.Hosts[0].Metadata["a"] != "b c" || svc.Hosts[0].ClusterName != "DEFAULT" {
		t.Fatalf("hosts: %+v", svc.Hosts)
	}
	// Another namespace does not see it.
	if other := decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc", "")); len(other.Hosts) != 0 {
		t.Fatalf("public sees dev's instance: %+v", other.Hosts)
	}
}

func hostIPs(s sdkService) string {
	var ips []string
	for _, h := range s.Hosts {
		ips = append(ips, h.IP+map[bool]string{true: "+", false: "-"}[h.Healthy])
	}
	return strings.Join(ips, " ")
}

func TestListSemantics(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&clusterName=a", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80&clusterName=b&healthy=false", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.3&port=80&clusterName=b&enabled=false", "")
	list := func(q string) sdkService {
		return decodeJSON[sdkService](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc"+q, ""))
	}
	cases := []struct{ q, want string }{
		{"", "10.0.0.1+ 10.0.0.2-"},        // disabled hidden, healthy first
		{"&healthyOnly=true", "10.0.0.1+"}, // unhealthy dropped
		{"&clusters=b", "10.0.0.2-"},       // cluster filter
		{"&clusters=a,b", "10.0.0.1+ 10.0.0.2-"},
		{"&clusters=zzz", ""},
	}
	for _, c := range cases {
		if got := hostIPs(list(c.q)); got != c.want {
			t.Errorf("list%s = %q, want %q", c.q, got, c.want)
		}
	}
	if got := list("&clusters=a,b").Clusters; got != "a,b" {
		t.Errorf("clusters echoed as %q", got)
	}

	// Protection threshold: 2 healthy of 3 (the disabled one counts, as in
	// Nacos) = 0.67 <= 0.7, so all come back healthy.
	mustOK(t, r, "PUT", ns+"/service?serviceName=svc&protectThreshold=0.6", "")
	if got := hostIPs(list("&healthyOnly=true")); got != "10.0.0.1+" {
		t.Errorf("below threshold: %q", got)
	}
	mustOK(t, r, "PUT", ns+"/service?serviceName=svc&protectThreshold=0.7", "")
	raw := mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc&healthyOnly=true", "")
	if got := hostIPs(decodeJSON[sdkService](t, raw)); got != "10.0.0.1+ 10.0.0.2+" {
		t.Errorf("threshold reached: %q", got)
	}
	if m := decodeJSON[map[string]any](t, raw); m["reachProtectionThreshold"] != true {
		t.Errorf("reachProtectionThreshold = %v", m["reachProtectionThreshold"])
	}

	// Unknown service: the empty structure, not an error.
	empty := decodeJSON[map[string]any](t, mustOK(t, r, "GET", ns+"/instance/list?serviceName=nope&clusters=x", ""))
	if hs := empty["hosts"].([]any); len(hs) != 0 || empty["name"] != "DEFAULT_GROUP@@nope" || empty["clusters"] != "x" {
		t.Errorf("unknown service: %v", empty)
	}
}

func TestInstanceDetailUpdateDeregister(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata=a=1,b=2", "")
	d := decodeJSON[instanceDetail](t, mustOK(t, r, "GET", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", ""))
	if d.InstanceID != "10.0.0.1#80#DEFAULT#DEFAULT_GROUP@@svc" || d.Metadata["b"] != "2" || d.Weight != 1 || !d.Healthy {
		t.Fatalf("detail: %+v", d)
	}
	mustOK(t, r, "PUT", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&weight=3", "")
	d = decodeJSON[instanceDetail](t, mustOK(t, r, "GET", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", ""))
	if d.Weight != 3 || len(d.Metadata) != 0 {
		t.Fatalf("update replaces the instance: %+v", d)
	}
	// A Java 1.x client may only update an existing instance.
	ctx := call(t, r, "PUT", ns+"/instance?serviceName=svc&ip=10.0.0.9&port=80", "", header("User-Agent", "Nacos-Java-Client:v1.4.1"))
	if ctx.Response.StatusCode() != 400 || !strings.Contains(string(ctx.Response.Body()), "instance not exist") {
		t.Fatalf("java update of unknown instance: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if ctx := call(t, r, "GET", ns+"/instance?serviceName=svc&ip=10.0.0.9&port=80", ""); ctx.Response.StatusCode() != 404 {
		t.Fatalf("detail of unknown instance: %d", ctx.Response.StatusCode())
	}
	n := len(c.changedKeys())
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	if len(c.changedKeys()) != n+1 {
		t.Fatalf("deregister did not tell distro")
	}
	if got := string(mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")); got != "ok" {
		t.Fatalf("second deregister: %q", got)
	}
	if got := string(mustOK(t, r, "DELETE", ns+"/instance?serviceName=never&ip=10.0.0.1&port=80", "")); got != "ok" {
		t.Fatalf("deregister from unknown service: %q", got)
	}
	if len(c.changedKeys()) != n+1 {
		t.Fatalf("idempotent deregisters wrote something")
	}
	// The empty service stays until deleted through the service API.
	if s, i := r.Counts(); s != 1 || i != 0 {
		t.Fatalf("Counts = %d,%d", s, i)
	}
}

// storeDigest summarises every datum, to prove a request changed nothing.
func storeDigest(r *Registry) string {
	var parts []string
	r.Range(func(d distro.Datum) bool {
		parts = append(parts, d.Key+"="+string(rune(d.Checksum()%1e6)))
		return true
	})
	sort.Strings(parts)
	return strings.Join(parts, ";")
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.MaxMetadataBytes = 64 })
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	before := storeDigest(r)
	long := strings.Repeat("x", 600)
	rows := []struct {
		name, method, uri, want string
	}{
		{"no service", "POST", "/instance?ip=10.0.0.1&port=80", "Param 'serviceName' is required."},
		{"blank service", "POST", "/instance?serviceName=%20&ip=10.0.0.1&port=80", "Param 'serviceName' is required."},
		{"bad service chars", "POST", "/instance?serviceName=a/b&ip=10.0.0.1&port=80", "serviceName"},
		{"service too long", "POST", "/instance?serviceName=" + long + "&ip=10.0.0.1&port=80", "serviceName"},
		{"empty grouped name", "POST", "/instance?serviceName=G@@&ip=10.0.0.1&port=80", "groupName@@serviceName"},
		{"bad group", "POST", "/instance?serviceName=svc&groupName=a%23b&ip=10.0.0.1&port=80", "groupName"},
		{"bad namespace", "POST", "/instance?serviceName=svc&namespaceId=a%23%23b&ip=10.0.0.1&port=80", "namespaceId"},
		{"no ip", "POST", "/instance?serviceName=svc&port=80", "Param 'ip' is required."},
		{"bad ipv4", "POST", "/instance?serviceName=svc&ip=10.0.0.256&port=80", "IP address"},
		{"bad ipv6", "POST", "/instance?serviceName=svc&ip=fe80:::1&port=80", "IP address"},
		{"bad host", "POST", "/instance?serviceName=svc&ip=a_b.example&port=80", "IP address"},
		{"no port", "POST", "/instance?serviceName=svc&ip=10.0.0.1", "Param 'port' is required."},
		{"port zero", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=0", "port"},
		{"port too big", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=65536", "port"},
		{"port not a number", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=eighty", "port"},
		{"bad cluster", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&clusterName=a_b", "cluster name"},
		{"negative weight", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&weight=-1", "weights range"},
		{"huge weight", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&weight=10001", "weights range"},
		{"nan weight", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&weight=NaN", "weights range"},
		{"metadata not an object", "POST", `/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata={"a":{"b":1}}`, "metadata format incorrect"},
		{"metadata broken json", "POST", `/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata={"a":`, "metadata format incorrect"},
		{"metadata bad pairs", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata=a,b", "metadata format incorrect"},
		{"metadata too large", "POST", "/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata=k=" + long, "metadata too large"},
		{"update bad weight", "PUT", "/instance?serviceName=svc&ip=10.0.0.1&port=80&weight=x", "weight"},
		{"deregister no ip", "DELETE", "/instance?serviceName=svc&port=80", "Param 'ip' is required."},
		{"beat bad json", "PUT", "/instance/beat?serviceName=svc&beat={nope", "beat"},
		{"beat bad port", "PUT", `/instance/beat?serviceName=svc&beat={"ip":"10.0.0.1","port":0}`, "port"},
		{"list no service", "GET", "/instance/list", "Param 'serviceName' is required."},
		{"list bad udpPort", "GET", "/instance/list?serviceName=svc&udpPort=-1", "udpPort"},
		{"service bad threshold", "POST", "/service?serviceName=new&protectThreshold=2", "protectThreshold"},
		{"service bad selector", "POST", "/service?serviceName=new&selector=[1]", "selector"},
		{"service exists", "POST", "/service?serviceName=svc", "already exists"},
		{"update unknown service", "PUT", "/service?serviceName=nope&protectThreshold=0.1", "not found"},
		{"delete unknown service", "DELETE", "/service?serviceName=nope", "not exist"},
		{"delete non-empty service", "DELETE", "/service?serviceName=svc", "has instances"},
		{"service list bad page", "GET", "/service/list?pageNo=0&pageSize=10", "pageNo"},
	}
	for _, row := range rows {
		ctx := call(t, r, row.method, ns+row.uri, "")
		body := string(ctx.Response.Body())
		if ctx.Response.StatusCode() != 400 || !strings.Contains(body, row.want) {
			t.Errorf("%s: %d %q, want 400 containing %q", row.name, ctx.Response.StatusCode(), body, row.want)
		}
		if ct := string(ctx.Response.Header.ContentType()); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: content type %q", row.name, ct)
		}
		if got := storeDigest(r); got != before {
			t.Fatalf("%s changed the store", row.name)
		}
	}
}

func TestHostnamesAndIPv6AreAccepted(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	for _, ip := range []string{"fe80::1", "2001:db8::10", "svc-1.example.com", "localhost"} {
		mustOK(t, r, "POST", ns+"/instance?serviceName=svc&port=80&ip="+ip, "")
	}
	if _, n := r.Counts(); n != 4 {
		t.Fatalf("instances = %d", n)
	}
}

func TestServiceAPI(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	mustOK(t, r, "POST", ns+"/service?serviceName=s1&groupName=G&protectThreshold=0.3&metadata=team=core", "")
	mustOK(t, r, "POST", ns+"/service?serviceName=s2&groupName=G", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=G@@s3&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=other&ip=10.0.0.1&port=80", "")

	got := decodeJSON[serviceJSON](t, mustOK(t, r, "GET", ns+"/service?serviceName=s1&groupName=G", ""))
	if got.Name != "s1" || got.GroupName != "G" || got.NamespaceID != "public" || got.ProtectThreshold != 0.3 || got.Metadata["team"] != "core" || string(got.Selector) != `{"type":"none"}` {
		t.Fatalf("get: %+v", got)
	}
	mustOK(t, r, "PUT", ns+"/service?serviceName=G@@s1&protectThreshold=0.5", "")
	got = decodeJSON[serviceJSON](t, mustOK(t, r, "GET", ns+"/service?serviceName=G@@s1", ""))
	if got.ProtectThreshold != 0.5 || got.Metadata["team"] != "core" {
		t.Fatalf("update kept metadata and changed threshold? %+v", got)
	}
	s3 := decodeJSON[serviceJSON](t, mustOK(t, r, "GET", ns+"/service?serviceName=G@@s3", ""))
	if len(s3.Clusters) != 1 || s3.Clusters[0].Name != "DEFAULT" {
		t.Fatalf("clusters of s3: %+v", s3.Clusters)
	}

	l := decodeJSON[serviceList](t, mustOK(t, r, "GET", ns+"/service/list?pageNo=1&pageSize=2&groupName=G&namespaceId=", ""))
	if l.Count != 3 || strings.Join(l.Doms, ",") != "s1,s2" {
		t.Fatalf("page 1: %+v", l)
	}
	l = decodeJSON[serviceList](t, mustOK(t, r, "GET", ns+"/service/list?pageNo=2&pageSize=2&groupName=G", ""))
	if l.Count != 3 || strings.Join(l.Doms, ",") != "s3" {
		t.Fatalf("page 2: %+v", l)
	}
	l = decodeJSON[serviceList](t, mustOK(t, r, "GET", ns+"/service/list?pageNo=9&pageSize=2", ""))
	if l.Count != 1 || l.Doms == nil || len(l.Doms) != 0 {
		t.Fatalf("default group, page past the end: %+v", l)
	}

	cat := decodeJSON[catalogList](t, mustOK(t, r, "GET", ns+"/catalog/services?pageNo=1&pageSize=10&serviceNameParam=s", ""))
	if cat.Count != 3 || cat.ServiceList[2].Name != "s3" || cat.ServiceList[2].IPCount != 1 || cat.ServiceList[2].HealthyInstanceCount != 1 {
		t.Fatalf("catalog: %+v", cat)
	}

	mustOK(t, r, "DELETE", ns+"/service?serviceName=s2&groupName=G", "")
	if ctx := call(t, r, "GET", ns+"/service?serviceName=G@@s2", ""); ctx.Response.StatusCode() != 404 {
		t.Fatalf("deleted service: %d", ctx.Response.StatusCode())
	}
	// Re-creating after deletion works (the new write is newer than the tombstone).
	mustOK(t, r, "POST", ns+"/service?serviceName=s2&groupName=G", "")
	if s, _ := r.Counts(); s != 4 {
		t.Fatalf("services = %d", s)
	}
}

func TestOperatorEndpoints(t *testing.T) {
	c := newFakeCluster()
	c.servers = []Server{{Name: "n1", HTTPAddr: "10.0.0.1:8848", State: "alive"}, {Name: "n2", HTTPAddr: "10.0.0.2:8848", State: "suspect"}}
	r := newTestRegistry(t, c, nil)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	srv := decodeJSON[serversJSON](t, mustOK(t, r, "GET", ns+"/operator/servers", ""))
	if len(srv.Servers) != 2 || srv.Servers[0].IP != "10.0.0.1" || srv.Servers[0].Port != 8848 || srv.Servers[0].State != "UP" || srv.Servers[1].State != "SUSPICIOUS" || srv.Servers[1].Address != "10.0.0.2:8848" {
		t.Fatalf("servers: %+v", srv)
	}
	m := decodeJSON[metricsJSON](t, mustOK(t, r, "GET", ns+"/operator/metrics", ""))
	if m.Status != "UP" || m.ServiceCount != 1 || m.InstanceCount != 1 || m.ResponsibleInstanceCount != 1 {
		t.Fatalf("metrics: %+v", m)
	}
	c.set(func(c *fakeCluster) { c.notReady = true })
	ctx := call(t, r, "GET", ns+"/operator/metrics", "")
	if ctx.Response.StatusCode() != 503 || decodeJSON[metricsJSON](t, ctx.Response.Body()).Status != "DOWN" {
		t.Fatalf("metrics while loading: %d %s", ctx.Response.StatusCode(), ctx.Response.Body())
	}
}

func TestRoutingAndReadiness(t *testing.T) {
	c := newFakeCluster()
	r := newTestRegistry(t, c, nil)
	if ctx := call(t, r, "GET", ns+"/nope", ""); ctx.Response.StatusCode() != 404 {
		t.Errorf("unknown path: %d", ctx.Response.StatusCode())
	}
	ctx := call(t, r, "PATCH", ns+"/instance/list", "")
	if ctx.Response.StatusCode() != 405 || string(ctx.Response.Header.Peek("Allow")) != "GET" {
		t.Errorf("wrong method: %d allow=%q", ctx.Response.StatusCode(), ctx.Response.Header.Peek("Allow"))
	}
	if r.Handle(&fasthttp.RequestCtx{}) {
		t.Errorf("a path outside /nacos/v1/ns was handled")
	}
	c.set(func(c *fakeCluster) { c.notReady = true })
	for _, uri := range []string{"/instance/list?serviceName=svc", "/service/list?pageNo=1&pageSize=1", "/instance?serviceName=svc&ip=1.1.1.1&port=1", "/service?serviceName=svc", "/catalog/services"} {
		ctx := call(t, r, "GET", ns+uri, "")
		if ctx.Response.StatusCode() != 503 || string(ctx.Response.Body()) != "server is not ready: loading snapshot" {
			t.Errorf("GET %s while loading: %d %s", uri, ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

// A write that would make a service's value larger than peers accept is
// refused with 413 and stores nothing; the service keeps working.
func TestServiceSizeCapRefusesGrowthPastIt(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.MaxServiceBytes = 300 })
	meta := url.QueryEscape(`{"k":"` + strings.Repeat("v", 150) + `"}`)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata="+meta, "")
	before, _ := r.Get(svcKey)
	ctx := call(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80&metadata="+meta, "")
	if ctx.Response.StatusCode() != 413 || !strings.Contains(string(ctx.Response.Body()), "over the 300 bytes") {
		t.Fatalf("oversized write = %d %q, want 413", ctx.Response.StatusCode(), ctx.Response.Body())
	}
	if after, _ := r.Get(svcKey); after.Checksum() != before.Checksum() {
		t.Fatal("a refused write changed the store")
	}
	mustOK(t, r, "DELETE", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
}
