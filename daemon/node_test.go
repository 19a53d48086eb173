package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/distrod/distrod/membership"
	"go.uber.org/goleak"
)

// fasthttp keeps a few goroutines of its own: the server date ticker and the
// dialer's address cache live for the process; client and worker-pool cleaners
// sleep up to 10 s before noticing they are done. None belongs to a node.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
	)
}

// tlogWriter sends logs to t.Log until the test's cleanups are done; later
// lines (memberlist's suspicion timers fire even after its Shutdown) are dropped,
// since t.Log after a test completed panics.
type tlogWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func newTLogWriter(t testing.TB) *tlogWriter {
	w := &tlogWriter{t: t}
	t.Cleanup(func() { // registered before any node: runs after their shutdowns
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *tlogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// loggers holds one writer per test, shared by all nodes of the test.
var loggers sync.Map // testing.TB -> *tlogWriter

func testLogger(t testing.TB) *slog.Logger {
	w, ok := loggers.Load(t)
	if !ok {
		w, _ = loggers.LoadOrStore(t, newTLogWriter(t))
	}
	return slog.New(slog.NewTextHandler(w.(*tlogWriter), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testConfig is a loopback node on port 0 with the local profile and fast probes.
func testConfig(t testing.TB, name string, join ...string) Config {
	cfg := DefaultConfig()
	cfg.Name = name
	cfg.Membership.BindAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Membership.Join = join
	cfg.Membership.Profile = "local"
	cfg.Membership.ProbeInterval = 100 * time.Millisecond
	cfg.Membership.ProbeTimeout = 50 * time.Millisecond
	cfg.Membership.GossipInterval = 20 * time.Millisecond
	cfg.Membership.PushPullInterval = 500 * time.Millisecond
	cfg.Membership.SuspicionMult = 2
	cfg.Membership.JoinRetryMin = 50 * time.Millisecond
	cfg.Membership.JoinRetryMax = 200 * time.Millisecond
	cfg.Membership.LeaveTimeout = time.Second
	cfg.Logger = testLogger(t)
	return cfg
}

// startNode starts a node and shuts it down when the test ends.
func startNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.Name, err)
	}
	n.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", cfg.Name, err)
		}
	})
	if len(cfg.Membership.Join) == 0 || cfg.Bootstrap {
		waitReady(t, n) // a new cluster is ready once its ring is built, milliseconds after Start
	}
	return n
}

func startCluster(t *testing.T, size int) []*Node {
	t.Helper()
	first := startNode(t, testConfig(t, "n1"))
	nodes := []*Node{first}
	for i := 2; i <= size; i++ {
		nodes = append(nodes, startNode(t, testConfig(t, fmt.Sprintf("n%d", i), first.GossipAddr())))
	}
	return nodes
}

var client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func do(t *testing.T, method, url string) (int, []byte) {
	t.Helper()
	status, body := send(t, client, method, url, nil)
	return status, []byte(body)
}

