package membership

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/distrod/distrod/internal/testutil"
)

// BenchmarkConvergence measures, per profile, how long a 3-node join takes to
// be seen by every node and how long the survivors take to declare a crashed
// node dead. It reports figures and asserts no timings. Run with:
//
//	go test -run '^$' -bench Convergence -benchtime 1x ./membership/
func BenchmarkConvergence(b *testing.B) {
	profiles := []struct {
		name   string
		mutate func(*Config)
	}{
		{"lan", func(c *Config) { c.Profile = ProfileLAN; clearOverrides(c) }},
		{"local", func(c *Config) { c.Profile = ProfileLocal; clearOverrides(c) }},
		{"local-test-overrides", func(*Config) {}},
	}
	for _, p := range profiles {
		b.Run(p.name, func(b *testing.B) {
			var join, detect time.Duration
			for range b.N {
				j, d := measureConvergence(b, p.mutate)
				join += j
				detect += d
			}
			b.ReportMetric(float64(join.Milliseconds())/float64(b.N), "join-ms")
			b.ReportMetric(float64(detect.Milliseconds())/float64(b.N), "detect-ms")
		})
	}
}

func clearOverrides(c *Config) {
	c.ProbeInterval, c.ProbeTimeout, c.GossipInterval, c.SuspicionMult, c.PushPullInterval = 0, 0, 0, 0, 0
}

func measureConvergence(b *testing.B, mutate func(*Config)) (join, detect time.Duration) {
	b.Helper()
	var nodes []*Membership
	defer func() {
		for _, n := range nodes {
			_ = n.Shutdown(context.Background())
		}
	}()
	for _, name := range []string{"a", "b", "c"} {
		cfg := testConfig(b, name)
		cfg.Logger = discardLogger()
		if len(nodes) > 0 {
			cfg.Join = []string{nodes[0].GossipAddr()}
		}
		mutate(&cfg)
		m, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, m)
	}
	nodes[0].Start()
	start := time.Now()
	nodes[1].Start()
	nodes[2].Start()
	testutil.Eventually(b, time.Minute, "3 nodes alive everywhere", func() error { return allAlive(nodes, "a", "b", "c") })
	join = time.Since(start)

	start = time.Now()
	nodes[2].crash()
	testutil.Eventually(b, time.Minute, "crash detected by a and b", func() error {
		return errors.Join(hasState(nodes[0], "c", StateDead), hasState(nodes[1], "c", StateDead))
	})
	detect = time.Since(start)
	b.Logf("join seen everywhere after %s, crash detected after %s", join, detect)
	return join, detect
}
