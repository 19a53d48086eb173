package daemon

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/distrod/distrod/distro"
)

// TestHostilePeerVersions pins the version overflow: a pushed datum at
// 2^64-1 (even one whose value the registry cannot decode) was recorded by
// the clock before anything checked it, so the next local write got version
// 1 (c.last+1 and curVersion+1 wrapped); a tombstone at 2^64-2 hid later
// registrations forever. Such pushes are refused whole, and the next write
// still gets a version near now.
func TestHostilePeerVersions(t *testing.T) {
	for _, secret := range []string{"", "s3cret"} {
		t.Run("secret="+strconv.Quote(secret), func(t *testing.T) {
			cfg := testConfig(t, "solo")
			cfg.Secret = secret
			n := startNode(t, cfg) // startNode waits until a new cluster is ready, with its ring
			if status, body := send(t, client, http.MethodPost, instanceURL(n, "", "10.0.0.1"), nil); status != 200 {
				t.Fatalf("register = %d %q", status, body)
			}
			held, _ := n.registry.Get(apiKey)
			cc := distro.DefaultClientConfig()
			cc.Secret = secret
			self := n.members.Local() // a member's own identity: the hostile versions are what is refused
			cc.Name, cc.Incarnation = self.Name, self.Incarnation
			c := distro.NewClient(cc)
			defer c.Close()
			peer := distro.Peer{Name: "solo", Addr: n.HTTPAddr()}
			now := uint64(time.Now().UnixNano())
			for _, tc := range []struct {
				name  string
				batch []distro.Datum
			}{
				{"max version", []distro.Datum{{Key: apiKey, Version: math.MaxUint64, Deleted: true}}},
				{"undecodable value at max version", []distro.Datum{{Key: "public##DEFAULT_GROUP@@x", Value: []byte("junk"), Version: math.MaxUint64}}},
				{"tombstone at 2^64-2", []distro.Datum{{Key: apiKey, Version: math.MaxUint64 - 1, Deleted: true}}},
				{"a sane datum beside a hostile one", []distro.Datum{
					{Key: "public##DEFAULT_GROUP@@fine", Version: now, Deleted: true},
					{Key: apiKey, Version: now + uint64(2*time.Hour), Deleted: true},
				}},
			} {
				err := c.Push(context.Background(), peer, tc.batch)
				var se *distro.StatusError
				if !errors.As(err, &se) || se.Status != http.StatusBadRequest || !strings.Contains(se.Body, "ahead") {
					t.Errorf("%s: push = %v, want 400 naming the version ahead of the clock", tc.name, err)
				}
			}
			if d, _ := n.registry.Get(apiKey); d.Version != held.Version || d.Deleted != held.Deleted {
				t.Errorf("hostile pushes changed the stored datum: version %d deleted %t, was %d %t", d.Version, d.Deleted, held.Version, held.Deleted)
			}
			for _, k := range []string{"public##DEFAULT_GROUP@@x", "public##DEFAULT_GROUP@@fine"} {
				if _, ok := n.registry.Get(k); ok {
					t.Errorf("%s was stored from a refused batch", k)
				}
			}
			// An undecodable value within the bound is ignored by the store, so
			// its version must not move the clock either.
			soon := uint64(time.Now().Add(30 * time.Minute).UnixNano())
			if err := c.Push(context.Background(), peer, []distro.Datum{{Key: "public##DEFAULT_GROUP@@y", Value: []byte("junk"), Version: soon}}); err != nil {
				t.Fatalf("push of an undecodable datum within the bound: %v", err)
			}
			if _, ok := n.registry.Get("public##DEFAULT_GROUP@@y"); ok {
				t.Fatalf("an undecodable value was stored")
			}

			if status, body := send(t, client, http.MethodPost, instanceURL(n, "", "10.0.0.2"), nil); status != 200 {
				t.Fatalf("register after the hostile pushes = %d %q", status, body)
			}
			d, _ := n.registry.Get(apiKey)
			if lo, hi := uint64(time.Now().Add(-time.Minute).UnixNano()), uint64(time.Now().Add(time.Minute).UnixNano()); d.Version < lo || d.Version > hi {
				t.Errorf("the next write got version %d, want one near now (%d..%d)", d.Version, lo, hi)
			}
			if got, err := listIPs(n); err != nil || !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
				t.Errorf("list after the hostile pushes = %v (%v), want both instances", got, err)
			}
		})
	}
}
