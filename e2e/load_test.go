package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distrod/distrod/hashring"
)

const (
	loadServices  = 100
	loadInstances = 1000 // loadInstances / loadServices per service
	loadWorkers   = 16   // bounded concurrency of registration and beats
	loadBeatEvery = time.Second
)

// loadInst is one instance of the load test.
type loadInst struct {
	svc  string // service name (DEFAULT_GROUP)
	ip   string
	port int
}

func loadInstance(i int) loadInst {
	return loadInst{
		svc:  fmt.Sprintf("load.svc-%03d", i%loadServices),
		ip:   fmt.Sprintf("10.1.%d.%d", i/250, i%250+1),
		port: 20000 + i,
	}
}

func (in loadInst) String() string { return in.svc + "/" + in.ip + ":" + strconv.Itoa(in.port) }

// key is the service's datum key, namespace##group@@service.
func (in loadInst) key() string { return "public##DEFAULT_GROUP@@" + in.svc }

func (in loadInst) registerForm() url.Values {
	return url.Values{"serviceName": {in.svc}, "ip": {in.ip}, "port": {strconv.Itoa(in.port)},
		"weight": {"1"}, "ephemeral": {"true"}, "metadata": {`{"load":"e2e"}`}}
}

// beatForm carries the beat JSON, so a node that lost the instance registers it again.
func (in loadInst) beatForm() url.Values {
	beat, _ := json.Marshal(map[string]any{"ip": in.ip, "port": in.port, "serviceName": "DEFAULT_GROUP@@" + in.svc,
		"cluster": "DEFAULT", "weight": 1, "metadata": map[string]string{"load": "e2e"}})
	return url.Values{"serviceName": {"DEFAULT_GROUP@@" + in.svc}, "beat": {string(beat)}}
}

// loadLiveSet is the nodes clients may talk to (a killed node is taken out first).
type loadLiveSet struct {
	mu    sync.Mutex
	nodes []*Node
}

func (l *loadLiveSet) random() *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[rand.IntN(len(l.nodes))]
}

func (l *loadLiveSet) set(nodes ...*Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append([]*Node(nil), nodes...)
}

// loadBeater beats every registered instance each loadBeatEvery through random
// live nodes, as the instances' clients would.
type loadBeater struct {
	hc   *http.Client
	live *loadLiveSet

	mu     sync.Mutex
	insts  []loadInst
	rounds []time.Duration
	codes  map[string]int // "200" etc., "err" for transport errors

	stop chan struct{}
	done chan struct{}
}

func startLoadBeater(t *testing.T, hc *http.Client, live *loadLiveSet) *loadBeater {
	b := &loadBeater{hc: hc, live: live, codes: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	t.Cleanup(b.halt)
	return b
}

func (b *loadBeater) add(in loadInst) {
	b.mu.Lock()
	b.insts = append(b.insts, in)
	b.mu.Unlock()
}

// halt stops the loadBeater and waits for it (idempotent).
func (b *loadBeater) halt() {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	<-b.done
}

func (b *loadBeater) run() {
	defer close(b.done)
	tick := time.NewTicker(loadBeatEvery)
	defer tick.Stop()
	for {
		start := time.Now()
		b.mu.Lock()
		insts := append([]loadInst(nil), b.insts...)
		b.mu.Unlock()
		codes := map[string]int{}
		var cmu sync.Mutex
		loadForEach(len(insts), loadWorkers, func(i int) {
			select {
			case <-b.stop:
				return
			default:
			}
			code := "err"
			if status, body, err := b.live.random().DoWith(b.hc, http.MethodPut, "/nacos/v1/ns/instance/beat", insts[i].beatForm()); err == nil {
				code = strconv.Itoa(status)
				if status == http.StatusOK && !strings.Contains(string(body), `"code":10200`) {
					code = "200:" + string(body)
				}
			}
			cmu.Lock()
			codes[code]++
			cmu.Unlock()
		})
		b.mu.Lock()
		b.rounds = append(b.rounds, time.Since(start))
		for k, v := range codes {
			b.codes[k] += v
		}
		b.mu.Unlock()
		select {
		case <-b.stop:
			return
		case <-tick.C:
		}
	}
}

// stats reports the beat rounds so far and the answers by status.
func (b *loadBeater) stats() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("%d rounds, round time %s; answers %v", len(b.rounds), nacosDist(b.rounds), b.codes)
}

