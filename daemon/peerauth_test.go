package daemon

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/daemon/naming"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/internal/testutil"
)

// The member-address tests dial from 127.0.0.2: Linux routes all of
// 127.0.0.0/8 to lo, so a client bound there reaches the nodes on 127.0.0.1
// from an address that is no member's.
const strangerIP = "127.0.0.2"

const (
	apiSvc = "svc"
	apiKey = "public##DEFAULT_GROUP@@" + apiSvc // the datum key of apiSvc
)

// startClusterWith is startCluster with every node's config changed by mod,
// and waits until the nodes agree on one ring of all of them.
func startClusterWith(t *testing.T, size int, mod func(*Config)) []*Node {
	t.Helper()
	cfg := testConfig(t, "n1")
	mod(&cfg)
	first := startNode(t, cfg)
	nodes := []*Node{first}
	names := []string{"n1"}
	for i := 2; i <= size; i++ {
		name := fmt.Sprintf("n%d", i)
		cfg := testConfig(t, name, first.GossipAddr())
		mod(&cfg)
		nodes = append(nodes, startNode(t, cfg))
		names = append(names, name)
	}
	testutil.Eventually(t, 20*time.Second, "one ring of every node", func() error {
		_, err := agree(nodes, names...)
		return err
	})
	return nodes
}

// ownerAndOthers splits nodes into the owner of key and the rest.
func ownerAndOthers(t *testing.T, nodes []*Node, key string) (*Node, []*Node) {
	t.Helper()
	name := nodes[0].Ring().OwnerOf(key)
	var owner *Node
	var others []*Node
	for _, n := range nodes {
		if n.Name() == name {
			owner = n
		} else {
			others = append(others, n)
		}
	}
	if owner == nil || len(others) != len(nodes)-1 {
		t.Fatalf("owner %q of %s is not one of the nodes", name, key)
	}
	return owner, others
}

// strangerClient sends requests from strangerIP.
var strangerClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
	DisableKeepAlives: true,
	DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(strangerIP)}}).DialContext,
}}

// send makes one request with headers (pairs of name, value) and returns its status and body.
func send(t *testing.T, c *http.Client, method, u string, body []byte, headers ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// instanceURL is a Nacos v1 instance endpoint on n for ip:80 of apiSvc.
func instanceURL(n *Node, path, ip string) string {
	q := url.Values{"serviceName": {apiSvc}, "ip": {ip}, "port": {"80"}}
	return "http://" + n.HTTPAddr() + "/nacos/v1/ns/instance" + path + "?" + q.Encode()
}

// listIPs is the sorted IPs /instance/list of apiSvc answers on n.
func listIPs(n *Node) ([]string, error) {
	var l struct {
		Hosts []struct {
			IP string `json:"ip"`
		} `json:"hosts"`
	}
	if err := getJSON(n, "/nacos/v1/ns/instance/list?serviceName="+apiSvc, &l); err != nil {
		return nil, err
	}
	ips := make([]string, 0, len(l.Hosts))
	for _, h := range l.Hosts {
		ips = append(ips, h.IP)
	}
	slices.Sort(ips)
	return ips, nil
}

// everyNodeLists waits until every node lists exactly want for apiSvc.
func everyNodeLists(t *testing.T, nodes []*Node, what string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testutil.Eventually(t, 10*time.Second, what, func() error {
		for _, n := range nodes {
			got, err := listIPs(n)
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s lists %v, want %v", n.Name(), got, want)
			}
		}
		return nil
	})
}

// digests is every node's /v1/distro/status digest.
func digests(t *testing.T, nodes []*Node) []string {
	t.Helper()
	out := make([]string, len(nodes))
	for i, n := range nodes {
		var ds DistroStatusResponse
		if err := getJSON(n, "/v1/distro/status", &ds); err != nil {
			t.Fatal(err)
		}
		out[i] = ds.Digest
	}
	return out
}

