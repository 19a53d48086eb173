// Package e2e runs real distrod processes and drives them over HTTP. It is a
// module of its own so client libraries used by its tests (and their
// dependencies) stay out of the main module. It requires the main module
// (replaced by ../) for internal/testutil, whose Eventually it shares, and
// hashring, whose PartitionOf maps a key to the partition the cluster's ring
// (GET /v1/cluster/ring) names an owner for.
//
// A test package uses it as:
//
//	func TestMain(m *testing.M) { os.Exit(e2e.RunMain(m)) }
//
//	c := e2e.StartCluster(t, 3, e2e.Options{Profile: "local"})
//	c.Nodes[2].Kill()
//
// Every started process is killed by PID when the test ends, even on failure,
// and its log is printed through t.Log when the test failed.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

// binary is the distrod binary built by RunMain.
var binary string

// RunMain builds the distrod binary once into a temporary directory, runs the
// tests, removes the directory, and checks for leaked goroutines. It returns
// the exit code for os.Exit. opts are passed to goleak (e.g. to ignore a
// client library's background goroutines).
func RunMain(m *testing.M, opts ...goleak.Option) int {
	dir, err := os.MkdirTemp("", "distrod-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "distrod")
	if env := os.Getenv("DISTROD_E2E_BINARY"); env != "" {
		binary = env // a prebuilt binary, e.g. built with -race
	} else if err := Build(binary); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: goroutine leak:", err)
			code = 1
		}
	}
	return code
}

// Build compiles ../cmd/distrod (the main module beside this one) to out.
func Build(out string) error {
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-o", out, "./cmd/distrod")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/distrod in %s: %w\n%s", root, err, b)
	}
	return nil
}

// Options configure started nodes.
type Options struct {
	// Profile is the gossip profile (default "local", tuned for loopback speed).
	Profile string
	// Secret, when set, is passed as --secret.
	Secret string
	// Args are extra agent flags for every node, e.g. "--delete-timeout=3s".
	Args []string
	// StartTimeout bounds the wait for /health (default 30 s).
	StartTimeout time.Duration
	// Unready makes StartNode and Restart wait only until /health answers at
	// all (200, or 503 while the node is loading), not until it is ready.
	Unready bool
}

func (o Options) withDefaults() Options {
	if o.Profile == "" {
		o.Profile = "local"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	return o
}

// Node is one distrod agent process.
type Node struct {
	t          testing.TB
	Name       string
	HTTPAddr   string // host:port of the HTTP server
	GossipAddr string // host:port of gossip
	Join       []string
	opts       Options
	logPath    string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current process exited
	err    error         // the current process's exit error, valid after exited
}

// Cluster is a set of nodes; node 1 starts alone, the others join it.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// StartCluster starts n nodes named node1..nodeN: node1 standalone, the
// others with --join node1's gossip address, and waits until every node is
// healthy. Use the Wait* helpers for cluster-wide conditions.
func StartCluster(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	first := StartNode(t, "node1", opts)
	c.Nodes = append(c.Nodes, first)
	for i := 2; i <= n; i++ {
		c.Nodes = append(c.Nodes, StartNode(t, "node"+strconv.Itoa(i), opts, first.GossipAddr))
	}
	return c
}

// HTTPAddrs lists the nodes' HTTP addresses.
func (c *Cluster) HTTPAddrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.HTTPAddr
	}
	return out
}

// StartNode starts `distrod agent` on loopback ports the kernel picks (port 0),
// joining the given gossip addresses, reads the bound addresses back from the
// agent's log and waits until /health answers 200. It fails the test on
// error. The process is killed when the test ends.
func StartNode(t testing.TB, name string, opts Options, join ...string) *Node {
	t.Helper()
	n := newNode(t, name, opts, join)
	if err := n.launch(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	return n
}

// newNode is a node not started yet, killed when the test ends and its log
// printed if the test failed.
func newNode(t testing.TB, name string, opts Options, join []string) *Node {
	n := &Node{t: t, Name: name, Join: join, opts: opts.withDefaults(), logPath: filepath.Join(t.TempDir(), name+".log")}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("---- log of %s (%s, gossip %s) ----\n%s", n.Name, n.HTTPAddr, n.GossipAddr, b)
			}
		}
	})
	return n
}