// loadForEach runs f(0..n-1) on at most workers goroutines and waits.
func loadForEach(n, workers int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// loadRegister POSTs the instance through n; it must be acknowledged with "ok".
func loadRegister(hc *http.Client, n *Node, in loadInst) (time.Duration, error) {
	start := time.Now()
	status, body, err := n.DoWith(hc, http.MethodPost, "/nacos/v1/ns/instance", in.registerForm())
	took := time.Since(start)
	if err != nil {
		return took, fmt.Errorf("register %s through %s: %w", in, n.Name, err)
	}
	if status != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return took, fmt.Errorf("register %s through %s: %d %s", in, n.Name, status, body)
	}
	return took, nil
}

// loadRingOwners is the owner of each partition according to n: the cluster's
// own answer, indexed by partition, so the tests follow the ring the nodes
// actually route by instead of recomputing it.
func loadRingOwners(n *Node) ([]string, error) {
	var r struct {
		Partitions int      `json:"partitions"`
		Owners     []string `json:"owners"`
	}
	if err := n.GetJSON("/v1/cluster/ring", &r); err != nil {
		return nil, err
	}
	if len(r.Owners) != r.Partitions || r.Partitions == 0 {
		return nil, fmt.Errorf("%s: ring with %d owners for %d partitions", n.Name, len(r.Owners), r.Partitions)
	}
	return r.Owners, nil
}

// loadOwnerOf is the owner of key's partition (hashring.PartitionOf, the
// nodes' own key → partition map) in owners, from loadRingOwners.
func loadOwnerOf(owners []string, key string) string {
	return owners[hashring.PartitionOf(key, len(owners))]
}

// loadConverged checks that nodes are ready, report one digest and hold want instances.
func loadConverged(nodes []*Node, want int) error {
	digest := ""
	for _, n := range nodes {
		s, err := n.Status()
		if err != nil {
			return err
		}
		switch {
		case !s.Ready:
			return fmt.Errorf("%s not ready", n.Name)
		case s.Instances != want:
			return fmt.Errorf("%s holds %d instances, want %d", n.Name, s.Instances, want)
		case digest == "":
			digest = s.Digest
		case s.Digest != digest:
			return fmt.Errorf("%s digest %s differs from %s", n.Name, s.Digest, digest)
		}
	}
	return nil
}

// loadStatusCommand runs `distrod status --http addr` and checks it says converged with exit 0.
func loadStatusCommand(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "status", "--http", addr).CombinedOutput()
	if err != nil {
		return fmt.Errorf("distrod status --http %s: %w\n%s", addr, err, out)
	}
	if !strings.Contains(string(out), "converged") || strings.Contains(string(out), "diverged") {
		return fmt.Errorf("distrod status --http %s exited 0 without the verdict converged:\n%s", addr, out)
	}
	return nil
}

// loadMissing lists the instances of insts that n does not list (or an error).
func loadMissing(hc *http.Client, n *Node, insts []loadInst) ([]loadInst, error) {
	bySvc := map[string][]loadInst{}
	for _, in := range insts {
		bySvc[in.svc] = append(bySvc[in.svc], in)
	}
	var out []loadInst
	for svc, want := range bySvc {
		hosts, err := nacosList(hc, n, svc)
		if err != nil {
			return nil, err
		}
		for _, in := range want {
			if nacosFindHost(hosts, in.ip, in.port) == nil {
				out = append(out, in)
			}
		}
	}
	return out, nil
}

