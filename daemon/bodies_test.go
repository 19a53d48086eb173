package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/daemon/naming"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
)

// announce opens a connection to addr and sends the headers of a request
// announcing a body of length bytes (chunked when length is -1), then only the
// first bytes of it.
func announce(t *testing.T, addr, method, path string, length int, first string, header ...string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n", method, path, addr)
	if length == -1 {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", length)
	}
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + first)
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatalf("write headers to %s: %v", addr, err)
	}
	return c
}

// answer reads the response on c. The deadline only turns a server that
// waits for the missing body (ReadTimeout is far longer in these tests) into
// a failure instead of a hang.
func answer(c net.Conn) (int, string, error) {
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", fmt.Errorf("no answer before the body was sent: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// bodyBytesInFlight reads the node's distrod_http_body_bytes_in_flight gauge from /metrics.
func bodyBytesInFlight(n *Node) (int, error) {
	const name = "distrod_http_body_bytes_in_flight "
	resp, err := client.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name); ok {
			f, err := strconv.ParseFloat(v, 64)
			return int(f), err
		}
	}
	return 0, fmt.Errorf("no %q in /metrics", strings.TrimSpace(name))
}

func inFlightIs(n *Node, want int) func() error {
	return func() error {
		got, err := bodyBytesInFlight(n)
		if err == nil && got != want {
			err = fmt.Errorf("%d body bytes in flight, want %d", got, want)
		}
		return err
	}
}

// Body limits are decided from the headers, before the body is read: a
// request announcing more than its route allows is answered at once, even
// though not one byte of its body was sent. Only a peer request with the
// cluster secret gets the large limit; every other route, unknown paths and
// peer paths without the right secret get the client limit.
func TestBodyLimitDecidedFromHeaders(t *testing.T) {
	const secret = "s3cret"
	cfg := testConfig(t, "n1")
	cfg.Secret = secret
	cfg.ReadTimeout = 10 * time.Minute // a server that waits for the body never answers in time
	n := startNode(t, cfg)
	clientLimit, peerLimit := cfg.MaxClientBodySize, cfg.MaxPeerBodySize
	for _, tc := range []struct {
		name, method, path string
		length             int
		header             []string
		status             int
		msg                string
	}{
		{"client API over its limit", "POST", "/nacos/v1/ns/instance", clientLimit + 1, nil,
			413, fmt.Sprintf("the limit for the client API is %d bytes", clientLimit)},
		{"client API announcing 32 MiB", "PUT", "/nacos/v1/ns/instance/beat", 32 << 20, nil, 413, "client API"},
		{"ops route", "POST", "/health", 32 << 20, nil, 413, "client API"},
		{"unknown path", "PUT", "/no/such/route", 32 << 20, nil, 413, "client API"},
		{"peer path dressed up", "PUT", "/nacos/../distro/v1/datum", 32 << 20, nil, 401, distro.SecretHeader},
		{"peer without secret", "PUT", distro.PathDatum, 32 << 20, nil, 401, distro.SecretHeader},
		{"peer with wrong secret", "PUT", distro.PathDatum, 32 << 20, []string{distro.SecretHeader + ": wrong"}, 401, distro.SecretHeader},
		{"peer with secret over the peer limit", "PUT", distro.PathDatum, peerLimit + 1, []string{distro.SecretHeader + ": " + secret},
			413, fmt.Sprintf("the limit for the peer endpoints is %d bytes", peerLimit)},
		// Neither kind could be sure to return a reservation (see bodyGate), so neither gets one.
		{"chunked body", "POST", "/nacos/v1/ns/instance", -1, nil, 411, "Content-Length"},
		{"chunked peer body", "PUT", distro.PathDatum, -1, []string{distro.SecretHeader + ": " + secret}, 411, "Content-Length"},
		{"100-continue", "POST", "/nacos/v1/ns/instance", 1 << 10, []string{"Expect: 100-continue"}, 417, ""},
		{"100-continue over the limit", "POST", "/nacos/v1/ns/instance", clientLimit + 1, []string{"Expect: 100-continue"}, 413, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			first := ""
			if tc.length == -1 {
				first = "100\r\n" // a chunk of 256 bytes, of which none follow
			}
			c := announce(t, n.HTTPAddr(), tc.method, tc.path, tc.length, first, tc.header...)
			status, body, err := answer(c)
			if err != nil {
				t.Fatalf("%s %s announcing %d bytes: %v", tc.method, tc.path, tc.length, err)
			}
			if status != tc.status || !strings.Contains(body, tc.msg) {
				t.Errorf("%s %s announcing %d bytes = %d %q, want %d containing %q", tc.method, tc.path, tc.length, status, body, tc.status, tc.msg)
			}
		})
	}
	if err := inFlightIs(n, 0)(); err != nil {
		t.Errorf("after the refused requests: %v", err)
	}

	// An authenticated push of a few MiB still goes through. Without the secret
	// it is refused: a small push reads the 401; a large one is answered and its
	// connection closed before its body is read, so the sender, still writing,
	// may see the connection break first.
	batch := make([]distro.Datum, 3000)
	pad := strings.Repeat("x", 950)
	for i := range batch {
		batch[i] = distro.Datum{Key: fmt.Sprintf("public##DEFAULT_GROUP@@bulk-%d-%s", i, pad), Version: uint64(time.Now().UnixNano()), Deleted: true}
	}
	to := distro.Peer{Name: "n1", Addr: n.HTTPAddr()}
	push := func(secret string, batch []distro.Datum) error {
		cc := distro.DefaultClientConfig()
		cc.Secret = secret
		self := n.members.Local() // pushes name their sender, a member
		cc.Name, cc.Incarnation = self.Name, self.Incarnation
		pc := distro.NewClient(cc)
		defer pc.Close()
		return pc.Push(context.Background(), to, batch)
	}
	if err := push(secret, batch); err != nil {
		t.Errorf("authenticated push of %d tombstones (~3 MiB): %v", len(batch), err)
	}
	if err := push("", batch); err == nil {
		t.Errorf("push of ~3 MiB without the secret succeeded")
	}
	if err := push("", batch[:1]); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("push of one datum without the secret = %v, want a 401", err)
	}

	// The client limit fits the largest forms the registry accepts: metadata at
	// naming's MaxMetadataBytes, each byte escaped as \u00XX and then URL-encoded.
	limit := naming.DefaultConfig().MaxMetadataBytes
	meta, _ := json.Marshal(map[string]string{"k": strings.Repeat("\x01", limit-1)})
	beat, _ := json.Marshal(map[string]any{"serviceName": "DEFAULT_GROUP@@big", "ip": "10.0.0.1", "port": 80,
		"cluster": "DEFAULT", "weight": 1, "metadata": map[string]string{"k": strings.Repeat("\x01", limit-1)}})
	for _, req := range []struct{ method, path, form string }{
		{"POST", "/nacos/v1/ns/instance", url.Values{"serviceName": {"big"}, "ip": {"10.0.0.1"}, "port": {"80"}, "metadata": {string(meta)}}.Encode()},
		{"PUT", "/nacos/v1/ns/instance/beat", url.Values{"serviceName": {"DEFAULT_GROUP@@big"}, "beat": {string(beat)}}.Encode()},
	} {
		r, err := http.NewRequest(req.method, "http://"+n.HTTPAddr()+req.path, strings.NewReader(req.form))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := client.Do(r)
		if err != nil {
			t.Fatalf("%s %s with %d bytes: %v", req.method, req.path, len(req.form), err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s %s with the largest metadata (%d bytes of form) = %d %q, want 200", req.method, req.path, len(req.form), resp.StatusCode, b)
		}
	}
}