// forwardedOK is the count of writes n forwarded to their owner.
func forwardedOK(t *testing.T, n *Node) float64 {
	t.Helper()
	_, body := send(t, client, http.MethodGet, "http://"+n.HTTPAddr()+"/metrics", nil)
	m := regexp.MustCompile(`(?m)^distrod_\w*forwarded_requests_total\{result="ok"\} (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0 // no write forwarded yet: the counter has no sample
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// writeThroughEveryNode registers through every node (the non-owners forward),
// beats and deregisters through a non-owner, and checks every node's list after each step.
func writeThroughEveryNode(t *testing.T, nodes []*Node) {
	_, others := ownerAndOthers(t, nodes, apiKey)
	var ips []string
	for i, n := range nodes {
		ip := fmt.Sprintf("10.0.0.%d", i+1)
		if status, body := send(t, client, http.MethodPost, instanceURL(n, "", ip), nil); status != 200 || body != "ok" {
			t.Fatalf("register %s through %s = %d %q", ip, n.Name(), status, body)
		}
		ips = append(ips, ip)
	}
	everyNodeLists(t, nodes, "registrations through every node", ips...)

	status, body := send(t, client, http.MethodPut, instanceURL(others[0], "/beat", ips[0]), nil)
	if status != 200 || !strings.Contains(body, `"code":10200`) {
		t.Fatalf("beat through non-owner %s = %d %s", others[0].Name(), status, body)
	}
	if status, body := send(t, client, http.MethodDelete, instanceURL(others[1], "", ips[0]), nil); status != 200 || body != "ok" {
		t.Fatalf("deregister through non-owner %s = %d %q", others[1].Name(), status, body)
	}
	everyNodeLists(t, nodes, "deregistration through a non-owner", ips[1:]...)
	for _, n := range others {
		if forwardedOK(t, n) == 0 {
			t.Errorf("non-owner %s forwarded no write", n.Name())
		}
	}
}

// TestForgedForwardedHeaderWithSecretIs401 pins the secret bypass: the node's
// registry config was built without the secret, so a request with only
// X-Distrod-Forwarded ran on a non-owner (200), and a forged DELETE removed a
// live instance everywhere. Writes through the real API still work.
func TestForgedForwardedHeaderWithSecretIs401(t *testing.T) {
	nodes := startClusterWith(t, 3, func(c *Config) { c.Secret = "s3cret" })
	writeThroughEveryNode(t, nodes)
	_, others := ownerAndOthers(t, nodes, apiKey)
	for _, forged := range []struct {
		method, ip string
		headers    []string
	}{
		{http.MethodDelete, "10.0.0.2", []string{naming.HeaderForwarded, "1"}},
		{http.MethodPost, "10.9.9.9", []string{naming.HeaderForwarded, "1"}},
		{http.MethodPost, "10.9.9.9", []string{naming.HeaderForwarded, "1", naming.HeaderSecret, "guess"}},
		{http.MethodPut, "10.9.9.9", []string{naming.HeaderForwarded, "1"}},
	} {
		for _, n := range nodes {
			status, body := send(t, client, forged.method, instanceURL(n, "", forged.ip), nil, forged.headers...)
			if status != http.StatusUnauthorized {
				t.Errorf("forged %s %s %v on %s = %d %q, want 401", forged.method, forged.ip, forged.headers, n.Name(), status, body)
			}
		}
	}
	// Beat with beat info would re-register: forged, it must not either.
	beat := url.Values{"serviceName": {apiSvc}, "beat": {`{"ip":"10.9.9.8","port":80,"cluster":"DEFAULT"}`}}
	status, _ := send(t, client, http.MethodPut, "http://"+others[0].HTTPAddr()+"/nacos/v1/ns/instance/beat?"+beat.Encode(), nil, naming.HeaderForwarded, "1")
	if status != http.StatusUnauthorized {
		t.Errorf("forged beat = %d, want 401", status)
	}

	// Nothing changed on any node: a write runs on the node that answers
	// before it answers, and each forged request went to every node.
	for _, n := range nodes {
		if got, err := listIPs(n); err != nil || !slices.Equal(got, []string{"10.0.0.2", "10.0.0.3"}) {
			t.Errorf("%s lists %v (%v) after forged requests, want [10.0.0.2 10.0.0.3]", n.Name(), got, err)
		}
	}
}

// Without a secret the forwarded header is honoured only from a member's
// address: from anyone else the request is an ordinary client write, routed
// to the owner like any other, so the header decides nothing.
func TestForwardedHeaderFromStrangerIsRouted(t *testing.T) {
	nodes := startClusterWith(t, 3, func(*Config) {})
	writeThroughEveryNode(t, nodes)
	_, others := ownerAndOthers(t, nodes, apiKey)
	n := others[0]

	before := forwardedOK(t, n)
	status, body := send(t, strangerClient, http.MethodPost, instanceURL(n, "", "10.0.0.7"), nil, naming.HeaderForwarded, "1")
	if status != 200 || body != "ok" {
		t.Fatalf("register from a stranger with the forwarded header = %d %q", status, body)
	}
	if after := forwardedOK(t, n); after != before+1 {
		t.Errorf("non-owner %s forwarded %v writes of the stranger's request, want 1: it trusted the header", n.Name(), after-before)
	}
	everyNodeLists(t, nodes, "the stranger's registration, applied by the owner", "10.0.0.2", "10.0.0.3", "10.0.0.7")

	// The same header from a member's address (the nodes forward from 127.0.0.1) runs where it lands.
	before = forwardedOK(t, n)
	if status, body := send(t, client, http.MethodPost, instanceURL(n, "", "10.0.0.8"), nil, naming.HeaderForwarded, "1"); status != 200 {
		t.Fatalf("forwarded register from a member address = %d %q", status, body)
	}
	if after := forwardedOK(t, n); after != before {
		t.Errorf("a forwarded request from a member was forwarded again (%v)", after-before)
	}
}

// capturePush encodes batch as distro's client sends it, by pushing it to a
// recording server, so a test can replay the bytes from another address.
func capturePush(t *testing.T, batch []distro.Datum) []byte {
	t.Helper()
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	c := distro.NewClient(distro.DefaultClientConfig())
	defer c.Close()
	if err := c.Push(context.Background(), distro.Peer{Name: "rec", Addr: srv.Listener.Addr().String()}, batch); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestPeerEndpointsRefuseStrangersWithoutSecret pins the open peer port:
// without a secret any client could PUT /distro/v1/datum and write peer data.
func TestPeerEndpointsRefuseStrangersWithoutSecret(t *testing.T) {
	nodes := startClusterWith(t, 2, func(*Config) {})
	n := nodes[0]
	before := digests(t, nodes)
	datum := distro.Datum{Key: "public##DEFAULT_GROUP@@evil", Version: uint64(time.Now().UnixNano()), Deleted: true}
	push := capturePush(t, []distro.Datum{datum})
	base := "http://" + n.HTTPAddr()
	for _, req := range []struct {
		method, path string
		body         []byte
	}{
		{http.MethodPut, distro.PathDatum, push},
		{http.MethodPost, distro.PathQuery, nil},
		{http.MethodPut, distro.PathChecksum + "?source=n2", nil},
		{http.MethodGet, distro.PathSnapshot, nil},
	} {
		status, body := send(t, strangerClient, req.method, base+req.path, req.body)
		if status != http.StatusForbidden || !strings.Contains(body, "member") {
			t.Errorf("%s %s from %s = %d %q, want 403 naming the member rule", req.method, req.path, strangerIP, status, body)
		}
	}
	if _, ok := n.registry.Get(datum.Key); ok {
		t.Fatalf("a stranger's push was applied")
	}
	if after := digests(t, nodes); !slices.Equal(before, after) {
		t.Errorf("digests changed from %v to %v", before, after)
	}
	// A member's address is served as before (a push names its sender, a member).
	self := nodes[1].members.Local()
	if status, body := send(t, client, http.MethodPut, base+distro.PathDatum, push,
		distro.SenderHeader, self.Name, distro.IncarnationHeader, self.Incarnation); status != http.StatusNoContent {
		t.Errorf("push from a member address = %d %q, want 204", status, body)
	}
}

// nonLoopback decides the start-up warning about a node reachable beyond
// loopback without a secret.
func TestNonLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr    string
		exposed bool
	}{
		{"127.0.0.1:8848", false},
		{"127.3.4.5:7946", false},
		{"[::1]:8848", false},
		{"[::ffff:127.0.0.1]:8848", false},
		{"0.0.0.0:8848", true},
		{"[::]:8848", true},
		{"10.1.2.3:7946", true},
		{"192.168.0.9:8848", true},
	} {
		if got := len(nonLoopback(tc.addr)) == 1; got != tc.exposed {
			t.Errorf("nonLoopback(%s) exposed = %t, want %t", tc.addr, got, tc.exposed)
		}
	}
}
