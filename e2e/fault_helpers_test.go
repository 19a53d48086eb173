package e2e

// Helpers of the fault suite (fault_test.go, fault_partition_test.go): a
// workload of Nacos clients that register, beat and deregister through
// random live nodes, an observer that polls every ready node and records
// invariant violations while faults happen, and the final convergence check.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// Timings of every fault cluster: short so a scenario runs in about a minute.
const (
	faultVerify        = time.Second     // --verify-interval
	faultBeatTimeout   = 3 * time.Second // --beat-timeout
	faultDeleteTimeout = 6 * time.Second // --delete-timeout
	// convergeSlack is the "few seconds" beyond one verify interval that the
	// cluster gets to converge once every node is ready and agrees on members.
	convergeSlack = 5 * time.Second
	// beatEvery is how often a client beats (the server's 5 s would make the
	// 6 s delete timeout too tight to reason about).
	beatEvery = time.Second
	// gapLimit: a client whose acknowledged beats are never further apart than
	// this (send of one to the answer of the next) gave its owner a beat within
	// the delete timeout at every moment, with 2 s to spare.
	gapLimit = faultDeleteTimeout - 2*time.Second
	// clientTimeout bounds one client request; a client then tries another node.
	clientTimeout = 2 * time.Second
	// observeEvery is the observer's pause between polling rounds.
	observeEvery = 200 * time.Millisecond
)

// faultOptions are the agent options of a fault cluster, plus extra flags.
func faultOptions(extra ...string) Options {
	args := []string{
		"--verify-interval=" + faultVerify.String(),
		"--beat-timeout=" + faultBeatTimeout.String(),
		"--delete-timeout=" + faultDeleteTimeout.String(),
	}
	return Options{Profile: "local", Args: append(args, extra...), StartTimeout: 45 * time.Second}
}

// faultDuration is def, shortened (never lengthened) by DISTROD_FAULT_SECONDS.
func faultDuration(t *testing.T, def time.Duration) time.Duration {
	if v := os.Getenv("DISTROD_FAULT_SECONDS"); v != "" {
		s, err := strconv.Atoi(v)
		if err != nil || s <= 0 {
			t.Fatalf("DISTROD_FAULT_SECONDS=%q: want a positive number of seconds", v)
		}
		if d := time.Duration(s) * time.Second; d < def {
			return d
		}
	}
	return def
}

// joinAll makes every node's restart join through all the others, so a
// restarted node finds the cluster even when node1 (the first join target) is down.
func joinAll(nodes []*Node) {
	for _, n := range nodes {
		n.Join = nil
		for _, o := range nodes {
			if o != n {
				n.Join = append(n.Join, o.GossipAddr)
			}
		}
	}
}

// agentSupports reports whether `distrod agent` accepts the given flags.
func agentSupports(flags ...string) (bool, string) {
	args := append([]string{"agent"}, flags...)
	out, err := exec.Command(binary, append(args, "--help")...).CombinedOutput()
	if err != nil {
		return false, strings.TrimSpace(lastLine(out))
	}
	return true, ""
}

// pause and resume send SIGSTOP / SIGCONT to a node's current process.
func pause(n *Node) error  { return signalPID(n, syscall.SIGSTOP) }
func resume(n *Node) error { return signalPID(n, syscall.SIGCONT) }

func signalPID(n *Node, sig syscall.Signal) error {
	pid := n.PID()
	if pid == 0 || !n.Running() {
		return fmt.Errorf("%s is not running", n.Name)
	}
	return syscall.Kill(pid, sig)
}

// wclient is one simulated Nacos client owning one instance.
type wclient struct {
	id      int
	service string
	ip      string
	port    int
	side    int           // partition side; nodes are the nodes it talks to
	nodes   []*Node       //
	startAt time.Duration // after the workload's start
	deregAt time.Duration // after the workload's start; 0 = beats to the end

	mu         sync.Mutex
	acks       []ack     // acknowledged register/beat requests, in send order
	failures   int       // requests without an acknowledgement
	deregStart time.Time // the client stopped beating to deregister
	deregAcked time.Time // the deregistration was acknowledged
}

// ack is one acknowledged request: sent at s, answered at r. The owner
// recorded the beat at some moment in [s, r].
type ack struct{ s, r time.Time }

func (c *wclient) instance() string { return c.ip + ":" + strconv.Itoa(c.port) }

func (c *wclient) registered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.acks) > 0
}

