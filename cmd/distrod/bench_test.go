package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildDistrod builds this command into a temporary directory: the bench
// spawns `distrod agent` processes, and the test binary is not one.
func buildDistrod(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH: cannot build the distrod binary the bench spawns")
	}
	exe := filepath.Join(t.TempDir(), "distrod")
	out, err := exec.Command(goBin, "build", "-o", exe, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// tlog writes progress lines to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBenchSpawnedCluster(t *testing.T) {
	exe := buildDistrod(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	client := newBenchClient(5*time.Second, 64)
	defer client.Close()
	cl, err := spawnCluster(ctx, client, exe, 3,
		[]string{"--beat-timeout", "10m", "--delete-timeout", "20m", "--verify-interval", "300ms"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.stop()

	cfg := benchConfig{
		Duration: 2 * time.Second, MaxRequests: 2000, Concurrency: 8, Services: 50, InstancesPerService: 10,
		SampleEvery: 10, MaxSamples: 40, BeatInterval: 300 * time.Millisecond, ListDuration: 500 * time.Millisecond,
		VisibleTimeout: 10 * time.Second, SettleTimeout: 15 * time.Second, Prefix: "benchtest", Progress: tlog{t},
	}
	rep, err := runBenchmark(ctx, client, cl, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	rep.printTable(&table)
	t.Log(table.String())

	if rep.Register.OK == 0 || rep.Register.PerSecond <= 0 || rep.Register.Latency.N == 0 {
		t.Errorf("registrations: %+v", rep.Register)
	}
	if rep.Register.Requests > int64(cfg.MaxRequests) {
		t.Errorf("%d registrations, more than --max-requests %d", rep.Register.Requests, cfg.MaxRequests)
	}
	if v := rep.Visibility; v.Sampled == 0 || v.Visible != v.Sampled || v.Latency.N != v.Sampled {
		t.Errorf("visibility: want every sampled registration visible on every node: %+v", v)
	}
	if rep.Beats.OK == 0 {
		t.Errorf("no beats: %+v", rep.Beats)
	}
	if !rep.Converge.Converged {
		t.Errorf("not converged: %+v", rep.Converge)
	}
	for i, n := range rep.Converge.Instances {
		if int64(n) != rep.Register.OK+10 { // + the list service
			t.Errorf("node %d holds %d instances, want %d", i, n, rep.Register.OK+10)
		}
	}
	if rep.List.OK == 0 || rep.List.PerSecond <= 0 || rep.List.Hosts != 10 {
		t.Errorf("list: %+v", rep.List)
	}
	if rep.Verify.PerPeerPerRound <= 0 || len(rep.Verify.Nodes) != 3 {
		t.Errorf("verify: %+v", rep.Verify)
	}
	if j := rep.Join; j == nil || j.Error != "" || j.ReadySeconds <= 0 || int64(j.Instances) != rep.Register.OK+10 {
		t.Errorf("join: %+v", j)
	}
	if len(rep.Memory) != 3 || rep.Memory[0].RSSAfter == 0 {
		t.Errorf("memory: %+v", rep.Memory)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil || back["register"] == nil || back["visibility"] == nil {
		t.Errorf("JSON report %s: %v", b, err)
	}
	if !strings.Contains(table.String(), "register → visible on all nodes") {
		t.Errorf("table lacks the visibility row:\n%s", table.String())
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{nil, "--http"},
		{[]string{"--spawn", "3", "--http", "127.0.0.1:1"}, "--spawn"},
		{[]string{"--spawn", "99"}, "--spawn"},
		{[]string{"--spawn", "1", "--rate", "-1"}, "--rate"},
		{[]string{"--spawn", "1", "--concurrency", "0"}, "--concurrency"},
		{[]string{"--spawn", "1", "--duration", "0s"}, "--duration"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(append([]string{"distrod", "bench"}, tc.args...), &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("bench %v: exit %d, stderr %q: want %d naming %s", tc.args, code, stderr.String(), exitUsage, tc.flag)
		}
	}
}

func TestChecksumRequestBytes(t *testing.T) {
	// header 3 + source (1+2) + ring version 8 + count 1 + partitions 5 (1+8) and 200 (2+8) + two empty lists.
	if got, want := checksumRequestBytes("n1", []int{5, 200}), 3+3+8+1+9+10+2; got != want {
		t.Errorf("checksumRequestBytes = %d, want %d", got, want)
	}
	m := promSamples([]byte("# HELP x\ndistro_verify_rounds_total 3\ndistro_verify_bytes_total{dir=\"sent\"} 10\nfoo_bytes_total 4\n"))
	if got, ok := verifyByteMetric(m); !ok || got != 10 {
		t.Errorf("verifyByteMetric = %v, %v; want 10, true", got, ok)
	}
}
