package distro

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig invalid: %v", err)
	}
	cases := map[string]func(*Config){
		"VerifyInterval": func(c *Config) { c.VerifyInterval = 0 },
		"TombstoneTTL":   func(c *Config) { c.TombstoneTTL = 2 * c.VerifyInterval },
		"MaxBatch":       func(c *Config) { c.MaxBatch = 0 },
		"SyncDelay":      func(c *Config) { c.SyncDelay = -time.Second },
		"SyncRetryMax":   func(c *Config) { c.SyncRetryMax = c.SyncRetryDelay / 2 },
		"BootstrapWait":  func(c *Config) { c.BootstrapWait = 0 },
		"RequestTimeout": func(c *Config) { c.RequestTimeout = -1 },
	}
	for want, mod := range cases {
		cfg := DefaultConfig()
		mod(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: Validate() = %v, want an error naming it", want, err)
		}
		if _, err := New(cfg, NewMemStore(), &fakeTransport{net: newFakeNet()}); err == nil {
			t.Errorf("%s: New accepted an invalid config", want)
		}
	}
	cfg := DefaultConfig()
	cfg.SyncDelay = 0 // pushing at once is allowed
	if err := cfg.Validate(); err != nil {
		t.Errorf("SyncDelay 0 rejected: %v", err)
	}
}

func TestStatusDigestShowsConvergence(t *testing.T) {
	c := newCluster(t, 16, []string{"a", "b"}, nil)
	c.write("a", "k1", "v1")
	c.write("a", "k2", "v2")
	c.remove("a", "k2")
	c.engines["a"].SyncNow()
	c.engines["b"].SyncNow()
	sa, sb := c.engines["a"].Status(), c.engines["b"].Status()
	if sa.Digest != sb.Digest || sa.Keys != 1 || sa.Tombstones != 1 {
		t.Fatalf("a %+v, b %+v: want equal digests, 1 key, 1 tombstone", sa, sb)
	}
	if sa.Node != "a" || !sa.Ready || sa.RingVersion == "" {
		t.Fatalf("status %+v lacks node, readiness or ring version", sa)
	}
	// A tombstone b no longer has does not change the digest: it covers live datums only.
	c.stores["b"].Sweep(^uint64(0))
	if got := c.engines["b"].Status().Digest; got != sa.Digest {
		t.Fatalf("digest changed by sweeping a tombstone: %s vs %s", got, sa.Digest)
	}
	c.stores["b"].Apply(Datum{Key: "k1", Value: []byte("other"), Version: ^uint64(0)})
	if got := c.engines["b"].Status().Digest; got == sa.Digest {
		t.Fatal("digest did not change when a value diverged")
	}
}

func TestMetricsCountPushesAndVerify(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := newCluster(t, 16, []string{"a", "b"}, func(name string, cfg *Config) {
		if name == "a" {
			cfg.Metrics = reg
		}
	})
	c.write("a", "k", "v")
	if err := c.engines["a"].VerifyOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.engines["a"].SyncNow()
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				got[mf.GetName()] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[mf.GetName()] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for name, min := range map[string]float64{
		"distro_push_batches_total": 1, "distro_push_keys_total": 1, "distro_push_duration_seconds": 1,
		"distro_verify_rounds_total": 1,
	} {
		if got[name] < min {
			t.Errorf("%s = %v, want at least %v", name, got[name], min)
		}
	}
	if _, ok := got["distro_dirty_keys"]; !ok {
		t.Error("distro_dirty_keys not exported")
	}

	// A second engine on the same registry is refused, not silently half-registered.
	cfg := testConfig(t)
	cfg.Metrics = reg
	if _, err := New(cfg, NewMemStore(), &fakeTransport{net: c.net}); err == nil {
		t.Fatal("registering the same metrics twice succeeded")
	}
}

func TestShutdownIsIdempotentAndStopsEverything(t *testing.T) {
	c := newCluster(t, 16, []string{"b"}, nil)
	release := make(chan struct{})
	defer close(release)
	c.net.setFault("snapshot", "b", fault{block: release}) // a's load hangs on b
	c.net.setFault("push", "b", fault{block: release})     // and so does its push
	a := c.add("a", func(cfg *Config) {
		cfg.Standalone = false
		cfg.SyncDelay = 0
	})
	a.SetTopology(c.topo("a", []string{"a", "b"}, []string{"a", "b"}))
	a.Start()
	c.write("a", "k", "v")
	testutil.Eventually(t, 5*time.Second, "load did not start", func() error { return c.net.callsAtLeast("snapshot", "b", 1) })
	testutil.Eventually(t, 5*time.Second, "push did not start", func() error { return c.net.callsAtLeast("push", "b", 1) })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with hanging peers: %v", err)
	}
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	a.Changed("k") // harmless after Shutdown
	a.SyncNow()
	a.Start()
	a.SetTopology(c.topo("a", []string{"a", "b"}, []string{"a", "b"}))
}
