package naming

import (
	"strings"
	"testing"
	"time"
)

// TestPreservedMetadataKeysAreNacos checks that an instance's timings come
// from Nacos's PreservedMetadataKeys spelling (preserved.heart.beat.interval,
// preserved.heart.beat.timeout, preserved.ip.delete.timeout), which clients
// such as nacos-sdk-go v1 and the Java client send: the beat answer asks for
// the instance's interval, and expiry uses its timeouts.
func TestPreservedMetadataKeysAreNacos(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	meta := `{"preserved.heart.beat.interval":"1000","preserved.heart.beat.timeout":"3000","preserved.ip.delete.timeout":"6000"}`
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata="+meta, "")

	body := `serviceName=DEFAULT_GROUP@@svc&beat={"ip":"10.0.0.1","port":80,"serviceName":"DEFAULT_GROUP@@svc","metadata":` + meta + `}`
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", body)); got != `{"clientBeatInterval":1000,"code":10200,"lightBeatEnabled":true}` {
		t.Fatalf("beat answer: %s, want the instance's clientBeatInterval 1000", got)
	}
	list := string(mustOK(t, r, "GET", ns+"/instance/list?serviceName=svc", ""))
	for _, f := range []string{`"instanceHeartBeatInterval":1000`, `"instanceHeartBeatTimeOut":3000`, `"ipDeleteTimeout":6000`} {
		if !strings.Contains(list, f) {
			t.Errorf("list lacks %s: %s", f, list)
		}
	}

	r.expireOnce(clk.Advance(3500 * time.Millisecond))
	if live, healthy := healthOf(t, r, "10.0.0.1:80:DEFAULT"); !live || healthy {
		t.Fatalf("3.5 s without a beat (timeout 3 s): live %v healthy %v, want live and unhealthy", live, healthy)
	}
	r.expireOnce(clk.Advance(3 * time.Second))
	if live, _ := healthOf(t, r, "10.0.0.1:80:DEFAULT"); live {
		t.Fatalf("6.5 s without a beat (delete timeout 6 s): still live")
	}
}

// TestPreservedTimingsBeyondDurationDoNotWrap pins an overflow: a timeout of
// math.MaxInt64 ms became -1 ms as a time.Duration, so the first expiry round
// marked the instance unhealthy and removed it, and the beat answer asked for
// a negative interval.
func TestPreservedTimingsBeyondDurationDoNotWrap(t *testing.T) {
	r := newTestRegistry(t, newFakeCluster(), nil)
	clk := withClock(r)
	const huge = "9223372036854775807"
	meta := `{"preserved.heart.beat.interval":"` + huge + `","preserved.heart.beat.timeout":"` + huge +
		`","preserved.ip.delete.timeout":"` + huge + `"}`
	mustOK(t, r, "POST", ns+"/instance?serviceName=svc&ip=10.0.0.1&port=80&metadata="+meta, "")

	body := `serviceName=DEFAULT_GROUP@@svc&beat={"ip":"10.0.0.1","port":80,"serviceName":"DEFAULT_GROUP@@svc","metadata":` + meta + `}`
	if got := string(mustOK(t, r, "PUT", ns+"/instance/beat", body)); strings.Contains(got, `"clientBeatInterval":-`) {
		t.Errorf("beat answer asks for a negative interval: %s", got)
	}
	r.expireOnce(clk.Advance(time.Minute))
	if live, healthy := healthOf(t, r, "10.0.0.1:80:DEFAULT"); !live || !healthy {
		t.Fatalf("a minute without a beat under 'never' timeouts: live %v healthy %v, want live and healthy", live, healthy)
	}
}