// The bytes of bodies in flight are bounded per node: requests whose
// announced bodies would pass the budget are refused with 503 from their
// headers alone; peer and client requests draw from separate halves, so
// neither starves the other (without a secret anyone may send as a peer);
// and a request that ends returns its share.
func TestBodyBudgetBoundsBytesInFlight(t *testing.T) {
	cfg := testConfig(t, "n1") // no secret: every /distro/ request gets the peer limit
	cfg.ReadTimeout = 10 * time.Minute
	cfg.MaxClientBodySize = 16 << 10
	cfg.MaxPeerBodySize = 32 << 10
	cfg.MaxBodyBytesInFlight = 128 << 10 // halves of 64 KiB: two peer bodies, four client bodies
	n := startNode(t, cfg)
	addr := n.HTTPAddr()
	refused := func(what string, c net.Conn, class string) {
		t.Helper()
		status, body, err := answer(c)
		want := fmt.Sprintf("for %s would exceed their budget of 65536 bytes", class)
		if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, want) {
			t.Errorf("%s = %d %q (%v), want 503 containing %q", what, status, body, err, want)
		}
	}
	peer := func() net.Conn { return announce(t, addr, "PUT", distro.PathDatum, 32<<10, "ab") }
	nacos := func() net.Conn { return announce(t, addr, "POST", "/nacos/v1/ns/instance", 16<<10, "ab") }

	p1, p2 := peer(), peer()
	testutil.Eventually(t, 5*time.Second, "two held peer bodies reserved", inFlightIs(n, 64<<10))
	refused("a third peer body", peer(), "the peer endpoints")
	held := []net.Conn{nacos()}
	testutil.Eventually(t, 5*time.Second, "a client body admitted beside the full peer half", inFlightIs(n, 80<<10))

	_ = p1.Close()
	_ = p2.Close()
	testutil.Eventually(t, 5*time.Second, "closed connections return their bodies", inFlightIs(n, 16<<10))
	held = append(held, nacos(), nacos(), nacos())
	testutil.Eventually(t, 5*time.Second, "four held client bodies reserved", inFlightIs(n, 64<<10))
	refused("a fifth client body", nacos(), "the client API")
	held = append(held, peer())
	testutil.Eventually(t, 5*time.Second, "a peer body admitted beside the full client half", inFlightIs(n, 96<<10))
	if status, _ := do(t, http.MethodGet, "http://"+addr+"/health"); status != http.StatusOK {
		t.Errorf("/health while the client half is full = %d, want 200 (it has no body)", status)
	}

	for _, c := range held {
		_ = c.Close()
	}
	testutil.Eventually(t, 5*time.Second, "closed connections return their bodies", inFlightIs(n, 0))
	form := url.Values{"serviceName": {"svc"}, "ip": {"10.0.0.1"}, "port": {"80"}}.Encode()
	resp, err := client.Post("http://"+addr+"/nacos/v1/ns/instance", "application/x-www-form-urlencoded", strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("register after the budget emptied = %d, want 200", resp.StatusCode)
	}
	if err := inFlightIs(n, 0)(); err != nil {
		t.Errorf("after a completed request: %v", err)
	}
}

// The gate's cost on every request: classify the path, reserve and release a
// Nacos form's body.
func BenchmarkBodyGate(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Secret = "s3cret"
	g := newBodyGate(cfg, prometheus.NewRegistry())
	var h fasthttp.RequestHeader
	h.SetMethod("POST")
	h.SetRequestURI("/nacos/v1/ns/instance?serviceName=svc&ip=10.0.0.1&port=80")
	h.SetHost("127.0.0.1:8848")
	h.SetContentLength(300)
	b.ReportAllocs()
	for b.Loop() {
		g.headerReceived(&h)
		t, _ := g.take(&h)
		g.release(t)
	}
}