// beatingThrough reports whether the client's owner had, at every moment of
// [from, to], recorded an acknowledged beat less than gapLimit earlier, and
// the client had not begun to deregister. Conservative: a beat counts only
// from its answer on, and as recorded at its send time.
func (c *wclient) beatingThrough(from, to time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.deregStart.IsZero() && !c.deregStart.After(to) {
		return false
	}
	// last returns the latest send time among acks answered before τ (or at τ when inclusive).
	last := func(tau time.Time, inclusive bool) (time.Time, bool) {
		var best time.Time
		found := false
		for _, a := range c.acks {
			if a.r.Before(tau) || (inclusive && a.r.Equal(tau)) {
				if !found || a.s.After(best) {
					best, found = a.s, true
				}
			}
		}
		return best, found
	}
	check := func(tau time.Time, inclusive bool) bool {
		l, ok := last(tau, inclusive)
		return ok && tau.Sub(l) < gapLimit
	}
	if !check(from, true) || !check(to, true) {
		return false
	}
	for _, a := range c.acks {
		if a.r.After(from) && !a.r.After(to) && !check(a.r, false) {
			return false
		}
	}
	return true
}

// beatHistory summarises the client's acknowledgements around t for a violation message.
func (c *wclient) beatHistory(around time.Time) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, a := range c.acks {
		if d := a.r.Sub(around); d > -10*time.Second && d < 3*time.Second {
			parts = append(parts, fmt.Sprintf("%+.1fs", a.s.Sub(around).Seconds()))
		}
	}
	return fmt.Sprintf("acked beats sent at %s relative to the observation, %d failed requests in all",
		strings.Join(parts, " "), c.failures)
}

// obsKey identifies one instance as seen by one node process (a restarted
// node is a new process: what the old one saw says nothing about the new one).
type obsKey struct {
	node string
	pid  int
	inst string
}

type obsState struct {
	lastPresent      time.Time // when a poll (start time) last found it; zero after an absence
	absentAfterDereg bool      // this process was seen without it after its deregistration
}

// workload runs clients and the observer until stopped.
type workload struct {
	t        *testing.T
	services []string
	clients  []*wclient
	observed func() []*Node // the nodes the observer polls (asked once, at run)
	// exempt says whether an absence of c on n at time at is allowed whatever
	// the client did (the partition scenario: the other side cannot hear it).
	exempt func(n *Node, c *wclient, at time.Time) bool

	http        *http.Client
	start       time.Time
	faults      chan struct{} // closed when the fault window begins
	faultsStart time.Time     // written before faults is closed
	ctx         context.Context
	cancel      context.CancelFunc
	wg          sync.WaitGroup
	stopped     bool

	mu          sync.Mutex
	obs         map[obsKey]*obsState
	violations  []string
	rounds      int // node polls
	nodeRounds  int // node polls that were complete while the node was ready
	tolerated   int // disappearances not counted as violations (client not provably beating, or exempt)
	disappeared int // all disappearances seen
}

// workloadSpec shapes a workload: keepers beat throughout; leavers register,
// beat, and deregister at a random moment of the fault window; late clients
// start during the fault window. Clients are spread over services.
type workloadSpec struct {
	services, keepers, leavers, late int
	faultWindow                      time.Duration // when leavers deregister and late clients start
	seed                             uint64
}