// TestLoadFailover registers 1 000 instances over 100 services through all
// three nodes while a loadBeater keeps them alive, checks convergence, kills -9
// the node owning most of them, checks that no survivor ever misses an
// instance while the cluster settles, restarts the node and checks that it
// loads everything and converges. It prints the registration figures.
func TestLoadFailover(t *testing.T) {
	c := StartCluster(t, 3, Options{Args: nacosArgs})
	Eventually(t, 30*time.Second, "3 members and one ring", func() error {
		_, err := AgreeOnMembers(c.Nodes, "node1", "node2", "node3")
		return err
	})
	owners, err := loadRingOwners(c.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*Node{}
	for _, n := range c.Nodes {
		byName[n.Name] = n
	}
	ownerNode := func(in loadInst) *Node { return byName[loadOwnerOf(owners, in.key())] }
	notOwner := func(in loadInst, i int) *Node {
		o := ownerNode(in)
		for {
			if n := c.Nodes[i%len(c.Nodes)]; n != o {
				return n
			}
			i++
		}
	}

	hc := nacosHTTPClient(t)
	live := &loadLiveSet{}
	live.set(c.Nodes...)
	beats := startLoadBeater(t, hc, live)

	insts := make([]loadInst, loadInstances)
	for i := range insts {
		insts[i] = loadInstance(i)
	}

	// Latency: 200 sequential registrations on the owner and 200 through
	// another node (forwarded), interleaved so both see the same conditions.
	for _, n := range c.Nodes { // open the keep-alive connections first
		if status, _, err := n.DoWith(hc, http.MethodGet, "/health", nil); err != nil || status != http.StatusOK {
			t.Fatalf("%s /health: %d %v", n.Name, status, err)
		}
	}
	var onOwner, forwarded, visible []time.Duration
	for i := 0; i < 400; i++ {
		through := ownerNode(insts[i])
		if i%2 == 1 {
			through = notOwner(insts[i], i/2)
		}
		d, err := loadRegister(hc, through, insts[i])
		if err != nil {
			t.Fatal(err)
		}
		beats.add(insts[i])
		if i%2 == 0 {
			onOwner = append(onOwner, d)
		} else {
			forwarded = append(forwarded, d)
		}
	}
	// Visibility: from the ack to listed by all three nodes, 100 samples.
	for i := 400; i < 500; i++ {
		in := insts[i]
		if _, err := loadRegister(hc, live.random(), in); err != nil {
			t.Fatal(err)
		}
		acked := time.Now()
		beats.add(in)
		pending := append([]*Node(nil), c.Nodes...)
		for deadline := acked.Add(10 * time.Second); len(pending) > 0; {
			if time.Now().After(deadline) {
				t.Fatalf("%s not listed by %s within 10s of its ack", in, pending[0].Name)
			}
			hosts, err := nacosList(hc, pending[0], in.svc)
			if err == nil && nacosFindHost(hosts, in.ip, in.port) != nil {
				pending = pending[1:]
			}
		}
		visible = append(visible, time.Since(acked))
	}
	// The rest concurrently through random nodes.
	var errMu sync.Mutex
	var regErrs []error
	bulkStart := time.Now()
	loadForEach(loadInstances-500, loadWorkers, func(j int) {
		in := insts[500+j]
		if _, err := loadRegister(hc, live.random(), in); err != nil {
			errMu.Lock()
			regErrs = append(regErrs, err)
			errMu.Unlock()
			return
		}
		beats.add(in)
	})
	bulk := time.Since(bulkStart)
	if err := errors.Join(regErrs...); err != nil {
		t.Fatal(err)
	}
	t.Logf("registration latency on the owner: %s", nacosDist(onOwner))
	t.Logf("registration latency through another node (forwarded): %s", nacosDist(forwarded))
	t.Logf("register ack → listed by all 3 nodes: %s", nacosDist(visible))
	t.Logf("bulk: %d registrations with %d workers through random nodes in %s (%.0f/s)",
		loadInstances-500, loadWorkers, bulk.Round(time.Millisecond), float64(loadInstances-500)/bulk.Seconds())

	convergeStart := time.Now()
	Eventually(t, 30*time.Second, "all 3 nodes converge on 1000 instances", func() error {
		return loadConverged(c.Nodes, loadInstances)
	})
	t.Logf("last registration → equal digests on all 3 nodes: %s", time.Since(convergeStart).Round(time.Millisecond))
	Eventually(t, 15*time.Second, "distrod status says converged", func() error { return loadStatusCommand(c.Nodes[0].HTTPAddr) })

	// The victim: the node responsible for the most instances.
	count := map[string]int{}
	for _, in := range insts {
		count[loadOwnerOf(owners, in.key())]++
	}
	victim := c.Nodes[0]
	for _, n := range c.Nodes {
		if count[n.Name] > count[victim.Name] {
			victim = n
		}
	}
	var survivors []*Node
	var survivorNames []string
	for _, n := range c.Nodes {
		if n != victim {
			survivors = append(survivors, n)
			survivorNames = append(survivorNames, n.Name)
		}
	}
	t.Logf("instances per responsible node %v; killing %s", count, victim.Name)

	// Watch the survivors: every instance must stay listed on each of them.
	watch := startLoadWatch(hc, survivors, insts)
	live.set(survivors...)
	killed := time.Now()
	victim.Kill()

	Eventually(t, 60*time.Second, "survivors agree on a ring without "+victim.Name, func() error {
		_, err := AgreeOnMembers(survivors, survivorNames...)
		return err
	})
	ringChanged := time.Since(killed)
	Eventually(t, 30*time.Second, "survivors converge on 1000 instances", func() error {
		return loadConverged(survivors, loadInstances)
	})
	settled := time.Since(killed)
	// Keep watching past the delete timeout after the ownership change: an
	// instance wrongly expired by a new owner would be gone by then.
	settleEnd := killed.Add(ringChanged + nacosDeleteTimeout + 2*time.Second)
	Eventually(t, time.Until(settleEnd)+20*time.Second, "a full watch round after the settle window", func() error {
		if !watch.roundAfter(settleEnd) {
			return errors.New("no complete watch round started after the window")
		}
		return nil
	})
	rounds, violations := watch.halt()
	t.Logf("kill -9 %s → survivors agree on the new ring %s, converge %s; watched %d rounds of %d lists for %s",
		victim.Name, ringChanged.Round(time.Millisecond), settled.Round(time.Millisecond), rounds,
		loadServices*len(survivors), time.Since(killed).Round(time.Millisecond))
	if len(violations) > 0 {
		t.Errorf("%d times an instance was loadMissing or a list failed on a survivor; first: %v", len(violations), violations[:min(len(violations), 10)])
	}
	if rounds < 5 {
		t.Errorf("only %d watch rounds over the settle window", rounds)
	}
	if removed := nacosClusterMetric(t, survivors, "distrod_naming_expirations_total", `kind="removed"`); removed != 0 {
		t.Errorf("survivors removed %v instances for loadMissing beats while every instance was beaten", removed)
	}
	for _, n := range survivors {
		m, err := loadMissing(hc, n, insts)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) > 0 {
			t.Errorf("%s lacks %d instances after settling, e.g. %v", n.Name, len(m), m[0])
		}
	}

	// Restart under the same name: snapshot, convergence, every instance.
	restarted := time.Now()
	victim.Restart()
	live.set(c.Nodes...)
	Eventually(t, 60*time.Second, "all 3 agree on members again", func() error {
		_, err := AgreeOnMembers(c.Nodes, "node1", "node2", "node3")
		return err
	})
	Eventually(t, 30*time.Second, "all 3 converge on 1000 instances after the restart", func() error {
		return loadConverged(c.Nodes, loadInstances)
	})
	t.Logf("restart of %s → all 3 converged with 1000 instances: %s", victim.Name, time.Since(restarted).Round(time.Millisecond))
	if m, err := loadMissing(hc, victim, insts); err != nil || len(m) > 0 {
		t.Errorf("restarted %s: %d instances loadMissing (%v)", victim.Name, len(m), err)
	}
	Eventually(t, 15*time.Second, "distrod status says loadConverged after the restart", func() error {
		return loadStatusCommand(victim.HTTPAddr)
	})
	t.Logf("beater: %s", beats.stats())
}

