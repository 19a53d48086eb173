package naming

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSplitQuery(t *testing.T) {
	cases := []struct {
		in   string
		want map[string]string
	}{
		{"a=1&b=2", map[string]string{"a": "1", "b": "2"}},
		{"a=1&a=2", map[string]string{"a": "1"}}, // first wins, as getParameter
		{"s=G%40%40svc&m=%7B%22k%22%3A%22v+w%22%7D", map[string]string{"s": "G@@svc", "m": `{"k":"v w"}`}},
		{"s=G@@svc&m={\"k\":\"50%\"}", map[string]string{"s": "G@@svc", "m": `{"k":"50%"}`}},
		{`m={"u":"http://h/?a=b&c=d"}&ip=1.2.3.4`, map[string]string{"m": `{"u":"http://h/?a=b&c=d"}`, "ip": "1.2.3.4"}},
		{`beat={"ip":"1.2.3.4","metadata":{"x":"}&y=1"}}&serviceName=a`, map[string]string{"beat": `{"ip":"1.2.3.4","metadata":{"x":"}&y=1"}}`, "serviceName": "a"}},
		{"m=a&b c&ip=1", map[string]string{"m": "a&b c", "ip": "1"}}, // '&' not followed by a name stays in the value
		{"&&a=1&flag&b=", map[string]string{"a": "1", "flag": "", "b": ""}},
		{"", map[string]string{}},
	}
	for _, c := range cases {
		got := map[string]string{}
		splitQuery(c.in, got)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitQuery(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func FuzzSplitQuery(f *testing.F) {
	f.Add(`a=1&m={"k":"v&w=1"}&b=%zz`)
	f.Fuzz(func(t *testing.T, s string) {
		m := map[string]string{}
		splitQuery(s, m) // must not panic
	})
}

// TestSplitQueryLinearTime pins a hang: every pair of a body of "a={&" (or
// of "a&" ending in '=') rescanned the rest of the body, so a 32 MiB form
// kept a core busy for hours. Linear splitting takes milliseconds here; the
// quadratic one took minutes.
func TestSplitQueryLinearTime(t *testing.T) {
	const n = 256 << 10
	for _, c := range []struct {
		name, in string
		params   int
	}{
		{"unbalanced JSON values", strings.Repeat("a={&", n), 1}, // a
		{"far '='", strings.Repeat("a&", 2*n) + "=", 2},          // a, "a&"
	} {
		start := time.Now()
		m := map[string]string{}
		splitQuery(c.in, m)
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: splitQuery of %d bytes took %v", c.name, len(c.in), took)
		}
		if len(m) != c.params {
			t.Errorf("%s: got %d parameters, want %d", c.name, len(m), c.params)
		}
	}
	// A malformed JSON value still leaves a later well-formed pair intact.
	m := map[string]string{}
	splitQuery(`m={"k":1&ip=1.2.3.4&beat={"x":"a&b"}`, m)
	if m["ip"] != "1.2.3.4" || m["m"] != `{"k":1` {
		t.Errorf("after an unbalanced value: %v", m)
	}
}