// newWorkload builds the clients; nodesFor gives the nodes a client may talk
// to by client index (and its side, for the partition scenario).
func newWorkload(t *testing.T, spec workloadSpec, observed func() []*Node, nodesFor func(i int) (int, []*Node)) *workload {
	w := &workload{
		t: t, observed: observed, obs: map[obsKey]*obsState{},
		exempt: func(*Node, *wclient, time.Time) bool { return false },
		faults: make(chan struct{}),
		http:   &http.Client{Timeout: clientTimeout, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	for i := 0; i < spec.services; i++ {
		w.services = append(w.services, fmt.Sprintf("fault-svc-%d", i))
	}
	rng := rand.New(rand.NewPCG(spec.seed, 7))
	window := func(lo, hi float64) time.Duration {
		return time.Duration((lo + rng.Float64()*(hi-lo)) * float64(spec.faultWindow))
	}
	total := spec.keepers + spec.leavers + spec.late
	for i := 0; i < total; i++ {
		side, nodes := nodesFor(i)
		c := &wclient{
			id: i, service: w.services[i%len(w.services)], ip: fmt.Sprintf("198.18.%d.%d", i/200, i%200+1), port: 20000 + i,
			side: side, nodes: nodes,
		}
		switch {
		case i < spec.keepers:
		case i < spec.keepers+spec.leavers:
			c.deregAt = window(0.1, 0.9)
		default:
			c.startAt = window(0.05, 0.7)
		}
		w.clients = append(w.clients, c)
	}
	return w
}

// run starts the clients and the observer; faults begin at the returned time
// plus the warm-up the caller waits for.
func (w *workload) run() {
	w.start = time.Now()
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for _, c := range w.clients {
		w.wg.Add(1)
		go w.runClient(c)
	}
	for _, n := range w.observed() {
		w.wg.Add(1)
		go w.observeLoop(n)
	}
	w.t.Cleanup(w.stop)
}

// stop ends the clients and the observer and waits for them (idempotent).
func (w *workload) stop() {
	if w.stopped {
		return
	}
	w.stopped = true
	w.cancel()
	w.wg.Wait()
}

// beginFaults starts the fault window: leavers deregister and late clients
// start at their moments after now.
func (w *workload) beginFaults() {
	w.faultsStart = time.Now()
	close(w.faults)
}

// sinceFaults is the time since the fault window began; false before it.
func (w *workload) sinceFaults() (time.Duration, bool) {
	select {
	case <-w.faults:
		return time.Since(w.faultsStart), true
	default:
		return 0, false
	}
}

func (w *workload) sleep(d time.Duration) bool {
	if d <= 0 {
		return w.ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-w.ctx.Done():
		return false
	case <-tm.C:
		return true
	}
}

// pick returns up to two distinct running nodes of c, in random order.
func pick(c *wclient) []*Node {
	var up []*Node
	for _, n := range c.nodes {
		if n.Running() {
			up = append(up, n)
		}
	}
	rand.Shuffle(len(up), func(i, j int) { up[i], up[j] = up[j], up[i] })
	if len(up) > 2 {
		up = up[:2]
	}
	return up
}

// request sends one Nacos request to n and reports whether it was acknowledged.
func (w *workload) request(n *Node, method, path string, form url.Values, check func([]byte) bool) bool {
	ctx, cancel := context.WithTimeout(w.ctx, clientTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, strings.NewReader(form.Encode()))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := w.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return err == nil && resp.StatusCode == http.StatusOK && check(body)
}

// send tries the request on up to two random running nodes of c.
func (w *workload) send(c *wclient, method, path string, form url.Values, check func([]byte) bool) (time.Time, bool) {
	for _, n := range pick(c) {
		s := time.Now()
		if w.request(n, method, path, form, check) {
			return s, true
		}
		if w.ctx.Err() != nil {
			break
		}
	}
	return time.Time{}, false
}

func okBody(b []byte) bool { return strings.TrimSpace(string(b)) == "ok" }

func beatOK(b []byte) bool {
	var r struct {
		Code int `json:"code"`
	}
	return json.Unmarshal(b, &r) == nil && r.Code == 10200
}

func (w *workload) runClient(c *wclient) {
	defer w.wg.Done()
	if c.startAt > 0 {
		select {
		case <-w.ctx.Done():
			return
		case <-w.faults:
		}
		if !w.sleep(c.startAt) {
			return
		}
	}
	base := url.Values{"serviceName": {c.service}, "ip": {c.ip}, "port": {strconv.Itoa(c.port)}, "ephemeral": {"true"}}
	beatInfo, _ := json.Marshal(map[string]any{
		"ip": c.ip, "port": c.port, "serviceName": "DEFAULT_GROUP@@" + c.service, "cluster": "DEFAULT",
		"weight": 1, "metadata": map[string]string{}, "ephemeral": true,
	})
	beat := url.Values{"serviceName": {c.service}, "beat": {string(beatInfo)}}
	next := time.Now()
	for {
		if since, ok := w.sinceFaults(); ok && c.deregAt > 0 && since >= c.deregAt {
			w.deregister(c, base)
			return
		}
		var s time.Time
		var ok bool
		if !c.registered() {
			s, ok = w.send(c, http.MethodPost, "/nacos/v1/ns/instance", base, okBody)
		} else {
			s, ok = w.send(c, http.MethodPut, "/nacos/v1/ns/instance/beat", beat, beatOK)
		}
		r := time.Now()
		c.mu.Lock()
		if ok {
			c.acks = append(c.acks, ack{s: s, r: r})
		} else if w.ctx.Err() == nil {
			c.failures++
		}
		c.mu.Unlock()
		if next = next.Add(beatEvery); next.Before(time.Now()) {
			next = time.Now() // a slow request: no burst to catch up
		}
		if !w.sleep(time.Until(next)) {
			return
		}
	}
}

// deregister stops beating and deregisters until a node acknowledges it.
func (w *workload) deregister(c *wclient, form url.Values) {
	c.mu.Lock()
	c.deregStart = time.Now()
	c.mu.Unlock()
	for {
		if _, ok := w.send(c, http.MethodDelete, "/nacos/v1/ns/instance", form, okBody); ok {
			c.mu.Lock()
			c.deregAcked = time.Now()
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		c.failures++
		c.mu.Unlock()
		if !w.sleep(250 * time.Millisecond) {
			return
		}
	}
}

// nodeView is one complete poll of one node: its instances by service.
type nodeView struct {
	node    *Node
	pid     int
	t0, t1  time.Time
	present map[string]bool // instance "ip:port" of any polled service
	digest  string
	ring    string
}

// pollClient bounds each observer request tightly: a paused node must not
// stall the poll of a node for long.
var pollClient = &http.Client{Timeout: 1500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}

// pollGet GETs path on n and decodes a 200 JSON answer into v.
func pollGet(n *Node, path string, v any) error {
	resp, err := pollClient.Get(n.URL() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %d %s", path, n.Name, resp.StatusCode, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

// pollNode reads a ready node's status and the instances of every service;
// ok is false when the node is not running, not ready, or any request failed.
func pollNode(n *Node, services []string) (nodeView, bool) {
	v := nodeView{node: n, pid: n.PID(), present: map[string]bool{}}
	if v.pid == 0 || !n.Running() {
		return v, false
	}
	v.t0 = time.Now()
	var st DistroStatus
	err := pollGet(n, "/v1/distro/status", &st)
	if err != nil || !st.Ready {
		return v, false
	}
	v.digest, v.ring = st.Digest, st.RingVersion
	for _, svc := range services {
		var list struct {
			Hosts []struct {
				IP   string `json:"ip"`
				Port int    `json:"port"`
			} `json:"hosts"`
		}
		if err := pollGet(n, "/nacos/v1/ns/instance/list?serviceName="+url.QueryEscape(svc), &list); err != nil {
			return v, false
		}
		for _, h := range list.Hosts {
			v.present[h.IP+":"+strconv.Itoa(h.Port)] = true
		}
	}
	// A status after the lists: the node was still the same ready process throughout.
	if err := pollGet(n, "/v1/distro/status", &st); err != nil || !st.Ready || n.PID() != v.pid {
		return v, false
	}
	v.t1 = time.Now()
	return v, true
}

// pollAll polls the nodes concurrently.
func pollAll(nodes []*Node, services []string) []nodeView {
	out := make([]nodeView, len(nodes))
	oks := make([]bool, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], oks[i] = pollNode(n, services)
		}()
	}
	wg.Wait()
	var views []nodeView
	for i := range out {
		if oks[i] {
			views = append(views, out[i])
		}
	}
	return views
}

// observeLoop polls one node until the workload stops; each node has its
// own loop so a paused or unreachable node does not slow the others' polls.
func (w *workload) observeLoop(n *Node) {
	defer w.wg.Done()
	for w.ctx.Err() == nil {
		v, ok := pollNode(n, w.services)
		if w.ctx.Err() != nil {
			return
		}
		w.mu.Lock()
		w.rounds++
		w.mu.Unlock()
		if ok {
			w.record(v)
		}
		if !w.sleep(observeEvery) {
			return
		}
	}
}

// record applies one complete poll of one node to the invariant state.
func (w *workload) record(v nodeView) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.nodeRounds++
	{
		for _, c := range w.clients {
			if !c.registered() {
				continue
			}
			c.mu.Lock()
			deregAcked := c.deregAcked
			c.mu.Unlock()
			k := obsKey{v.node.Name, v.pid, c.instance()}
			st := w.obs[k]
			if st == nil {
				st = &obsState{}
				w.obs[k] = st
			}
			afterDereg := !deregAcked.IsZero() && v.t0.After(deregAcked)
			if v.present[c.instance()] {
				if afterDereg && st.absentAfterDereg {
					w.violatef("deregistered instance %s of %s reappeared on %s (pid %d) at %s, after that process had shown it gone; deregistration acknowledged at %s",
						c.instance(), c.service, v.node.Name, v.pid, w.at(v.t0), w.at(deregAcked))
					st.absentAfterDereg = false // one violation per reappearance
				}
				st.lastPresent = v.t0
				continue
			}
			if afterDereg {
				st.absentAfterDereg = true
			}
			if st.lastPresent.IsZero() {
				continue
			}
			c.mu.Lock()
			leaving := !c.deregStart.IsZero() && c.deregStart.Before(v.t1)
			c.mu.Unlock()
			if leaving { // deregistered: its disappearance is the point
				st.lastPresent = time.Time{}
				continue
			}
			w.disappeared++
			switch {
			case w.exempt(v.node, c, v.t0):
				w.tolerated++
			case c.beatingThrough(st.lastPresent, v.t1):
				w.violatef("instance %s of %s removed on %s (pid %d) while its client was beating: present at %s, absent at %s; %s",
					c.instance(), c.service, v.node.Name, v.pid, w.at(st.lastPresent), w.at(v.t0), c.beatHistory(v.t0))
			default:
				w.tolerated++
			}
			st.lastPresent = time.Time{}
		}
	}
}

// at formats t as seconds since the workload started.
func (w *workload) at(t time.Time) string { return fmt.Sprintf("t+%.2fs", t.Sub(w.start).Seconds()) }

func (w *workload) violatef(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.violations = append(w.violations, msg)
	w.t.Logf("VIOLATION: %s", msg)
}

// waitRegistered waits until every client that has started is registered and
// present on every node in nodes (the cluster works before faults begin).
func (w *workload) waitRegistered(t *testing.T, nodes []*Node, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "initial clients registered and replicated to every node", func() error {
		views := pollAll(nodes, w.services)
		if len(views) != len(nodes) {
			return fmt.Errorf("%d of %d nodes answered completely", len(views), len(nodes))
		}
		for _, c := range w.clients {
			if c.startAt > 0 {
				continue
			}
			if !c.registered() {
				return fmt.Errorf("client %s not registered yet", c.instance())
			}
			for _, v := range views {
				if !v.present[c.instance()] {
					return fmt.Errorf("%s lacks %s", v.node.Name, c.instance())
				}
			}
		}
		return nil
	})
}

// waitLeaversDone waits until every leaver's deregistration was acknowledged
// and every late client registered: the workload has no more scheduled changes.
func (w *workload) waitLeaversDone(t *testing.T, timeout time.Duration) {
	t.Helper()
	Eventually(t, timeout, "scheduled deregistrations acknowledged and late clients registered", func() error {
		for _, c := range w.clients {
			c.mu.Lock()
			leaver, acked, regd := c.deregAt > 0, !c.deregAcked.IsZero(), len(c.acks) > 0
			c.mu.Unlock()
			if leaver && !acked {
				return fmt.Errorf("deregistration of %s not acknowledged (scheduled at t+%.1fs)", c.instance(), c.deregAt.Seconds())
			}
			if !leaver && !regd {
				return fmt.Errorf("client %s not registered", c.instance())
			}
		}
		return nil
	})
}

// figures is what a scenario prints.
type figures struct {
	faultsStopped, ready, converged time.Time
	checked, deregistered           int
}

// converge runs the final checks once faults stopped: every node running,
// ready and agreeing on members (names); then, within one verify interval plus
// convergeSlack, equal digests and ring versions on every node, every beating
// client's instance on every node, no deregistered instance anywhere. Then it
// stops the workload and fails the test for every violation seen during the run.
func (w *workload) converge(t *testing.T, name string, nodes []*Node, names []string, faultsStopped time.Time) figures {
	t.Helper()
	f := figures{faultsStopped: faultsStopped}
	err := testutil.Poll(60*time.Second, func() error {
		for _, n := range nodes {
			if !n.Running() {
				return fmt.Errorf("%s is not running", n.Name)
			}
			if st, err := n.Status(); err != nil || !st.Ready {
				return fmt.Errorf("%s not ready: %v", n.Name, err)
			}
		}
		_, err := AgreeOnMembers(nodes, names...)
		return err
	})
	if err != nil {
		w.stop()
		t.Errorf("%s: nodes not all running, ready and agreeing on members within 60 s after faults stopped: %v", name, err)
		w.reportViolations(t, name)
		w.logFigures(t, name, f, len(w.violations))
		return f
	}
	f.ready = time.Now()
	bound := faultVerify + convergeSlack
	var last error
	deadline := f.ready.Add(bound)
	for {
		last = w.finalState(nodes, &f)
		if last == nil {
			f.converged = time.Now()
			break
		}
		if time.Now().After(deadline.Add(60 * time.Second)) {
			break
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	w.stop()
	took := f.converged.Sub(f.ready)
	switch {
	case f.converged.IsZero():
		t.Errorf("%s: cluster did not converge within %s (nor 60 s more) after every node was ready: %v", name, bound, last)
	case took > bound:
		t.Errorf("%s: converged %s after every node was ready, want within one verify interval + %s = %s",
			name, took.Round(time.Millisecond), convergeSlack, bound)
	}
	w.logFigures(t, name, f, w.reportViolations(t, name))
	return f
}

// reportViolations fails the test for each violation recorded (the first 20
// in full) and returns their number. The workload must be stopped.
func (w *workload) reportViolations(t *testing.T, name string) int {
	t.Helper()
	w.mu.Lock()
	violations := append([]string(nil), w.violations...)
	w.mu.Unlock()
	for i, v := range violations {
		if i == 20 {
			t.Errorf("%s: ... and %d more violations", name, len(violations)-20)
			break
		}
		t.Errorf("%s: invariant violated: %s", name, v)
	}
	return len(violations)
}

// finalState checks the converged state once; nil when it holds.
func (w *workload) finalState(nodes []*Node, f *figures) error {
	views := pollAll(nodes, w.services)
	if len(views) != len(nodes) {
		return fmt.Errorf("only %d of %d nodes answered completely while ready", len(views), len(nodes))
	}
	for _, v := range views[1:] {
		if v.digest != views[0].digest || v.ring != views[0].ring {
			return fmt.Errorf("%s has digest %s ring %s, %s has digest %s ring %s",
				views[0].node.Name, views[0].digest, views[0].ring, v.node.Name, v.digest, v.ring)
		}
	}
	checked, deregistered := 0, 0
	for _, c := range w.clients {
		c.mu.Lock()
		leaver, acked, regd := c.deregAt > 0, !c.deregAcked.IsZero(), len(c.acks) > 0
		c.mu.Unlock()
		for _, v := range views {
			switch {
			case leaver && acked && v.present[c.instance()]:
				return fmt.Errorf("deregistered %s still on %s", c.instance(), v.node.Name)
			case !leaver && regd && !v.present[c.instance()]:
				return fmt.Errorf("beating client's %s missing on %s", c.instance(), v.node.Name)
			case !leaver && !regd:
				return fmt.Errorf("client %s never registered", c.instance())
			}
		}
		if leaver {
			deregistered++
		} else {
			checked++
		}
	}
	f.checked, f.deregistered = checked, deregistered
	return nil
}

func (w *workload) logFigures(t *testing.T, name string, f figures, violations int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f.ready.IsZero() {
		f.ready = f.faultsStopped
	}
	failures := 0
	for _, c := range w.clients {
		c.mu.Lock()
		failures += c.failures
		c.mu.Unlock()
	}
	conv := "not converged"
	if !f.converged.IsZero() {
		conv = fmt.Sprintf("%s after every node was ready (%s after faults stopped; bound %s)",
			f.converged.Sub(f.ready).Round(time.Millisecond), f.converged.Sub(f.faultsStopped).Round(time.Millisecond),
			faultVerify+convergeSlack)
	}
	t.Logf("FIGURES %s: converged %s; all nodes ready and agreeing %s after faults stopped; "+
		"instances checked on every node %d (beating) + %d (deregistered, absent); node polls %d, complete while ready %d; "+
		"disappearances of non-deregistered instances %d (tolerated as the client was not provably beating, or on the unreachable side: %d); client requests unacknowledged %d; violations = %d",
		name, conv, f.ready.Sub(f.faultsStopped).Round(time.Millisecond), f.checked, f.deregistered,
		w.rounds, w.nodeRounds, w.disappeared, w.tolerated, failures, violations)
}

// metricSum sums a Prometheus counter or gauge (all label sets) over nodes; -1 when absent everywhere.
func metricSum(nodes []*Node, name string) float64 {
	sum, found := 0.0, false
	for _, n := range nodes {
		if v, ok, err := n.Metric(name, ""); err == nil && ok {
			sum, found = sum+v, true
		}
	}
	if !found {
		return -1
	}
	return sum
}

// sortedNames lists node names.
func sortedNames(nodes []*Node) []string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.Name)
	}
	sort.Strings(out)
	return out
}
