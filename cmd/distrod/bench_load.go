package main

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// benchConfig bounds and shapes one bench run.
type benchConfig struct {
	// Duration bounds the load phase (registrations, beats, visibility samples).
	Duration time.Duration
	// MaxRequests bounds the registrations plus beats of the load phase, and separately the list requests.
	MaxRequests int
	// Rate is the target registrations per second; 0 means as fast as the clients go.
	Rate float64
	// Concurrency is the number of concurrent registering clients (list clients too).
	Concurrency int
	// Services and InstancesPerService: at most Services × InstancesPerService registrations.
	Services, InstancesPerService int
	// SampleEvery picks every n-th registration for the visibility measurement; MaxSamples bounds them.
	SampleEvery, MaxSamples int
	// BeatInterval is how often each registered instance beats during the load (as Nacos clients do); 0: no beats.
	BeatInterval time.Duration
	// ListDuration bounds the list phase.
	ListDuration time.Duration
	// VisibleTimeout bounds the wait for one sample to appear on every node.
	VisibleTimeout time.Duration
	// SettleTimeout bounds waiting for convergence, verify rounds and a joining node.
	SettleTimeout time.Duration
	// Prefix starts every service name, unique per run.
	Prefix string
	// Progress receives one line per second; nil for none.
	Progress io.Writer
}

// latencies collects durations; safe for concurrent use.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// stats sorts the samples and summarises them.
func (l *latencies) stats() latencyStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.d)
	n := len(l.d)
	if n == 0 {
		return latencyStats{}
	}
	q := func(p float64) float64 { return ms(l.d[min(n-1, int(p*float64(n)))]) }
	return latencyStats{N: n, P50: q(0.50), P99: q(0.99), Max: ms(l.d[n-1])}
}