func getJSON(n *Node, path string, v any) error {
	resp, err := client.Get("http://" + n.HTTPAddr() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// agree checks that every node sees exactly want alive and the same ring over them.
func agree(nodes []*Node, want ...string) (string, error) {
	version := ""
	for _, n := range nodes {
		var mr MembersResponse
		if err := getJSON(n, "/v1/cluster/members", &mr); err != nil {
			return "", err
		}
		alive := map[string]bool{}
		for _, m := range mr.Members {
			if m.State == membership.StateAlive {
				alive[m.Name] = true
			}
			if m.Self != (m.Name == n.Name()) {
				return "", fmt.Errorf("%s: member %s has self=%t", n.Name(), m.Name, m.Self)
			}
		}
		if len(alive) != len(want) {
			return "", fmt.Errorf("%s sees alive %v, want %v", n.Name(), alive, want)
		}
		for _, w := range want {
			if !alive[w] {
				return "", fmt.Errorf("%s does not see %s alive", n.Name(), w)
			}
		}
		var rr RingResponse
		if err := getJSON(n, "/v1/cluster/ring", &rr); err != nil {
			return "", err
		}
		if len(rr.Members) != len(want) || len(rr.Owners) != rr.Partitions {
			return "", fmt.Errorf("%s: ring members %v, %d owners for %d partitions", n.Name(), rr.Members, len(rr.Owners), rr.Partitions)
		}
		if version == "" {
			version = rr.Version
		} else if rr.Version != version {
			return "", fmt.Errorf("%s: ring version %s, others %s", n.Name(), rr.Version, version)
		}
	}
	return version, nil
}

func TestClusterOfThree(t *testing.T) {
	nodes := startCluster(t, 3)
	var v3 string
	testutil.Eventually(t, 20*time.Second, "three alive members and one ring", func() (err error) {
		v3, err = agree(nodes, "n1", "n2", "n3")
		return err
	})
	if v3 == "" {
		t.Fatal("empty ring version")
	}

	for _, n := range nodes {
		status, body := do(t, http.MethodGet, "http://"+n.HTTPAddr()+"/health")
		var h HealthResponse
		if err := json.Unmarshal(body, &h); err != nil || status != http.StatusOK || h.Status != "UP" || h.Node != n.Name() {
			t.Errorf("%s /health = %d %s (%v)", n.Name(), status, body, err)
		}
		var ds DistroStatusResponse
		if err := getJSON(n, "/v1/distro/status", &ds); err != nil || !ds.Ready || ds.Node != n.Name() || ds.RingVersion != v3 {
			t.Errorf("%s /v1/distro/status = %+v (%v), want ready with ring %s", n.Name(), ds, err, v3)
		}
	}

	// Owned partitions add up to the whole ring.
	total := 0
	for _, n := range nodes {
		total += len(n.Ring().Owned(n.Name()))
	}
	if total != DefaultConfig().Membership.Partitions {
		t.Errorf("owned partitions add up to %d, want %d", total, DefaultConfig().Membership.Partitions)
	}

	// A graceful shutdown is seen as left, and the survivors agree on a new ring.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[2].Shutdown(ctx); err != nil {
		t.Fatalf("shutdown n3: %v", err)
	}
	if err := nodes[2].Shutdown(ctx); err != nil {
		t.Errorf("second shutdown of n3: %v", err)
	}
	survivors := nodes[:2]
	testutil.Eventually(t, 20*time.Second, "n3 seen as left, new ring", func() error {
		for _, n := range survivors {
			for _, m := range n.Members() {
				if m.Name == "n3" && m.State != membership.StateLeft {
					return fmt.Errorf("%s sees n3 as %s", n.Name(), m.State)
				}
			}
		}
		v2, err := agree(survivors, "n1", "n2")
		if err == nil && v2 == v3 {
			return fmt.Errorf("ring version unchanged: %s", v2)
		}
		return err
	})
}

func TestOpsRouting(t *testing.T) {
	n := startNode(t, testConfig(t, "solo"))
	testutil.Eventually(t, 10*time.Second, "standalone node ready and in its ring", func() error {
		if !n.Ready() || n.Ring() == nil {
			return fmt.Errorf("ready %t, ring %v", n.Ready(), n.Ring())
		}
		return nil
	})
	base := "http://" + n.HTTPAddr()
	for _, tc := range []struct {
		method, path string
		status       int
		contains     string
	}{
		{http.MethodGet, "/health", 200, `"status":"UP"`},
		{http.MethodGet, "/v1/cluster/members", 200, `"self":true`},
		{http.MethodGet, "/v1/cluster/ring", 200, `"members":["solo"]`},
		{http.MethodGet, "/v1/distro/status", 200, `"node":"solo"`},
		{http.MethodGet, "/metrics", 200, "distrod_cluster_members"},
		{http.MethodGet, "/nope", 404, "no such endpoint"},
		{http.MethodPost, "/health", 405, "not allowed"},
		{http.MethodDelete, "/v1/cluster/ring", 405, "not allowed"},
	} {
		status, body := do(t, tc.method, base+tc.path)
		if status != tc.status || !strings.Contains(string(body), tc.contains) {
			t.Errorf("%s %s = %d %.200s, want %d containing %q", tc.method, tc.path, status, body, tc.status, tc.contains)
		}
	}
	status, body := do(t, http.MethodGet, base+"/metrics")
	for _, want := range []string{`distrod_cluster_members{state="alive"} 1`, "distrod_cluster_partitions_owned 1024", "distrod_ready 1", `distrod_peer_bytes_total{call="checksum",direction="sent"}`} {
		if status != 200 || !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestHealthBeforeStartAndAfterShutdown(t *testing.T) {
	n, err := New(testConfig(t, "lone"))
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	base := "http://" + n.HTTPAddr()
	testutil.Eventually(t, 10*time.Second, "ready", func() error {
		if status, body := do(t, http.MethodGet, base+"/health"); status != 200 {
			return fmt.Errorf("/health %d %s", status, body)
		}
		return nil
	})
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.Ready() {
		t.Error("ready after shutdown")
	}
	if _, err := client.Get(base + "/health"); err == nil {
		t.Error("HTTP still served after shutdown")
	}
}

func TestNewReleasesListenersOnError(t *testing.T) {
	a, err := New(testConfig(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown(context.Background())
	cfg := testConfig(t, "b")
	cfg.Membership.BindAddr = a.GossipAddr() // taken: New must fail and release its HTTP listener
	b, err := New(cfg)
	if err == nil {
		b.Shutdown(context.Background())
		t.Fatal("New succeeded on a taken gossip port")
	} else if fe, ok := err.(*FieldError); !ok || fe.Field != "Membership.BindAddr" {
		t.Errorf("taken gossip port: %v, want a FieldError on Membership.BindAddr", err)
	}
	cfg = testConfig(t, "c")
	cfg.HTTPAddr = a.HTTPAddr()
	if _, err := New(cfg); err == nil {
		t.Fatal("New succeeded on a taken HTTP port")
	} else if fe, ok := err.(*FieldError); !ok || fe.Field != "HTTPAddr" {
		t.Errorf("taken HTTP port: %v, want a FieldError on HTTPAddr", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		mod   func(*Config)
	}{
		{"Name", func(c *Config) { c.Name = "" }},
		{"Name", func(c *Config) { c.Name = "n1\r\nX-Distrod-Sender: n2" }}, // travels in peer request headers
		{"HTTPAddr", func(c *Config) { c.HTTPAddr = "nohostport" }},
		{"Membership.BindAddr", func(c *Config) { c.Membership.BindAddr = "127.0.0.1:70000" }},
		{"Membership.AdvertiseAddr", func(c *Config) { c.Membership.AdvertiseAddr = "localhost:7946" }},
		{"Membership.Profile", func(c *Config) { c.Membership.Profile = "moon" }},
		{"Membership.Partitions", func(c *Config) { c.Membership.Partitions = 0 }},
		{"Membership.Join", func(c *Config) { c.Membership.Join = []string{"x"} }},
		{"Distro.TombstoneTTL", func(c *Config) { c.Distro.TombstoneTTL = c.Distro.VerifyInterval }},
		{"Registry.DeleteTimeout", func(c *Config) { c.Registry.DeleteTimeout = c.Registry.BeatTimeout / 2 }},
		{"Distro.MaxClockSkew", func(c *Config) { c.Distro.MaxClockSkew = 0 }},
		{"MaxRequestHeaderBytes", func(c *Config) { c.MaxRequestHeaderBytes = 100 }},
		{"MaxClientBodySize", func(c *Config) { c.MaxClientBodySize = 0 }},
		{"MaxPeerBodySize", func(c *Config) { c.MaxPeerBodySize = c.MaxClientBodySize - 1 }},
		{"MaxBodyBytesInFlight", func(c *Config) { c.MaxBodyBytesInFlight = 2*c.MaxPeerBodySize - 2 }},
		// The parts' own Validate, named by their path in the tree.
		{"Membership.JoinRetryMax", func(c *Config) { c.Membership.JoinRetryMax = c.Membership.JoinRetryMin / 2 }},
		{"Membership.ReconnectTimeout", func(c *Config) { c.Membership.ReconnectTimeout = -time.Second }},
		{"Distro.MaxBatch", func(c *Config) { c.Distro.MaxBatch = 0 }},
		{"Distro.BootstrapWait", func(c *Config) { c.Distro.BootstrapWait = 0 }},
		{"Distro.RemoveGrace", func(c *Config) { c.Distro.RemoveGrace = -time.Second }},
		{"Distro.RemoveGrace", func(c *Config) { c.Distro.RemoveGrace = c.Distro.TombstoneTTL + time.Second }},
		{"Distro.SyncRetryMax", func(c *Config) { c.Distro.SyncRetryMax = c.Distro.SyncRetryDelay / 2 }},
		{"Registry.FailureHold", func(c *Config) { c.Registry.FailureHold = -time.Second }},
		{"Registry.SettleHold", func(c *Config) { c.Registry.SettleHold = -time.Second }},
		{"Registry.StallHold", func(c *Config) { c.Registry.StallHold = -time.Second }},
		{"Registry.ListCacheBytes", func(c *Config) { c.Registry.ListCacheBytes = -1 }},
		{"Registry.MaxSubscribers", func(c *Config) { c.Registry.MaxSubscribers = 0 }},
		{"Registry.SubscriberTTL", func(c *Config) { c.Registry.SubscriberTTL = time.Second }},
		{"Registry.ForwardDialTimeout", func(c *Config) { c.Registry.ForwardDialTimeout = 2 * c.Registry.ForwardTimeout }},
		// What the daemon fills is refused, not overwritten.
		{"Membership.Name", func(c *Config) { c.Membership.Name = "other" }},
		{"Membership.Secret", func(c *Config) { c.Membership.Secret = "s" }},
		{"Distro.Standalone", func(c *Config) { c.Distro.Standalone = true }},
		{"Registry.Secret", func(c *Config) { c.Registry.Secret = "s" }},
	} {
		cfg := DefaultConfig()
		cfg.Name = "x"
		tc.mod(&cfg)
		err := cfg.Validate()
		fe, ok := err.(*FieldError)
		if !ok || fe.Field != tc.field {
			t.Errorf("%s: Validate = %v, want a FieldError on %s", tc.field, err, tc.field)
		}
	}
	cfg := DefaultConfig()
	cfg.Name = "x"
	if err := cfg.Validate(); err != nil {
		t.Errorf("defaults with a name: %v", err)
	}
}

// Every setting of the tree reaches its part as given: New fills only what
// the daemon owns and overwrites nothing (it once set RemoveGrace to
// TombstoneTTL, raised StallHold and SyncRetryMax behind the caller's back).
func TestNewOverwritesNoSetting(t *testing.T) {
	cfg := testConfig(t, "a")
	cfg.Distro.RemoveGrace = time.Minute // not TombstoneTTL
	cfg.Distro.SyncRetryDelay = 2 * time.Second
	cfg.Distro.SyncRetryMax = 3 * time.Second
	cfg.Distro.MaxBatch = 17
	cfg.Registry.StallHold = time.Second // below MinStallHold(VerifyInterval)
	cfg.Registry.FailureHold = 7 * time.Second
	cfg.Registry.ListCacheBytes = 12345
	cfg.Registry.UDPAddr = "127.0.0.1:0"
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(context.Background())

	dc := n.engine.Config()
	if dc.RemoveGrace != time.Minute || dc.TombstoneTTL == dc.RemoveGrace {
		t.Errorf("engine runs with RemoveGrace %s (TombstoneTTL %s), want the given 1m", dc.RemoveGrace, dc.TombstoneTTL)
	}
	if !dc.Standalone || dc.Logger == nil || dc.Metrics == nil {
		t.Errorf("engine: daemon-owned fields not filled: standalone %v, logger %v, metrics %v", dc.Standalone, dc.Logger, dc.Metrics)
	}
	dc.Standalone, dc.Logger, dc.Metrics = cfg.Distro.Standalone, cfg.Distro.Logger, cfg.Distro.Metrics
	if !reflect.DeepEqual(dc, cfg.Distro) {
		t.Errorf("engine config differs from the tree's:\n got %+v\nwant %+v", dc, cfg.Distro)
	}
	rc := n.registry.Config()
	if rc.StallHold != time.Second {
		t.Errorf("registry runs with StallHold %s, want the given 1s", rc.StallHold)
	}
	rc.Logger, rc.Metrics = cfg.Registry.Logger, cfg.Registry.Metrics
	if !reflect.DeepEqual(rc, cfg.Registry) {
		t.Errorf("registry config differs from the tree's:\n got %+v\nwant %+v", rc, cfg.Registry)
	}
}

func TestSecretClusterRefusesOtherSecret(t *testing.T) {
	c1 := testConfig(t, "s1")
	c1.Secret = "right"
	n1 := startNode(t, c1)
	c2 := testConfig(t, "s2", n1.GossipAddr())
	c2.Secret = "right"
	n2 := startNode(t, c2)
	testutil.Eventually(t, 20*time.Second, "two nodes with the same secret agree", func() error {
		_, err := agree([]*Node{n1, n2}, "s1", "s2")
		return err
	})
	c3 := testConfig(t, "s3", n1.GossipAddr())
	c3.Secret = "wrong"
	n3 := startNode(t, c3)
	// s3 keeps retrying its join and stays not ready, saying why; nobody admits it.
	waitLoadingBecause(t, n3, "no other member", "join "+n1.GossipAddr()+" failed")
	if len(n3.Members()) != 1 {
		t.Errorf("s3 sees %v", n3.Members())
	}
	for _, n := range []*Node{n1, n2} {
		for _, m := range n.Members() {
			if m.Name == "s3" {
				t.Errorf("%s admitted s3 with a wrong secret", n.Name())
			}
		}
	}
	// Peer HTTP without the secret is refused.
	status, _ := do(t, http.MethodGet, "http://"+n1.HTTPAddr()+"/distro/v1/datums")
	if status != http.StatusUnauthorized {
		t.Errorf("GET /distro/v1/datums without the secret = %d, want 401", status)
	}
}

// A body over its route's limit is refused with 413 before any handler runs,
// on the Nacos API and the peer endpoints alike, and the node keeps serving.
func TestOversizedBodyIs413(t *testing.T) {
	cfg := testConfig(t, "n1")
	cfg.MaxClientBodySize = 1 << 10
	cfg.MaxPeerBodySize = 2 << 10
	n := startNode(t, cfg)
	big := strings.Repeat("x", 4<<10)
	for _, path := range []string{"/distro/v1/datum", "/nacos/v1/ns/instance"} {
		req, err := http.NewRequest(http.MethodPut, "http://"+n.HTTPAddr()+path, strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("PUT %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too large") {
			t.Errorf("PUT %s with %d bytes = %d %q, want 413", path, len(big), resp.StatusCode, body)
		}
	}
	if status, _ := do(t, http.MethodGet, "http://"+n.HTTPAddr()+"/health"); status != http.StatusOK {
		t.Fatalf("/health after oversized requests = %d", status)
	}
}

// waitReady waits until n serves (loaded, with a ring).
func waitReady(t *testing.T, n *Node) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, n.Name()+" ready", func() error {
		if !n.Ready() {
			return fmt.Errorf("not ready: %s", n.loadingReason())
		}
		return nil
	})
}

// waitLoadingBecause waits until n's /health is 503 LOADING with a reason
// containing every part.
func waitLoadingBecause(t *testing.T, n *Node, parts ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, n.Name()+" loading and saying why", func() error {
		status, body := do(t, http.MethodGet, "http://"+n.HTTPAddr()+"/health")
		var h HealthResponse
		if err := json.Unmarshal(body, &h); err != nil {
			return fmt.Errorf("/health = %d %q: %v", status, body, err)
		}
		if status != http.StatusServiceUnavailable || h.Status != "LOADING" || h.Ready {
			return fmt.Errorf("/health = %d %+v, want 503 LOADING", status, h)
		}
		for _, p := range parts {
			if !strings.Contains(h.Reason, p) {
				return fmt.Errorf("reason %q does not say %q", h.Reason, p)
			}
		}
		return nil
	})
}

// Regression (issue 8): a node restarted with --join addresses that answer
// nothing declared itself a cluster of one after 3 s, ready and empty. It must
// stay loading (503, /health saying why) until a ready member reaches it — here
// a node started on purpose with Bootstrap that joins it — and then load.
func TestNodeJoiningNobodyStaysLoadingUntilAReadyMemberArrives(t *testing.T) {
	dead := testutil.ClosedLoopbackAddr(t)
	lonely := startNode(t, testConfig(t, "n2", dead))
	waitLoadingBecause(t, lonely, "no other member", "join "+dead+" failed")
	if lonely.Ready() {
		t.Fatal("a node that reached nobody is ready")
	}
	status, body := do(t, http.MethodGet, "http://"+lonely.HTTPAddr()+"/nacos/v1/ns/instance/list?serviceName=s")
	if status != http.StatusServiceUnavailable {
		t.Fatalf("list on a node that reached nobody = %d %q, want 503", status, body)
	}

	bc := testConfig(t, "n1", lonely.GossipAddr())
	bc.Bootstrap = true
	first := startNode(t, bc) // ready at once: it loads nothing, waits for no one
	status, _ = do(t, http.MethodPost, "http://"+first.HTTPAddr()+"/nacos/v1/ns/instance?serviceName=s&ip=10.0.0.1&port=1")
	if status != http.StatusOK {
		t.Fatalf("register on the bootstrapped node = %d", status)
	}
	testutil.Eventually(t, 20*time.Second, "n2 loads from the bootstrapped node and serves its data", func() error {
		if !lonely.Ready() {
			return fmt.Errorf("n2 not ready: %s", lonely.loadingReason())
		}
		status, body := do(t, http.MethodGet, "http://"+lonely.HTTPAddr()+"/nacos/v1/ns/instance/list?serviceName=s")
		if status != http.StatusOK || !strings.Contains(string(body), "10.0.0.1") {
			return fmt.Errorf("list on n2 = %d %s", status, body)
		}
		return nil
	})
	var st DistroStatusResponse
	if err := getJSON(lonely, "/v1/distro/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.SnapshotSource != "n1" || st.Horizon.IsZero() {
		t.Fatalf("n2's status %+v: want loaded from n1 with n1's horizon", st.Status)
	}
}

// A node the cluster refuses (another partition count) stays loading and
// says why, instead of serving an empty registry of its own.
func TestRefusedNodeStaysLoadingAndSaysWhy(t *testing.T) {
	n1 := startNode(t, testConfig(t, "n1"))
	cfg := testConfig(t, "n2", n1.GossipAddr())
	cfg.Membership.Partitions = 512
	n2 := startNode(t, cfg)
	waitLoadingBecause(t, n2, "no other member", "partitions")
}

// Regression (issue 9): the Java 1.x client sends register parameters in the
// query; fasthttp's default 4 KiB read buffer answered 431 to 3 950 characters
// of metadata, under the registry's own 4 096-byte metadata limit. A request
// line beyond the documented limit still gets a 431 that names it.
func TestLongQueryWithinTheMetadataLimitIsServed(t *testing.T) {
	n := startNode(t, testConfig(t, "n1"))
	value := strings.Repeat("v", 3950)
	q := url.Values{"serviceName": {"java1x"}, "ip": {"10.0.0.1"}, "port": {"80"}, "metadata": {`{"k":"` + value + `"}`}}
	base := "http://" + n.HTTPAddr() + "/nacos/v1/ns/instance?"
	if status, body := do(t, http.MethodPost, base+q.Encode()); status != http.StatusOK {
		t.Fatalf("register with %d bytes of metadata in the query = %d %q, want 200", len(value), status, body)
	}
	status, body := do(t, http.MethodGet, "http://"+n.HTTPAddr()+"/nacos/v1/ns/instance/list?serviceName=java1x")
	if status != http.StatusOK || !strings.Contains(string(body), value) {
		t.Fatalf("list = %d, metadata not kept", status)
	}
	q.Set("metadata", strings.Repeat("x", n.cfg.MaxRequestHeaderBytes))
	status, body = do(t, http.MethodPost, base+q.Encode())
	if status != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(body), strconv.Itoa(n.cfg.MaxRequestHeaderBytes)) {
		t.Fatalf("request line over the limit = %d %q, want 431 naming the limit", status, body)
	}
}
