package e2e

import (
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestSamplesReadTheExposition pins what Metric sums: the series and label
// sets as the text exposition writes them, histogram parts included.
func TestSamplesReadTheExposition(t *testing.T) {
	const text = `# TYPE c_total counter
c_total{kind="removed",node="a"} 2
c_total{kind="unhealthy",node="a"} 3
c_total{kind="removed",node="b"} 4
# TYPE g gauge
g 1.5
# TYPE h_seconds histogram
h_seconds_bucket{le="0.1"} 1
h_seconds_bucket{le="+Inf"} 3
h_seconds_sum 0.75
h_seconds_count 3
`
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	ss := samples(families)
	for _, tc := range []struct {
		name, labels string
		sum          float64
		found        bool
	}{
		{"c_total", "", 9, true},
		{"c_total", `kind="removed"`, 6, true},
		{"c_total", `node="a"`, 5, true},
		{"c_total", `kind="expired"`, 0, false},
		{"c", "", 0, false}, // a prefix is not the series
		{"g", "", 1.5, true},
		{"h_seconds_sum", "", 0.75, true},
		{"h_seconds_count", "", 3, true},
		{"h_seconds_bucket", `le="+Inf"`, 3, true},
		{"h_seconds", "", 0, false},
	} {
		if sum, found := ss.Sum(tc.name, tc.labels); sum != tc.sum || found != tc.found {
			t.Errorf("Sum(%s, %q) = %v, %v; want %v, %v", tc.name, tc.labels, sum, found, tc.sum, tc.found)
		}
	}
}