// RunAgentToExit starts `distrod agent` like StartNode, on port 0, but
// expects it to exit instead of becoming healthy (a refused start). It
// returns the exit code and the last line of the process's output, which is
// its stderr's (the CLI's one-line error). A process still running after
// timeout fails the test; it is killed when the test ends in any case.
func RunAgentToExit(t testing.TB, name string, opts Options, timeout time.Duration, join ...string) (code int, last string) {
	t.Helper()
	n := newNode(t, name, opts, join)
	exited, bound, err := n.spawn()
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		where := "addresses not reported"
		select {
		case a := <-bound:
			where = a.http + ", gossip " + a.gossip
		default:
		}
		t.Fatalf("%s (%s) still running %s after its start; it was expected to exit", name, where, timeout)
	}
	b, _ := os.ReadFile(n.logPath)
	var ee *exec.ExitError
	switch err := n.exitErr(); {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s: wait: %v", name, err)
	}
	return code, lastLine(b)
}

// args are the agent's flags: n's addresses, port 0 on loopback for those not
// known yet (a first start), and a JSON log whose "distrod agent running"
// line carries the bound addresses.
func (n *Node) args() []string {
	httpAddr, gossipAddr := n.HTTPAddr, n.GossipAddr
	if httpAddr == "" {
		httpAddr = "127.0.0.1:0"
	}
	if gossipAddr == "" {
		gossipAddr = "127.0.0.1:0"
	}
	args := []string{"agent",
		"--name", n.Name,
		"--http-addr", httpAddr,
		"--gossip-addr", gossipAddr,
		"--profile", n.opts.Profile,
		"--log-format", "json",
		"--log-level", "debug",
	}
	for _, j := range n.Join {
		args = append(args, "--join", j)
	}
	if n.opts.Secret != "" {
		args = append(args, "--secret", n.opts.Secret)
	}
	return append(args, n.opts.Args...)
}

// boundAddrs are the addresses an agent reports it bound.
type boundAddrs struct{ http, gossip string }

// spawn starts the agent with n.args(), its output appended to n's log, and
// reaps it in a goroutine that records the exit and closes n.exited, which it
// returns. bound delivers the addresses from the agent's "distrod agent
// running" line once it is logged. With a prefix (e.g. ip netns exec ns
// binary) it runs the prefix's command instead, followed by n.args().
func (n *Node) spawn(prefix ...string) (exited <-chan struct{}, bound <-chan boundAddrs, err error) {
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	argv := append(prefix[:len(prefix):len(prefix)], n.args()...)
	fmt.Fprintf(logf, "==== %s %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	name, args := binary, argv
	if len(prefix) > 0 {
		name, args = prefix[0], argv[1:]
	}
	sink := &agentLog{f: logf, bound: make(chan boundAddrs, 1)}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = sink, sink // one writer: exec copies both through one pipe
	cmd.WaitDelay = 5 * time.Second     // bounds Wait should a child of the agent hold the pipe
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("exec %s: %w", name, err)
	}
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited = cmd, done
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		n.mu.Lock()
		n.err = err
		n.mu.Unlock()
		close(done)
	}()
	return done, sink.bound, nil
}

// agentLog is an agent's stdout and stderr: it appends everything to the log
// file and reports the addresses of the first "distrod agent running" line,
// the JSON record `distrod bench --spawn` reads its agents' ports from. exec
// calls Write from one goroutine.
type agentLog struct {
	f     *os.File
	bound chan boundAddrs // buffered 1; sent to once
	line  []byte          // the unfinished line, until the addresses are found
	found bool
}

func (l *agentLog) Write(p []byte) (int, error) {
	if !l.found {
		l.line = append(l.line, p...)
		for !l.found {
			i := bytes.IndexByte(l.line, '\n')
			if i < 0 {
				break
			}
			line := l.line[:i]
			l.line = l.line[i+1:]
			if !bytes.Contains(line, []byte("distrod agent running")) {
				continue
			}
			var rec struct{ HTTP, Gossip string }
			if json.Unmarshal(line, &rec) == nil && rec.HTTP != "" && rec.Gossip != "" {
				l.bound <- boundAddrs{http: rec.HTTP, gossip: rec.Gossip}
				l.found, l.line = true, nil
			}
		}
	}
	return l.f.Write(p)
}

