package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distrod/distrod/daemon"
)

// nodeStatus reads addr's /v1/distro/status.
func nodeStatus(c *benchClient, addr string) (daemon.DistroStatusResponse, error) {
	var st daemon.DistroStatusResponse
	body, err := c.getOK(addr, "/v1/distro/status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("decode %s/v1/distro/status: %w", addr, err)
	}
	return st, nil
}

type convergeResult struct {
	Converged bool    `json:"converged"`
	Seconds   float64 `json:"seconds"` // from the end of the load until equal digests
	Digest    string  `json:"digest,omitempty"`
	Keys      []int   `json:"keys"`      // per node
	Instances []int   `json:"instances"` // per node
	Services  []int   `json:"services"`  // per node
}

// waitConverged polls every node's status until all report one digest.
func waitConverged(ctx context.Context, c *benchClient, nodes []benchNode, timeout time.Duration) convergeResult {
	start := time.Now()
	var res convergeResult
	for {
		res = convergeResult{Keys: make([]int, len(nodes)), Instances: make([]int, len(nodes)), Services: make([]int, len(nodes))}
		digests := map[string]bool{}
		ok := true
		for i, n := range nodes {
			st, err := nodeStatus(c, n.Addr)
			if err != nil || !st.Ready {
				ok = false
				continue
			}
			digests[st.Digest] = true
			res.Digest = st.Digest
			res.Keys[i], res.Instances[i], res.Services[i] = st.Keys, st.Instances, st.Services
		}
		res.Seconds = time.Since(start).Seconds()
		if ok && len(digests) == 1 {
			res.Converged = true
			return res
		}
		res.Digest = ""
		if time.Since(start) > timeout || sleepCtx(ctx, 10*time.Millisecond) != nil {
			return res
		}
	}
}

// memNode is one node's memory before and after the load.
type memNode struct {
	Node            string  `json:"node"`
	Source          string  `json:"source"` // "/proc VmRSS" or "process_resident_memory_bytes"
	RSSBefore       uint64  `json:"rssBefore"`
	RSSAfter        uint64  `json:"rssAfter"`
	HeapBefore      uint64  `json:"heapInuseBefore"`
	HeapAfter       uint64  `json:"heapInuseAfter"`
	Instances       int     `json:"instances"`
	RSSPerInstance  float64 `json:"rssBytesPerInstance"`
	HeapPerInstance float64 `json:"heapBytesPerInstance"`
	Error           string  `json:"error,omitempty"`
}

type memSample struct {
	rss, heap uint64
	source    string
	err       error
}

// readMemory reads a node's resident memory (/proc for spawned nodes,
// process_resident_memory_bytes otherwise) and go_memstats_heap_inuse_bytes.
func readMemory(c *benchClient, n benchNode) memSample {
	var s memSample
	m, err := c.metrics(n.Addr)
	if err == nil {
		s.heap = uint64(m["go_memstats_heap_inuse_bytes"])
		s.rss = uint64(m["process_resident_memory_bytes"])
		s.source = "process_resident_memory_bytes"
	}
	if n.proc != nil {
		if rss, perr := procRSS(n.proc.PID()); perr == nil {
			s.rss, s.source, err = rss, "/proc/PID/status VmRSS", nil
		} else if err == nil {
			err = perr
		}
	}
	if s.rss == 0 && err == nil {
		err = errors.New("no resident memory figure (no process_resident_memory_bytes)")
	}
	s.err = err
	return s
}

func memoryResult(n benchNode, before, after memSample, instances int) memNode {
	r := memNode{Node: n.Name, Source: after.source, RSSBefore: before.rss, RSSAfter: after.rss,
		HeapBefore: before.heap, HeapAfter: after.heap, Instances: instances}
	if err := errors.Join(before.err, after.err); err != nil {
		r.Error = err.Error()
	}
	if instances > 0 {
		r.RSSPerInstance = (float64(after.rss) - float64(before.rss)) / float64(instances)
		r.HeapPerInstance = (float64(after.heap) - float64(before.heap)) / float64(instances)
	}
	return r
}

