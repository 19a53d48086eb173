package daemon

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/internal/testutil"
)

// TestPeerRequestsOfAnotherProcessUnderAMemberNameAreRefused pins issue 8
// item 5 in the daemon: a node accepts pushes and checksums sent under a
// member's name only from the process it knows by that name (its
// incarnation from gossip), so a second process started with that name can
// neither write nor make verify remove keys; the member itself passes.
func TestPeerRequestsOfAnotherProcessUnderAMemberNameAreRefused(t *testing.T) {
	nodes := startCluster(t, 2)
	n1, n2 := nodes[0], nodes[1]
	testutil.Eventually(t, 20*time.Second, "both nodes ready and agreed", func() error {
		_, err := agree(nodes, "n1", "n2")
		return err
	})
	to := distro.Peer{Name: "n1", Addr: n1.HTTPAddr()}
	ctx := context.Background()
	sum := distro.ChecksumRequest{Source: "n2", RingVersion: 1}

	impostor := distro.NewClient(distro.ClientConfig{Name: "n2", Incarnation: "0000000000000000"})
	t.Cleanup(impostor.Close)
	var se *distro.StatusError
	err := impostor.Push(ctx, to, []distro.Datum{{Key: "public##DEFAULT_GROUP@@svc", Value: []byte("{}"), Version: 1}})
	if !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Errorf("push from another process named n2: %v, want 409", err)
	}
	if _, err := impostor.Checksum(ctx, to, sum); !errors.As(err, &se) || se.Status != http.StatusConflict {
		t.Errorf("checksum from another process named n2: %v, want 409", err)
	}
	var st DistroStatusResponse
	if err := getJSON(n1, "/v1/distro/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Keys != 0 {
		t.Errorf("n1 holds %d keys after refused pushes, want 0", st.Keys)
	}

	member := distro.NewClient(distro.ClientConfig{Name: "n2", Incarnation: n2.members.Local().Incarnation})
	t.Cleanup(member.Close)
	if _, err := member.Checksum(ctx, to, sum); err != nil {
		t.Errorf("checksum from n2's own process: %v", err)
	}
}