// launch starts the agent and waits for /health. On a first start the agent
// binds port 0 and n takes the addresses it reports; on a restart it binds
// n's addresses again, and a port taken meanwhile is an error, not a move: a
// restart on the same address is what the tests exercise.
func (n *Node) launch() error {
	restart := n.HTTPAddr != ""
	exited, bound, err := n.spawn()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(n.opts.StartTimeout)
	exitErr := func() error {
		b, _ := os.ReadFile(n.logPath)
		if restart && bytes.Contains(b, []byte("address already in use")) {
			return fmt.Errorf("cannot bind its previous address again (http %s, gossip %s): taken meanwhile: %s",
				n.HTTPAddr, n.GossipAddr, lastLine(b))
		}
		return fmt.Errorf("exited before healthy (%v): %s", n.exitErr(), lastLine(b))
	}
	timer := time.NewTimer(n.opts.StartTimeout)
	defer timer.Stop()
	select {
	case a := <-bound:
		switch {
		case !restart:
			n.HTTPAddr, n.GossipAddr = a.http, a.gossip
		case a.http != n.HTTPAddr || a.gossip != n.GossipAddr:
			// Other goroutines read n's addresses while it restarts: they are never written then.
			n.Kill()
			return fmt.Errorf("restarted on http %s, gossip %s, not its addresses http %s, gossip %s",
				a.http, a.gossip, n.HTTPAddr, n.GossipAddr)
		}
	case <-exited:
		return exitErr()
	case <-timer.C:
		n.Kill()
		return fmt.Errorf("no \"distrod agent running\" line with its addresses within %s", n.opts.StartTimeout)
	}
	for {
		select {
		case <-exited:
			return exitErr()
		default:
		}
		status, _, err := n.Do(http.MethodGet, "/health", nil)
		if err == nil && (status == http.StatusOK || (n.opts.Unready && status == http.StatusServiceUnavailable)) {
			return nil
		}
		if time.Now().After(deadline) {
			n.Kill()
			return fmt.Errorf("not healthy within %s", n.opts.StartTimeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

func (n *Node) exitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// PID is the current process's id (0 when none was started).
func (n *Node) PID() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Running reports whether the current process has not exited.
func (n *Node) Running() bool {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to the process by PID and waits for it to exit. No-op when not running.
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL, 10*time.Second)
}

// Stop sends SIGTERM (a graceful leave) and waits up to 20 s, then kills.
// It returns the process's exit error (nil for exit code 0).
func (n *Node) Stop() error {
	if !n.signal(syscall.SIGTERM, 20*time.Second) {
		n.t.Errorf("%s: no exit within 20s of SIGTERM; killing", n.Name)
		n.Kill()
	}
	return n.exitErr()
}

// signal sends sig and waits up to timeout for the exit; false on timeout.
func (n *Node) signal(sig syscall.Signal, timeout time.Duration) bool {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return true
	}
	select {
	case <-exited:
		return true
	default:
	}
	_ = syscall.Kill(cmd.Process.Pid, sig)
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Restart starts the node again with the same name, join list and the
// addresses it bound before, given explicitly, and waits for /health. A port
// taken meanwhile fails the test rather than moving the node. The current
// process must have exited (Kill or Stop first).
func (n *Node) Restart() {
	n.t.Helper()
	if n.Running() {
		n.t.Fatalf("restart %s: still running", n.Name)
	}
	if err := n.launch(); err != nil {
		n.t.Fatalf("restart %s: %v", n.Name, err)
	}
}

// client has no keep-alive: no idle connection goroutines outlive a test.
var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// URL is the node's base URL.
func (n *Node) URL() string { return "http://" + n.HTTPAddr }

// Do sends a request; a non-nil form is sent as an urlencoded body.
func (n *Node) Do(method, path string, form url.Values) (status int, body []byte, err error) {
	return n.DoWith(client, method, path, form)
}

// DoWith is Do through hc (e.g. one that keeps connections alive), bounded by hc.Timeout.
func (n *Node) DoWith(hc *http.Client, method, path string, form url.Values) (status int, body []byte, err error) {
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	ctx, cancel := context.WithTimeout(context.Background(), hc.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, body, err
}

// GetJSON GETs path and decodes a 200 JSON answer into v.
func (n *Node) GetJSON(path string, v any) error {
	status, body, err := n.Do(http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, n.Name, status, bytes.TrimSpace(body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("decode GET %s on %s: %w", path, n.Name, err)
	}
	return nil
}

// Metric sums the samples of the Prometheus series name on n's /metrics whose
// label sets contain labelSubstr ("" for all); found is false when there is
// none. It is Metrics followed by Samples.Sum.
func (n *Node) Metric(name, labelSubstr string) (sum float64, found bool, err error) {
	ss, err := n.Metrics()
	if err != nil {
		return 0, false, err
	}
	sum, found = ss.Sum(name, labelSubstr)
	return sum, found, nil
}

// Metrics reads n's /metrics once, parsed by the Prometheus text parser
// (expfmt), as the samples the text exposition has.
func (n *Node) Metrics() (Samples, error) {
	status, body, err := n.Do(http.MethodGet, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s: /metrics: %d", n.Name, status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: /metrics: %w", n.Name, err)
	}
	return samples(families), nil
}

// Samples are one scrape's samples.
type Samples []Sample

// Sample is one line of the text exposition. A series is named as there: a
// counter, gauge or untyped family by its name; a histogram's parts by
// name_bucket (label le), name_sum and name_count; a summary's by name (label
// quantile), name_sum and name_count. Labels read as there too, e.g.
// `kind="removed",node="node1"`.
type Sample struct {
	Name, Labels string
	Value        float64
}

// Sum adds the values of the samples of series name whose label sets contain
// labelSubstr ("" for all; normally one `label="value"`); found is false when
// there is none.
func (ss Samples) Sum(name, labelSubstr string) (sum float64, found bool) {
	for _, s := range ss {
		if s.Name == name && strings.Contains(s.Labels, labelSubstr) {
			sum, found = sum+s.Value, true
		}
	}
	return sum, found
}

// samples flattens parsed families into the series the text exposition has.
func samples(families map[string]*dto.MetricFamily) Samples {
	var out Samples
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			labels := labelString(m.GetLabel())
			add := func(series string, v float64, extra ...string) {
				l := labels
				for i := 0; i+1 < len(extra); i += 2 {
					l = joinLabel(l, extra[i], extra[i+1])
				}
				out = append(out, Sample{Name: series, Labels: l, Value: v})
			}
			switch {
			case m.Counter != nil:
				add(name, m.GetCounter().GetValue())
			case m.Gauge != nil:
				add(name, m.GetGauge().GetValue())
			case m.Untyped != nil:
				add(name, m.GetUntyped().GetValue())
			case m.Summary != nil:
				for _, q := range m.GetSummary().GetQuantile() {
					add(name, q.GetValue(), "quantile", strconv.FormatFloat(q.GetQuantile(), 'g', -1, 64))
				}
				add(name+"_sum", m.GetSummary().GetSampleSum())
				add(name+"_count", float64(m.GetSummary().GetSampleCount()))
			case m.Histogram != nil:
				for _, b := range m.GetHistogram().GetBucket() {
					add(name+"_bucket", float64(b.GetCumulativeCount()), "le", strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
				}
				add(name+"_sum", m.GetHistogram().GetSampleSum())
				add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
			}
		}
	}
	return out
}

// labelString renders labels as the exposition does: name="value" pairs, comma-separated.
func labelString(pairs []*dto.LabelPair) string {
	s := ""
	for _, p := range pairs {
		s = joinLabel(s, p.GetName(), p.GetValue())
	}
	return s
}

func joinLabel(s, name, value string) string {
	if s != "" {
		s += ","
	}
	return s + name + "=" + strconv.Quote(value)
}

// Member is one row of GET /v1/cluster/members.
type Member struct {
	Name       string `json:"name"`
	GossipAddr string `json:"gossipAddr"`
	HTTPAddr   string `json:"httpAddr"`
	State      string `json:"state"`
	Ready      bool   `json:"ready"`
	Self       bool   `json:"self"`
}

// Ring is GET /v1/cluster/ring without the owners.
type Ring struct {
	Version    string   `json:"version"`
	Partitions int      `json:"partitions"`
	Members    []string `json:"members"`
}

// DistroStatus is the part of GET /v1/distro/status the tests read.
type DistroStatus struct {
	Node        string `json:"node"`
	Ready       bool   `json:"ready"`
	RingVersion string `json:"ringVersion"`
	Keys        int    `json:"keys"`
	Digest      string `json:"digest"`
	Services    int    `json:"services"`
	Instances   int    `json:"instances"`
}

// Members is the node's member table, by name.
func (n *Node) Members() (map[string]Member, error) {
	var resp struct {
		Members []Member `json:"members"`
	}
	if err := n.GetJSON("/v1/cluster/members", &resp); err != nil {
		return nil, err
	}
	out := make(map[string]Member, len(resp.Members))
	for _, m := range resp.Members {
		out[m.Name] = m
	}
	return out, nil
}

// Ring is the node's responsibility ring.
func (n *Node) Ring() (Ring, error) {
	var r Ring
	err := n.GetJSON("/v1/cluster/ring", &r)
	return r, err
}

// Health is GET /health: 200 when ready, 503 with LOADING, STALE or
// SHUTTING_DOWN (and why) otherwise.
type Health struct {
	Status string `json:"status"`
	Ready  bool   `json:"ready"`
	Reason string `json:"reason"`
}

// Health asks n's /health through hc (nil: the harness's client); a 503's
// body is decoded too.
func (n *Node) Health(hc *http.Client) (int, Health, error) {
	if hc == nil {
		hc = client
	}
	var h Health
	status, body, err := n.DoWith(hc, http.MethodGet, "/health", nil)
	if err == nil {
		err = json.Unmarshal(body, &h)
	}
	return status, h, err
}

// Status is the node's distro status.
func (n *Node) Status() (DistroStatus, error) {
	var s DistroStatus
	err := n.GetJSON("/v1/distro/status", &s)
	return s, err
}

// Eventually polls cond until it returns nil, failing the test with cond's
// last error when timeout passes: testutil.Eventually, the helper every package's
// tests share, under the name the e2e tests use.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	testutil.Eventually(t, timeout, what, cond)
}

// EverySees checks that every node in observers sees member name in a state ok accepts.
func EverySees(observers []*Node, name string, ok func(Member) bool) error {
	for _, o := range observers {
		ms, err := o.Members()
		if err != nil {
			return err
		}
		if m := ms[name]; !ok(m) {
			return fmt.Errorf("%s sees %s as %q, ready=%v", o.Name, name, m.State, m.Ready)
		}
	}
	return nil
}

// AgreeOnMembers checks that every node in nodes sees exactly the names in
// alive as alive, and one ring over them with the same version on every node.
// It returns that version.
func AgreeOnMembers(nodes []*Node, alive ...string) (string, error) {
	want := map[string]bool{}
	for _, a := range alive {
		want[a] = true
	}
	version := ""
	for _, n := range nodes {
		ms, err := n.Members()
		if err != nil {
			return "", err
		}
		for name, m := range ms {
			if (m.State == "alive") != want[name] {
				return "", fmt.Errorf("%s sees %s as %s", n.Name, name, m.State)
			}
		}
		for name := range want {
			if _, ok := ms[name]; !ok {
				return "", fmt.Errorf("%s does not know %s", n.Name, name)
			}
		}
		r, err := n.Ring()
		if err != nil {
			return "", err
		}
		if len(r.Members) != len(alive) {
			return "", fmt.Errorf("%s has ring members %v, want %v", n.Name, r.Members, alive)
		}
		if version == "" {
			version = r.Version
		} else if r.Version != version {
			return "", fmt.Errorf("%s has ring version %s, another node %s", n.Name, r.Version, version)
		}
	}
	return version, nil
}
