package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/distrod/distrod/daemon"
	"github.com/distrod/distrod/distro"
	"github.com/distrod/distrod/membership"
)

// view builds a member list from "name" (alive) or "name:state" entries; each
// member's HTTP address is its name, unless given as "name@addr".
func view(specs ...string) []membership.Member {
	var out []membership.Member
	for _, spec := range specs {
		m := membership.Member{State: membership.StateAlive}
		spec, m.HTTPAddr, _ = strings.Cut(spec, "@")
		name, state, ok := strings.Cut(spec, ":")
		m.Name = name
		if ok {
			m.State = membership.State(state)
		}
		if m.HTTPAddr == "" {
			m.HTTPAddr = name
		}
		out = append(out, m)
	}
	return out
}

// answer is a member that answered: its distro status and its member list.
func answer(name string, ready bool, ring, digest string, members []membership.Member) nodeAnswer {
	return nodeAnswer{name: name, addr: name, members: members, status: daemon.DistroStatusResponse{
		Status: distro.Status{Node: name, Ready: ready, RingVersion: ring, Digest: digest},
	}}
}

func TestStatusVerdict(t *testing.T) {
	all3 := view("n1", "n2", "n3")
	refused := errors.New("connection refused")
	misnamed := answer("n2", true, "r1", "d1", view("n1", "n2"))
	misnamed.status.Node = "n3"
	for _, tc := range []struct {
		name       string
		first      []membership.Member // the --http node's list; nodes[0]'s when nil
		nodes      []nodeAnswer
		diffs      []string // nil: converged
		notCounted []string
	}{
		{name: "one ring, one digest, one view", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", all3), answer("n2", true, "r1", "d1", all3), answer("n3", true, "r1", "d1", all3),
		}},
		{name: "two ring versions and a third member missing", nodes: []nodeAnswer{
			answer("n1", true, "r1", "0", all3), answer("n2", true, "r2", "0", all3),
			{name: "n3", addr: "127.0.0.1:1", err: refused},
		}, diffs: []string{"unreachable: n3 (127.0.0.1:1: connection refused)", "ring: n1 has r1, n2 has r2"}},
		{name: "a loading node", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", all3), answer("n2", true, "r1", "d1", all3), answer("n3", false, "r1", "", all3),
		}, diffs: []string{"loading: n3"}},
		{name: "digests differ", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", all3), answer("n2", true, "r1", "d2", all3), answer("n3", true, "r1", "d1", all3),
		}, diffs: []string{"digest: {n1,n3} have d1, n2 has d2"}},
		{name: "member lists differ", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", all3), answer("n2", true, "r1", "d1", view("n1", "n2")), answer("n3", true, "r1", "d1", all3),
		}, diffs: []string{"members: {n1,n3} see {n1,n2,n3}, n2 sees {n1,n2}"}},
		{name: "dead and left members are listed but do not count", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2", "n3:dead", "n4:left")),
			answer("n2", true, "r1", "d1", view("n1", "n2", "n3:dead")),
		}, notCounted: []string{"n3 (dead)", "n4 (left)"}},
		{name: "alive for one node, dead for another", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2", "n3")),
			answer("n2", true, "r1", "d1", view("n1", "n2", "n3:dead")),
			answer("n3", true, "r1", "d1", view("n1", "n2", "n3")),
		}, diffs: []string{"members: {n1,n3} see {n1,n2,n3}, n2 sees {n1,n2}"}},
		{name: "suspect counts as alive", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2:suspect")), answer("n2", true, "r1", "d1", view("n1", "n2")),
		}},
		{name: "a member answers under another name", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2")), misnamed,
		}, diffs: []string{`name: n2 at n2 answers as "n3"`}},
		{name: "a ready node without a ring", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2")), answer("n2", true, "", "d1", view("n1", "n2")),
		}, diffs: []string{"no ring: n2"}},
		{name: "one member at two addresses", nodes: []nodeAnswer{
			answer("n1", true, "r1", "d1", view("n1", "n2@10.0.0.2:8848")), answer("n2", true, "r1", "d1", view("n1", "n2@10.0.0.9:8848")),
		}, diffs: []string{"address of n2: n1 sees 10.0.0.2:8848, n2 sees 10.0.0.9:8848"}},
		{name: "every node loading", nodes: []nodeAnswer{
			answer("n1", false, "", "0", view("n1", "n2")), answer("n2", false, "", "0", view("n1", "n2")),
		}, diffs: []string{"loading: n1, n2", "no ready node"}},
		{name: "no member answered", first: view("n1:dead"), diffs: []string{"no ready node"}, notCounted: []string{"n1 (dead)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := survey{first: tc.first, nodes: tc.nodes}
			if s.first == nil && len(s.nodes) > 0 {
				s.first = s.nodes[0].members
			}
			v := judge(s)
			if !reflect.DeepEqual(v.diffs, tc.diffs) {
				t.Errorf("differences %q, want %q", v.diffs, tc.diffs)
			}
			if !reflect.DeepEqual(v.notCounted, tc.notCounted) {
				t.Errorf("not counted %q, want %q", v.notCounted, tc.notCounted)
			}
			wantPrefix, wantCode := "converged (", 0
			if tc.diffs != nil {
				wantPrefix, wantCode = "diverged (", exitDiverged
			}
			if got := v.String(); !strings.HasPrefix(got, wantPrefix) {
				t.Errorf("verdict %q, want it to start with %q", got, wantPrefix)
			}
			if v.exitCode() != wantCode {
				t.Errorf("exit code %d, want %d", v.exitCode(), wantCode)
			}
		})
	}
}

