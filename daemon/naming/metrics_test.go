package naming

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gathered returns metric name{label=value} → value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	r := newTestRegistry(t, newFakeCluster(), func(c *Config) { c.Metrics = reg })
	clk := withClock(r)
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80", "")
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.2&port=80&healthy=false", "")
	mustOK(t, r, "PUT", ns+"/instance/beat?serviceName=svc&ip=10.0.0.1&port=80", "")
	r.expireOnce(clk.Advance(40 * time.Second))
	r.expireOnce(clk.Advance(40 * time.Second))

	m := gathered(t, reg)
	want := map[string]float64{
		"distrod_naming_services":                          1,
		"distrod_naming_instances{health=healthy}":         0,
		"distrod_naming_instances{health=unhealthy}":       0,
		"distrod_naming_beats_total":                       1,
		"distrod_naming_expirations_total{kind=removed}":   2,
		"distrod_naming_expirations_total{kind=unhealthy}": 0,
	}
	for k, v := range want {
		if got, ok := m[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// A second registry on the same registerer is refused, not a panic.
	if _, err := New(r.cfg, newFakeCluster()); err == nil {
		t.Fatalf("duplicate metrics registration accepted")
	}
}