func (l *latencies) p99() float64 {
	l.mu.Lock()
	c := slices.Clone(l.d)
	l.mu.Unlock()
	if len(c) == 0 {
		return 0
	}
	slices.Sort(c)
	return ms(c[min(len(c)-1, int(0.99*float64(len(c))))])
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// instanceRef names registration i: service i % S, a distinct ip per registration.
type instanceRef struct {
	service string
	ip      string
}

func (cfg *benchConfig) instance(i int) instanceRef {
	return instanceRef{
		service: fmt.Sprintf("%s-%05d", cfg.Prefix, i%cfg.Services),
		ip:      fmt.Sprintf("10.%d.%d.%d", (i>>16)&255, (i>>8)&255, i&255),
	}
}

func (r instanceRef) query() string {
	return "serviceName=" + url.QueryEscape(r.service) + "&ip=" + r.ip + "&port=8080"
}

// loadResult is what the load phase measured.
type loadResult struct {
	Register   opResult
	Beats      opResult
	BeatsLost  int64 // beats answered 20404: the instance was unknown
	Visibility visibilityResult
	// Registered counts acknowledged registrations.
	Registered int64
}

type opResult struct {
	Requests  int64        `json:"requests"`
	OK        int64        `json:"ok"`
	Errors    int64        `json:"errors"`
	Seconds   float64      `json:"seconds"`
	PerSecond float64      `json:"perSecond"`
	Latency   latencyStats `json:"latencyMs"`
	LastError string       `json:"lastError,omitempty"`
}

type visibilityResult struct {
	Sampled  int          `json:"sampled"`
	Visible  int          `json:"visible"`
	TimedOut int          `json:"timedOut"`
	Dropped  int          `json:"dropped"` // samples skipped because the pollers were busy
	Latency  latencyStats `json:"latencyMs"`
}

// opCounter counts one kind of request.
type opCounter struct {
	requests, ok, errors atomic.Int64
	lat                  latencies
	lastErr              atomic.Value // string
}

func (o *opCounter) fail(err string) {
	o.errors.Add(1)
	o.lastErr.Store(err)
}

func (o *opCounter) result(elapsed time.Duration) opResult {
	r := opResult{Requests: o.requests.Load(), OK: o.ok.Load(), Errors: o.errors.Load(),
		Seconds: elapsed.Seconds(), Latency: o.lat.stats()}
	if elapsed > 0 {
		r.PerSecond = float64(r.OK) / elapsed.Seconds()
	}
	if s, ok := o.lastErr.Load().(string); ok {
		r.LastError = s
	}
	return r
}

// beatEntry is a registered instance waiting for its next beat.
type beatEntry struct {
	i     int
	due   time.Time
	first bool // not beaten yet
}

// beatQueue holds registered instances by next beat time (a min-heap); a
// beat puts the instance back one interval later.
type beatQueue struct {
	mu sync.Mutex
	h  beatHeap
}

type beatHeap []beatEntry

func (h beatHeap) Len() int           { return len(h) }
func (h beatHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h beatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *beatHeap) Push(x any)        { *h = append(*h, x.(beatEntry)) }
func (h *beatHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func (b *beatQueue) push(e beatEntry) {
	b.mu.Lock()
	heap.Push(&b.h, e)
	b.mu.Unlock()
}

// pop returns the earliest entry if it is due, else how long until it is (or a short wait when empty).
func (b *beatQueue) pop(now time.Time) (beatEntry, time.Duration, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.h) == 0 {
		return beatEntry{}, 20 * time.Millisecond, false
	}
	if wait := b.h[0].due.Sub(now); wait > 0 {
		return beatEntry{}, wait, false
	}
	return heap.Pop(&b.h).(beatEntry), 0, true
}

// sample is one registration whose visibility is measured.
type sample struct {
	ref   instanceRef
	acked time.Time
}

// runLoad registers instances at the target rate through random nodes, beats
// them, and samples register-ack-to-visible-everywhere, all bounded by
// cfg.Duration and cfg.MaxRequests.
func runLoad(ctx context.Context, c *benchClient, nodes []benchNode, cfg benchConfig) loadResult {
	var (
		reg, beat    opCounter
		beatsLost    atomic.Int64
		budget       atomic.Int64 // requests left (registrations + beats)
		next         atomic.Int64 // next registration index
		vis          latencies
		visOK, visTO atomic.Int64
		dropped      atomic.Int64
		sampledN     atomic.Int64
		beats        beatQueue
		firstBeats   atomic.Int64 // instances beaten at least once
		regsDone     = make(chan struct{})
	)
	budget.Store(int64(cfg.MaxRequests))
	total := int64(cfg.Services) * int64(cfg.InstancesPerService)
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	start := time.Now()
	samples := make(chan sample, 256)

	beaters := max(1, cfg.Concurrency/4)
	if cfg.BeatInterval <= 0 {
		beaters = 0
	}

	// Registering clients.
	var regWG sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		regWG.Add(1)
		go func() {
			defer regWG.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total || budget.Add(-1) < 0 {
					return
				}
				if cfg.Rate > 0 {
					due := start.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))
					if d := time.Until(due); d > 0 && sleepCtx(ctx, d) != nil {
						return
					}
				}
				ref := cfg.instance(int(i))
				node := nodes[rng.IntN(len(nodes))]
				reg.requests.Add(1)
				t0 := time.Now()
				status, body, err := c.do("POST", node.Addr, "/nacos/v1/ns/instance?"+ref.query(), false)
				acked := time.Now()
				switch {
				case err != nil:
					reg.fail(err.Error())
					continue
				case status != 200:
					reg.fail(fmt.Sprintf("POST %s/nacos/v1/ns/instance: status %d %s", node.Addr, status, snippetOf(body)))
					continue
				}
				reg.ok.Add(1)
				reg.lat.add(acked.Sub(t0))
				// Clients beat once per interval from their own start: spread the first beats over it.
				jitter := time.Duration(rng.Int64N(max(1, int64(cfg.BeatInterval))))
				if beaters > 0 {
					beats.push(beatEntry{i: int(i), due: acked.Add(jitter), first: true})
				}
				if cfg.SampleEvery > 0 && i%int64(cfg.SampleEvery) == 0 && sampledN.Load() < int64(cfg.MaxSamples) {
					select {
					case samples <- sample{ref: ref, acked: acked}:
						sampledN.Add(1)
					default:
						dropped.Add(1)
					}
				}
			}
		}()
	}
	go func() { regWG.Wait(); close(regsDone) }()

	// Beating clients: a quarter of the concurrency, at least one; none when BeatInterval is 0.
	var beatWG sync.WaitGroup
	for w := 0; w < beaters; w++ {
		beatWG.Add(1)
		go func() {
			defer beatWG.Done()
			rng := rand.New(rand.NewPCG(uint64(w)+1<<32, uint64(start.UnixNano())))
			for ctx.Err() == nil {
				e, wait, ok := beats.pop(time.Now())
				if !ok {
					if sleepCtx(ctx, min(wait, 50*time.Millisecond)) != nil {
						return
					}
					continue
				}
				if budget.Add(-1) < 0 {
					return
				}
				ref := cfg.instance(e.i)
				node := nodes[rng.IntN(len(nodes))]
				beat.requests.Add(1)
				t0 := time.Now()
				status, body, err := c.do("PUT", node.Addr, "/nacos/v1/ns/instance/beat?"+ref.query(), true)
				switch {
				case err != nil:
					beat.fail(err.Error())
				case status != 200:
					beat.fail(fmt.Sprintf("PUT %s/nacos/v1/ns/instance/beat: status %d %s", node.Addr, status, snippetOf(body)))
				default:
					beat.ok.Add(1)
					beat.lat.add(time.Since(t0))
					if containsCode(body, 20404) {
						beatsLost.Add(1)
					}
				}
				if e.first {
					firstBeats.Add(1)
				}
				beats.push(beatEntry{i: e.i, due: time.Now().Add(cfg.BeatInterval)})
			}
		}()
	}

	// Visibility pollers: each takes a sample and polls every node's list until
	// the instance is there. They outlive the load by at most VisibleTimeout.
	var visWG sync.WaitGroup
	for w := 0; w < 16; w++ {
		visWG.Add(1)
		go func() {
			defer visWG.Done()
			for s := range samples {
				if d, ok := waitVisible(c, nodes, s, cfg.VisibleTimeout); ok {
					visOK.Add(1)
					vis.add(d)
				} else {
					visTO.Add(1)
				}
			}
		}()
	}

	// Progress, once a second.
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if cfg.Progress == nil {
			return
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok := reg.ok.Load()
			fmt.Fprintf(cfg.Progress, "[%5.1fs] registered %d (%d/s, p99 %.1f ms) errors %d · beats %d · visible %d/%d (p99 %.1f ms)\n",
				time.Since(start).Seconds(), ok, ok-last, reg.lat.p99(), reg.errors.Load()+beat.errors.Load(),
				beat.ok.Load(), visOK.Load(), sampledN.Load(), vis.p99())
			last = ok
		}
	}()

	select {
	case <-regsDone:
	case <-ctx.Done():
	}
	regElapsed := time.Since(start)
	<-regsDone
	// Registrations are done: keep beating until every registered instance beat
	// once, within the duration and the request budget.
	for beaters > 0 && ctx.Err() == nil && firstBeats.Load() < reg.ok.Load() && budget.Load() > 0 {
		_ = sleepCtx(ctx, 20*time.Millisecond)
	}
	cancel()
	beatWG.Wait()
	close(samples)
	visWG.Wait()
	<-progressDone

	res := loadResult{
		Register:   reg.result(regElapsed),
		Beats:      beat.result(time.Since(start)),
		BeatsLost:  beatsLost.Load(),
		Registered: reg.ok.Load(),
		Visibility: visibilityResult{
			Sampled: int(sampledN.Load()), Visible: int(visOK.Load()), TimedOut: int(visTO.Load()),
			Dropped: int(dropped.Load()), Latency: vis.stats(),
		},
	}
	return res
}

// waitVisible polls every node's list for s until all show it, or timeout.
func waitVisible(c *benchClient, nodes []benchNode, s sample, timeout time.Duration) (time.Duration, bool) {
	uri := "/nacos/v1/ns/instance/list?serviceName=" + url.QueryEscape(s.ref.service)
	needle := []byte(`"ip":"` + s.ref.ip + `"`)
	pending := make([]bool, len(nodes))
	for i := range pending {
		pending[i] = true
	}
	left := len(nodes)
	var last time.Time
	deadline := s.acked.Add(timeout)
	for left > 0 {
		for i, n := range nodes {
			if !pending[i] {
				continue
			}
			ok, _ := c.contains(n.Addr, uri, needle)
			if ok {
				pending[i] = false
				left--
				last = time.Now()
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return 0, false
		}
		time.Sleep(500 * time.Microsecond)
	}
	return last.Sub(s.acked), true
}

// containsCode reports whether a beat answer carries "code":n.
func containsCode(body []byte, n int) bool {
	return bytes.Contains(body, []byte(`"code":`+strconv.Itoa(n)))
}