// fakeNode serves a member list and a distro status on 127.0.0.1, in the
// JSON shapes of daemon's ops endpoints.
type fakeNode struct {
	srv     *httptest.Server
	mu      sync.Mutex
	members daemon.MembersResponse
	status  daemon.DistroStatusResponse
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := &fakeNode{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(f.serve)}}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeNode) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeNode) set(members []membership.Member, st distro.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.members = daemon.MembersResponse{Members: members}
	f.status = daemon.DistroStatusResponse{Status: st}
}

func (f *fakeNode) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body any
	switch r.URL.Path {
	case "/v1/cluster/members":
		body = f.members
	case "/v1/distro/status":
		body = f.status
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestStatusCommandOverHTTP runs `distrod status` against fake members: the
// issue's cluster (two ring versions, a third member that only n2 lists and
// that does not answer, a dead fourth), then the same cluster agreeing.
func TestStatusCommandOverHTTP(t *testing.T) {
	n1, n2 := newFakeNode(t), newFakeNode(t)
	n3 := closedAddr(t)
	m := func(name, addr string, state membership.State) membership.Member {
		return membership.Member{Name: name, HTTPAddr: addr, State: state, Ready: true}
	}
	m1, m2, m3, m4 := m("n1", n1.addr(), "alive"), m("n2", n2.addr(), "alive"), m("n3", n3, "alive"), m("n4", closedAddr(t), "dead")
	n1.set([]membership.Member{m1, m2, m4}, distro.Status{Node: "n1", Ready: true, RingVersion: "r1", Digest: "0"})
	n2.set([]membership.Member{m1, m2, m3, m4}, distro.Status{Node: "n2", Ready: true, RingVersion: "r2", Digest: "0"})

	status := func() (int, string) {
		var stdout, stderr bytes.Buffer
		code := run([]string{"distrod", "status", "--http", n1.addr(), "--timeout", "5s"}, &stdout, &stderr)
		return code, stdout.String()
	}
	code, out := status()
	if code != exitDiverged {
		t.Errorf("exit %d, want %d; output:\n%s", code, exitDiverged, out)
	}
	for _, want := range []string{
		"diverged (unreachable: n3 (" + n3 + ": ",
		"ring: n1 has r1, n2 has r2",
		"members: n1 sees {n1,n2}, n2 sees {n1,n2,n3}",
		"not counting n4 (dead)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, row := range []string{"n1", "n2", "n3", "n4"} {
		if !strings.Contains(out, "\n"+row+" ") {
			t.Errorf("output lacks a row for %s:\n%s", row, out)
		}
	}

	n1.set([]membership.Member{m1, m2, m4}, distro.Status{Node: "n1", Ready: true, RingVersion: "r1", Digest: "d7"})
	n2.set([]membership.Member{m1, m2, m4}, distro.Status{Node: "n2", Ready: true, RingVersion: "r1", Digest: "d7"})
	code, out = status()
	if code != 0 || !strings.Contains(out, "converged (2 ready nodes, ring r1, digest d7), not counting n4 (dead)") {
		t.Errorf("exit %d, want 0 and converged; output:\n%s", code, out)
	}
}

func TestStatusBadFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"--timeout", "0s"}, "--timeout"},
		{[]string{"--timeout", "-1s"}, "--timeout"},
		{[]string{"--http", ""}, "--http"},
		{[]string{"extra"}, "extra"},
	} {
		var stdout, stderr bytes.Buffer
		// --http names a closed port first, so a check that does not refuse the
		// flag never reaches a node someone else runs on the default port.
		args := append([]string{"distrod", "status", "--http", closedAddr(t)}, tc.args...)
		code := run(args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("status %q: exit %d, stderr %q; want %d naming %s", tc.args, code, stderr.String(), exitUsage, tc.flag)
		}
	}
}
