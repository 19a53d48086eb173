package distro

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks over real HTTP on loopback. Figures and commands are recorded in
// docs/BENCHMARKS.md.

// benchStore reports remote applies of one watched key.
type benchStore struct {
	*MemStore
	watch atomic.Pointer[func(Datum)]
}

func (s *benchStore) Apply(d Datum) bool {
	changed := s.MemStore.Apply(d)
	if changed {
		if fn := s.watch.Load(); fn != nil {
			(*fn)(d)
		}
	}
	return changed
}

func benchPercentile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(int(float64(len(sorted))*p), len(sorted)-1)
	return float64(sorted[i]) / float64(time.Millisecond)
}

// BenchmarkPushLatency: a change written on n1 until it is applied on both
// n2 and n3, with the default sync delay, idle and under a background load
// of about 10 000 changes/s on n1.
func BenchmarkPushLatency(b *testing.B) {
	for _, load := range []int{0, 10000} {
		b.Run(fmt.Sprintf("load=%d/s", load), func(b *testing.B) {
			stores := map[string]*benchStore{}
			c := newCLCluster(b, 256, func(cfg *Config) {
				cfg.SyncDelay = DefaultConfig().SyncDelay
				cfg.VerifyInterval = time.Hour
				cfg.TombstoneTTL = 3 * time.Hour
			})
			c.wrap = func(name string, s *MemStore) Store {
				bs := &benchStore{MemStore: s}
				stores[name] = bs
				return bs
			}
			for _, name := range []string{"n1", "n2", "n3"} {
				c.start(name, true)
			}

			stopLoad := make(chan struct{})
			var loadWG sync.WaitGroup
			var loadWrites atomic.Int64
			if load > 0 {
				loadWG.Go(func() {
					const tick = 10 * time.Millisecond
					perTick := load * int(tick) / int(time.Second)
					t := time.NewTicker(tick)
					defer t.Stop()
					deadline := time.Now().Add(2 * time.Minute) // bounded whatever b.N is
					for i := 0; time.Now().Before(deadline); {
						select {
						case <-stopLoad:
							return
						case <-t.C:
						}
						for range perTick {
							c.write("n1", fmt.Sprintf("load-%d", i%5000), fmt.Sprint(i))
							i++
						}
						loadWrites.Add(int64(perTick))
					}
				})
			}

			lat := make([]time.Duration, 0, b.N)
			applied := make(chan string, 2)
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				key := fmt.Sprintf("probe-%d", i)
				watch := func(d Datum) {
					if d.Key == key {
						applied <- key
					}
				}
				stores["n2"].watch.Store(&watch)
				stores["n3"].watch.Store(&watch)
				t0 := time.Now()
				c.write("n1", key, "v")
				for range 2 {
					select {
					case <-applied:
					case <-time.After(10 * time.Second):
						b.Fatalf("probe %s not applied on both peers within 10 s", key)
					}
				}
				lat = append(lat, time.Since(t0))
			}
			elapsed := time.Since(start)
			close(stopLoad)
			loadWG.Wait()
			slices.Sort(lat)
			b.ReportMetric(benchPercentile(lat, 0.50), "p50-ms")
			b.ReportMetric(benchPercentile(lat, 0.99), "p99-ms")
			if load > 0 {
				b.ReportMetric(float64(loadWrites.Load())/elapsed.Seconds(), "bg-changes/s")
			}
		})
	}
}

// BenchmarkSnapshotLoad: a new node loads 100 000 datums of ~300 bytes from a
// peer over HTTP (engine LoadOnce into an empty MemStore).
func BenchmarkSnapshotLoad(b *testing.B) {
	const datums = 100000
	c := newCLCluster(b, 256, func(cfg *Config) { cfg.VerifyInterval = time.Hour; cfg.TombstoneTTL = 3 * time.Hour })
	src := c.start("src", true)
	value := make([]byte, 260)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	version := src.eng.Clock().Next()
	for i := range datums {
		src.store.Apply(Datum{Key: fmt.Sprintf("public##DEFAULT_GROUP@@svc-%07d", i), Value: value, Version: version + uint64(i)})
	}

	var wire uint64
	for b.Loop() {
		cfg := clConfig(b)
		cfg.VerifyInterval, cfg.TombstoneTTL = time.Hour, 3*time.Hour
		client := NewClient(ClientConfig{Secret: clSecret})
		store := NewMemStore()
		e, err := New(cfg, store, client)
		if err != nil {
			b.Fatal(err)
		}
		e.SetTopology(Topology{Self: "new", Peers: []Peer{{Name: "src", Addr: src.addr}}, Ready: []Peer{{Name: "src", Addr: src.addr}}})
		if err := e.LoadOnce(context.Background()); err != nil {
			b.Fatal(err)
		}
		if store.Len() != datums {
			b.Fatalf("loaded %d datums, want %d", store.Len(), datums)
		}
		wire = client.Stats().Snapshot.BytesReceived
		_ = e.Shutdown(context.Background())
		client.Close()
	}
	b.ReportMetric(float64(wire)/(1<<20), "wire-MiB")
	b.ReportMetric(float64(wire)/datums, "wire-B/datum")
	b.ReportMetric(float64(datums)/(b.Elapsed().Seconds()/float64(b.N)), "datums/s")
}

// BenchmarkVerifyBytes: the verify traffic of one round in a steady 3-node
// cluster of 10 000 keys, and with 1 % of them changed without a push.
func BenchmarkVerifyBytes(b *testing.B) {
	const keys = 10000
	for _, differing := range []int{0, keys / 100} {
		b.Run(fmt.Sprintf("keys=%d/differing=%d", keys, differing), func(b *testing.B) {
			c := clSteady(b, keys)
			var total CallStats
			rounds := 0
			for b.Loop() {
				b.StopTimer()
				c.diverge(keys, differing, rounds)
				b.StartTimer()
				r, _ := c.verifyRound(b)
				total.BytesSent += r.BytesSent
				total.BytesReceived += r.BytesReceived
				total.Calls += r.Calls
				rounds++
			}
			b.StopTimer()
			if differing > 0 {
				c.waitConverged(keys, 10*time.Second)
			}
			b.ReportMetric(float64(total.Bytes())/float64(rounds), "bytes/round")
			b.ReportMetric(float64(total.Calls)/float64(rounds), "calls/round")
		})
	}
}