// listService registers a service of n instances through addr and waits until addr lists them all.
func listService(ctx context.Context, c *benchClient, addr, service string, n int, timeout time.Duration) error {
	for i := 0; i < n; i++ {
		q := "serviceName=" + url.QueryEscape(service) + fmt.Sprintf("&ip=192.168.%d.%d&port=9090", i/250, i%250+1)
		status, body, err := c.do("POST", addr, "/nacos/v1/ns/instance?"+q, true)
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("register list instance through %s: status %d %s", addr, status, snippetOf(body))
		}
	}
	uri := "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(service)
	deadline := time.Now().Add(timeout)
	for {
		body, err := c.getOK(addr, uri)
		if err == nil {
			var lr struct{ Hosts []json.RawMessage }
			if json.Unmarshal(body, &lr) == nil && len(lr.Hosts) == n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not list the %d instances of %s after %s", addr, n, service, timeout)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

type listResult struct {
	Node  string `json:"node"`
	Hosts int    `json:"hosts"`
	opResult
}

// runList lists one service on one node with cfg.Concurrency clients for
// cfg.ListDuration, at most cfg.MaxRequests requests.
func runList(ctx context.Context, c *benchClient, node benchNode, service string, hosts int, cfg benchConfig) listResult {
	var op opCounter
	var budget atomic.Int64
	budget.Store(int64(cfg.MaxRequests))
	ctx, cancel := context.WithTimeout(ctx, cfg.ListDuration)
	defer cancel()
	uri := "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(service)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && budget.Add(-1) >= 0 {
				op.requests.Add(1)
				t0 := time.Now()
				status, _, err := c.do("GET", node.Addr, uri, false)
				switch {
				case err != nil:
					op.fail(err.Error())
				case status != 200:
					op.fail(fmt.Sprintf("GET %s%s: status %d", node.Addr, uri, status))
				default:
					op.ok.Add(1)
					op.lat.add(time.Since(t0))
				}
			}
		}()
	}
	wg.Wait()
	return listResult{Node: node.Name, Hosts: hosts, opResult: op.result(time.Since(start))}
}

// verifyResult is the verify traffic of a steady cluster.
type verifyResult struct {
	// Method says where the figure comes from: "metrics" (byte counters the
	// nodes export) or "computed" (from the wire format and the ring).
	Method string `json:"method"`
	// PerPeerPerRound is the largest figure over the nodes, in bytes.
	PerPeerPerRound float64      `json:"bytesPerPeerPerRound"`
	Nodes           []verifyNode `json:"nodes"`
	// MismatchedPartitions counts partitions found different during the
	// measured rounds (0 in a steady cluster; -1 when unknown).
	MismatchedPartitions float64 `json:"mismatchedPartitions"`
	Note                 string  `json:"note,omitempty"`
}

type verifyNode struct {
	Node            string  `json:"node"`
	OwnedPartitions int     `json:"ownedPartitions"`
	Rounds          float64 `json:"rounds,omitempty"`
	PayloadBytes    int     `json:"payloadBytes"`    // checksum request + answer bodies (computed)
	BytesPerPeer    float64 `json:"bytesPerPeer"`    // per round, headers included
	BytesFromMetric float64 `json:"bytesFromMetric"` // per round and peer, when the node exports byte counters
}

// verifyByteMetric sums the samples of a node's metrics that count verify
// bytes: any "bytes" counter whose name or labels mention verify or checksum.
func verifyByteMetric(m map[string]float64) (float64, bool) {
	var sum float64
	found := false
	for k, v := range m {
		lk := strings.ToLower(k)
		if !strings.Contains(lk, "bytes") || !strings.HasSuffix(strings.SplitN(lk, "{", 2)[0], "_total") {
			continue
		}
		if strings.Contains(lk, "verify") || strings.Contains(lk, "checksum") {
			sum += v
			found = true
		}
	}
	return sum, found
}

// httpOverheadBytes estimates the request line and headers of one verify
// exchange (request and answer) as fasthttp writes them.
const httpOverheadBytes = 330

