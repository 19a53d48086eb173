package naming

import (
	"reflect"
	"testing"
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
