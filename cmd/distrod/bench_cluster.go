package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/distrod/distrod/daemon"
	"github.com/distrod/distrod/membership"
)

// benchNode is one node the bench talks to.
type benchNode struct {
	Name string
	Addr string // HTTP host:port
	// proc is set for nodes the bench spawned.
	proc *agentProc
}

// benchCluster is what the bench runs against: the nodes, and for a spawned
// cluster a way to start one more.
type benchCluster struct {
	nodes []benchNode
	// spawn starts one more node joined to the cluster; nil unless --spawn.
	spawn func(ctx context.Context, name string) (*agentProc, error)
	// stop stops everything the bench started.
	stop func()
}

// discoverCluster asks the given nodes for the members and returns every alive,
// ready member; the given addresses come first, in order.
func discoverCluster(c *benchClient, addrs []string) ([]benchNode, error) {
	seen := map[string]bool{}
	var nodes []benchNode
	var errs []error
	for _, a := range addrs {
		body, err := c.getOK(a, "/v1/cluster/members")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var mr daemon.MembersResponse
		if err := json.Unmarshal(body, &mr); err != nil {
			errs = append(errs, fmt.Errorf("decode %s/v1/cluster/members: %w", a, err))
			continue
		}
		for _, m := range mr.Members {
			if m.Self && !seen[a] {
				seen[a] = true
				nodes = append(nodes, benchNode{Name: m.Name, Addr: a})
			}
		}
		for _, m := range mr.Members {
			if m.Self || m.State != membership.StateAlive || !m.Ready || m.HTTPAddr == "" || seen[m.HTTPAddr] {
				continue
			}
			seen[m.HTTPAddr] = true
			nodes = append(nodes, benchNode{Name: m.Name, Addr: m.HTTPAddr})
		}
	}
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no reachable node: %w", errors.Join(errs...))
	}
	return nodes, nil
}

// agentProc is one spawned `distrod agent` child.
type agentProc struct {
	Name       string
	HTTPAddr   string
	GossipAddr string
	Started    time.Time // just before exec

	cmd  *exec.Cmd
	done chan struct{} // closed when the process exited
	mu   sync.Mutex
	tail []string // last lines of its log, for error messages
}

// PID is the child's process id.
func (p *agentProc) PID() int { return p.cmd.Process.Pid }

// logTail is the end of the child's log.
func (p *agentProc) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Stop sends SIGTERM and waits up to timeout, then kills the process.
func (p *agentProc) Stop(timeout time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startAgent execs `exe agent` on 127.0.0.1 with ports picked by the kernel
// (port 0) and reads the bound addresses back from the agent's JSON log line
// "distrod agent running".
func startAgent(ctx context.Context, exe, name string, join string, extra []string) (*agentProc, error) {
	args := []string{"agent", "--name", name, "--gossip-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--profile", "local", "--log-format", "json", "--log-level", "info"}
	if join != "" {
		args = append(args, "--join", join)
	}
	args = append(args, extra...)
	cmd := exec.Command(exe, args...)
	cmd.Env = withoutDistrodEnv(os.Environ())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &agentProc{Name: name, cmd: cmd, done: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	addrs := make(chan [2]string, 1)
	go p.readLog(stderr, addrs)
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	select {
	case a := <-addrs:
		p.HTTPAddr, p.GossipAddr = a[0], a[1]
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited during start: %s", name, p.logTail())
	case <-ctx.Done():
		p.Stop(5 * time.Second)
		return nil, ctx.Err()
	case <-timer.C:
		p.Stop(5 * time.Second)
		return nil, fmt.Errorf("%s did not report its addresses within 15s: %s", name, p.logTail())
	}
}

// withoutDistrodEnv drops DISTROD_* variables so the bench's own environment
// does not configure its children.
func withoutDistrodEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "DISTROD_") {
			out = append(out, kv)
		}
	}
	return out
}

// readLog drains the child's log, keeps its tail and reports the addresses once.
func (p *agentProc) readLog(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		if len(p.tail) == 20 {
			p.tail = p.tail[1:]
		}
		p.tail = append(p.tail, line)
		p.mu.Unlock()
		if sent || !strings.Contains(line, "distrod agent running") {
			continue
		}
		var rec struct{ HTTP, Gossip string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.HTTP != "" && rec.Gossip != "" {
			addrs <- [2]string{rec.HTTP, rec.Gossip}
			sent = true
		}
	}
	_, _ = io.Copy(io.Discard, r)
}

// spawnCluster starts n agents: node 1 standalone, the others joined to it,
// and waits until every /health answers 200.
func spawnCluster(ctx context.Context, c *benchClient, exe string, n int, extra []string, timeout time.Duration) (*benchCluster, error) {
	var procs []*agentProc
	var mu sync.Mutex
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.Stop(10 * time.Second) }()
		}
		wg.Wait()
		procs = nil
	}
	track := func(p *agentProc) {
		mu.Lock()
		procs = append(procs, p)
		mu.Unlock()
	}
	first, err := startAgent(ctx, exe, "bench1", "", extra)
	if err != nil {
		return nil, err
	}
	track(first)
	for i := 2; i <= n; i++ {
		p, err := startAgent(ctx, exe, "bench"+strconv.Itoa(i), first.GossipAddr, extra)
		if err != nil {
			stop()
			return nil, err
		}
		track(p)
	}
	cl := &benchCluster{stop: stop}
	cl.spawn = func(ctx context.Context, name string) (*agentProc, error) {
		p, err := startAgent(ctx, exe, name, first.GossipAddr, extra)
		if err == nil {
			track(p)
		}
		return p, err
	}
	for _, p := range procs {
		cl.nodes = append(cl.nodes, benchNode{Name: p.Name, Addr: p.HTTPAddr, proc: p})
	}
	if err := waitClusterReady(ctx, c, cl.nodes, timeout); err != nil {
		stop()
		return nil, err
	}
	return cl, nil
}

// waitClusterReady polls until every node's /health is 200 and each sees all
// the others as ready members.
func waitClusterReady(ctx context.Context, c *benchClient, nodes []benchNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var notReady []string
		for _, n := range nodes {
			if !clusterReadyAt(c, n.Addr, len(nodes)) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes not ready after %s: %s", timeout, strings.Join(notReady, ", "))
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func clusterReadyAt(c *benchClient, addr string, want int) bool {
	if status, _, err := c.do("GET", addr, "/health", false); err != nil || status != 200 {
		return false
	}
	body, err := c.getOK(addr, "/v1/cluster/members")
	if err != nil {
		return false
	}
	var mr daemon.MembersResponse
	if json.Unmarshal(body, &mr) != nil {
		return false
	}
	ready := 0
	for _, m := range mr.Members {
		if m.State == membership.StateAlive && m.Ready {
			ready++
		}
	}
	return ready >= want
}

// sleepCtx sleeps d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// procRSS reads VmRSS of pid from /proc, in bytes.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse VmRSS of %d: %w", pid, err)
				}
				return kb * 1024, nil
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}