// runVerify measures verify traffic between steady nodes. When the nodes
// export verify byte counters it waits for at least one round on every node
// and divides; otherwise it computes the digest message size from the ring
// (the wire format in distro/codec.go: one uvarint partition and 8-byte digest
// per owned partition) plus an estimate of the HTTP headers.
func runVerify(ctx context.Context, c *benchClient, nodes []benchNode, timeout time.Duration) verifyResult {
	res := verifyResult{Method: "computed", MismatchedPartitions: -1}
	var ring daemon.RingResponse
	if body, err := c.getOK(nodes[0].Addr, "/v1/cluster/ring"); err == nil {
		_ = json.Unmarshal(body, &ring)
	}
	owned := map[string][]int{}
	for p, o := range ring.Owners {
		owned[o] = append(owned[o], p)
	}
	before := make([]map[string]float64, len(nodes))
	allMetric := true
	for i, n := range nodes {
		m, err := c.metrics(n.Addr)
		if err != nil {
			allMetric = false
			continue
		}
		before[i] = m
		if _, ok := verifyByteMetric(m); !ok {
			allMetric = false
		}
	}
	// Wait for at least two verify rounds on every node so a round in flight
	// at the first read does not count half.
	after := make([]map[string]float64, len(nodes))
	deadline := time.Now().Add(timeout)
	for {
		done := true
		for i, n := range nodes {
			m, err := c.metrics(n.Addr)
			if err != nil || before[i] == nil {
				done = false
				continue
			}
			after[i] = m
			if m["distro_verify_rounds_total"]-before[i]["distro_verify_rounds_total"] < 2 {
				done = false
			}
		}
		if done || time.Now().After(deadline) || sleepCtx(ctx, 100*time.Millisecond) != nil {
			break
		}
	}
	var mism float64
	haveMism := true
	for i, n := range nodes {
		vn := verifyNode{Node: n.Name, OwnedPartitions: len(owned[n.Name])}
		vn.PayloadBytes = checksumRequestBytes(n.Name, owned[n.Name]) + 4 // + the empty mismatch answer
		vn.BytesPerPeer = float64(vn.PayloadBytes + httpOverheadBytes)
		if before[i] != nil && after[i] != nil {
			vn.Rounds = after[i]["distro_verify_rounds_total"] - before[i]["distro_verify_rounds_total"]
			mism += after[i]["distro_verify_mismatched_partitions_total"] - before[i]["distro_verify_mismatched_partitions_total"]
			if allMetric && vn.Rounds > 0 && len(nodes) > 1 {
				b1, _ := verifyByteMetric(before[i])
				b2, _ := verifyByteMetric(after[i])
				vn.BytesFromMetric = (b2 - b1) / vn.Rounds / float64(len(nodes)-1)
			}
		} else {
			haveMism = false
		}
		res.Nodes = append(res.Nodes, vn)
	}
	if haveMism {
		res.MismatchedPartitions = mism
	}
	for _, vn := range res.Nodes {
		v := vn.BytesPerPeer
		if allMetric && vn.BytesFromMetric > 0 {
			v = vn.BytesFromMetric
			res.Method = "metrics"
		}
		res.PerPeerPerRound = max(res.PerPeerPerRound, v)
	}
	if res.Method == "computed" {
		res.Note = "the nodes export no verify byte counter: computed from the ring and distro's wire format " +
			"(digest per owned partition) plus ~330 B of HTTP headers; phase 2 (key checksums) adds traffic only for mismatched partitions"
	}
	return res
}

// checksumRequestBytes is the encoded size of a phase-1 verify message
// (distro/codec.go, kind 'C'): header, source, ring version, the digests of
// the owned partitions, and empty partition and key lists.
func checksumRequestBytes(source string, partitions []int) int {
	n := 3 + uvarintLen(uint64(len(source))) + len(source) + 8 + uvarintLen(uint64(len(partitions)))
	for _, p := range partitions {
		n += uvarintLen(uint64(p)) + 8
	}
	return n + 1 + 1
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// joinResult is a new node loading the snapshot.
type joinResult struct {
	Node            string  `json:"node"`
	ReadySeconds    float64 `json:"readySeconds"`    // exec → /health 200
	SnapshotSeconds float64 `json:"snapshotSeconds"` // distro_snapshot_load_seconds
	SnapshotBytes   float64 `json:"snapshotBytes"`   // distro_snapshot_load_bytes
	Instances       int     `json:"instances"`
	Services        int     `json:"services"`
	Keys            int     `json:"keys"`
	RSS             uint64  `json:"rss"`
	Error           string  `json:"error,omitempty"`
}

// runJoin starts one more node and measures how long it takes to be ready.
func runJoin(ctx context.Context, c *benchClient, cl *benchCluster, name string, timeout time.Duration) (joinResult, *agentProc) {
	res := joinResult{Node: name}
	p, err := cl.spawn(ctx, name)
	if err != nil {
		res.Error = err.Error()
		return res, nil
	}
	deadline := p.Started.Add(timeout)
	for {
		status, _, err := c.do("GET", p.HTTPAddr, "/health", false)
		if err == nil && status == 200 {
			res.ReadySeconds = time.Since(p.Started).Seconds()
			break
		}
		if time.Now().After(deadline) {
			res.Error = fmt.Sprintf("not ready after %s", timeout)
			return res, p
		}
		if sleepCtx(ctx, 2*time.Millisecond) != nil {
			res.Error = ctx.Err().Error()
			return res, p
		}
	}
	if m, err := c.metrics(p.HTTPAddr); err == nil {
		res.SnapshotSeconds = m["distro_snapshot_load_seconds"]
		res.SnapshotBytes = m["distro_snapshot_load_bytes"]
	}
	if st, err := nodeStatus(c, p.HTTPAddr); err == nil {
		res.Instances, res.Services, res.Keys = st.Instances, st.Services, st.Keys
		if res.SnapshotSeconds == 0 && st.SnapshotLoad != "" {
			if d, err := time.ParseDuration(st.SnapshotLoad); err == nil {
				res.SnapshotSeconds = d.Seconds()
			}
		}
	}
	res.RSS, _ = procRSS(p.PID())
	return res, p
}