// loadWatch lists every service on every survivor, round after round,
// and records each instance found loadMissing and each failed list.
type loadWatch struct {
	stop chan struct{}
	done chan struct{}

	mu         sync.Mutex
	rounds     int
	lastStart  time.Time // start of the last completed round
	violations []string
}

// roundAfter reports whether a round that started after t has completed.
func (w *loadWatch) roundAfter(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastStart.After(t)
}

func startLoadWatch(hc *http.Client, nodes []*Node, insts []loadInst) *loadWatch {
	w := &loadWatch{stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			roundStart := time.Now()
			var found []string
			for _, n := range nodes {
				m, err := loadMissing(hc, n, insts)
				at := time.Since(start).Round(time.Millisecond)
				if err != nil {
					found = append(found, fmt.Sprintf("t+%s %v", at, err))
				}
				for _, in := range m {
					found = append(found, fmt.Sprintf("t+%s %s lacks %s", at, n.Name, in))
				}
			}
			w.mu.Lock()
			w.rounds++
			w.lastStart = roundStart
			w.violations = append(w.violations, found...)
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond) // watch period, leaves the nodes some CPU
		}
	}()
	return w
}

// halt stops the watch and returns the rounds done and the violations seen.
func (w *loadWatch) halt() (int, []string) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rounds, w.violations
}
