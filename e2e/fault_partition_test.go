package e2e

// The partition scenario: 5 nodes, each in a network namespace of its own made
// by the test, on a bridge in the root namespace; nftables rules inside the
// node namespaces split them 3|2 while clients (in the test process, reaching
// every namespace over the bridge) keep beating through their own side.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// netLab is the namespaces, veths and bridge of one test, all named with a
// prefix holding the test's PID so parallel runs never collide.
type netLab struct {
	t      *testing.T
	prefix string   // e.g. "dtd12345"
	subnet string   // e.g. "10.231.57", a /24 only these namespaces and the bridge use
	bridge string   // bridge in the root namespace
	ns     []string // node namespaces, n1..nN
	useNft bool     // nft drop rules; false = blackhole routes (iproute2 only)
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNetLab checks the prerequisites (skipping the test, with the reason,
// when one is missing) and builds n namespaces on a bridge.
func newNetLab(t *testing.T, n int) *netLab {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("partition scenario skipped: needs root to create network namespaces (run as root, as .ci/run does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("partition scenario skipped: `ip` (iproute2) not found on PATH; install iproute2 (.ci/run does)")
	}
	lab := &netLab{t: t, prefix: fmt.Sprintf("dtd%d", os.Getpid()%10000000)}
	if _, err := exec.LookPath("nft"); err == nil {
		lab.useNft = true
	} else {
		t.Logf("nft not found on PATH: partitioning with blackhole routes instead of nftables drop rules")
	}
	lab.subnet = freeSubnet(os.Getpid())
	if lab.subnet == "" {
		t.Skip("partition scenario skipped: no unused 10.x.y.0/24 subnet found for the test namespaces")
	}
	probe := lab.prefix + "-probe"
	if err := run("ip", "netns", "add", probe); err != nil {
		t.Skipf("partition scenario skipped: cannot create a network namespace here: %v", err)
	}
	_ = run("ip", "netns", "del", probe)

	lab.bridge = lab.prefix + "br"
	t.Cleanup(lab.cleanup) // registered before any node: runs after the nodes are killed
	must := func(name string, args ...string) {
		t.Helper()
		if err := run(name, args...); err != nil {
			t.Fatalf("network setup: %v", err)
		}
	}
	must("ip", "link", "add", lab.bridge, "type", "bridge")
	must("ip", "addr", "add", lab.subnet+".254/24", "dev", lab.bridge)
	must("ip", "link", "set", lab.bridge, "up")
	for i := 1; i <= n; i++ {
		ns := fmt.Sprintf("dtd-%d-n%d", os.Getpid(), i)
		host, peer := fmt.Sprintf("%sv%d", lab.prefix, i), fmt.Sprintf("%sp%d", lab.prefix, i)
		must("ip", "netns", "add", ns)
		lab.ns = append(lab.ns, ns)
		must("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		must("ip", "link", "set", host, "master", lab.bridge)
		must("ip", "link", "set", host, "up")
		must("ip", "link", "set", peer, "netns", ns)
		must("ip", "-n", ns, "link", "set", peer, "name", "eth0")
		must("ip", "-n", ns, "addr", "add", lab.ip(i)+"/24", "dev", "eth0")
		must("ip", "-n", ns, "link", "set", "eth0", "up")
		must("ip", "-n", ns, "link", "set", "lo", "up")
	}
	return lab
}

// freeSubnet picks a 10.x.y.0/24 that no address or route on this host uses yet.
func freeSubnet(seed int) string {
	used := ""
	if out, err := exec.Command("ip", "-4", "-o", "addr").CombinedOutput(); err == nil {
		used += string(out)
	}
	if out, err := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput(); err == nil {
		used += string(out)
	}
	for i := 0; i < 200; i++ {
		s := fmt.Sprintf("10.%d.%d", 200+(seed+i)%50, (seed/50+i*7)%250+1)
		if !strings.Contains(used, " "+s+".") && !strings.Contains(used, "\n"+s+".") && !strings.HasPrefix(used, s+".") &&
			!strings.Contains(used, fmt.Sprintf(" 10.%d.0.0/", 200+(seed+i)%50)) && !strings.Contains(used, "10.0.0.0/8") {
			return s
		}
	}
	return ""
}

func (l *netLab) ip(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i) }

// cleanup removes the namespaces (their veth ends and nft rules go with them) and the bridge.
func (l *netLab) cleanup() {
	for _, ns := range l.ns {
		if err := run("ip", "netns", "del", ns); err != nil {
			l.t.Logf("cleanup: %v", err)
		}
	}
	if l.bridge != "" {
		_ = run("ip", "link", "del", l.bridge)
	}
}

// split drops all traffic between the nodes of a and those of b (1-based
// indexes) inside each node namespace; the bridge address stays reachable.
func (l *netLab) split(a, b []int) error {
	for _, side := range [][2][]int{{a, b}, {b, a}} {
		var others []string
		for _, j := range side[1] {
			others = append(others, l.ip(j))
		}
		for _, i := range side[0] {
			ns := l.ns[i-1]
			if l.useNft {
				set := strings.Join(others, ", ")
				rules := fmt.Sprintf("table inet dtdfault {\n"+
					"  chain in { type filter hook input priority 0; policy accept; ip saddr { %s } drop; }\n"+
					"  chain out { type filter hook output priority 0; policy accept; ip daddr { %s } drop; }\n"+
					"}\n", set, set)
				cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
				cmd.Stdin = strings.NewReader(rules)
				if out, err := cmd.CombinedOutput(); err != nil {
					return fmt.Errorf("nft in %s: %w: %s", ns, err, bytes.TrimSpace(out))
				}
				continue
			}
			for _, o := range others {
				if err := run("ip", "-n", ns, "route", "add", "blackhole", o+"/32"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// heal removes what split added.
func (l *netLab) heal(a, b []int) error {
	var errs []error
	for _, side := range [][2][]int{{a, b}, {b, a}} {
		for _, i := range side[0] {
			ns := l.ns[i-1]
			if l.useNft {
				errs = append(errs, run("ip", "netns", "exec", ns, "nft", "delete", "table", "inet", "dtdfault"))
				continue
			}
			for _, j := range side[1] {
				errs = append(errs, run("ip", "-n", ns, "route", "del", "blackhole", l.ip(j)+"/32"))
			}
		}
	}
	return errors.Join(errs...)
}

// startNetnsNode starts `ip netns exec <ns> distrod agent` on ip's fixed
// ports and waits for /health. It is a harness Node (Kill, Stop, Status, Do
// work as usual); `ip netns exec` execs the agent, so the PID is the agent's.
func startNetnsNode(t *testing.T, ns, name, ip string, opts Options, join ...string) *Node {
	t.Helper()
	opts = opts.withDefaults()
	dir := t.TempDir()
	n := &Node{t: t, Name: name, Join: join, opts: opts, logPath: filepath.Join(dir, name+".log"),
		HTTPAddr: net.JoinHostPort(ip, "8848"), GossipAddr: net.JoinHostPort(ip, "7946")}
	t.Cleanup(func() {
		n.Kill()
		if t.Failed() {
			if b, err := os.ReadFile(n.logPath); err == nil {
				t.Logf("---- log of %s (netns %s, %s) ----\n%s", n.Name, ns, n.HTTPAddr, b)
			}
		}
	})
	if _, _, err := n.spawn("ip", "netns", "exec", ns, binary); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	Eventually(t, opts.StartTimeout, name+" healthy in netns "+ns, func() error {
		if !n.Running() {
			b, _ := os.ReadFile(n.logPath)
			return fmt.Errorf("exited (%v): %s", n.exitErr(), lastLine(b))
		}
		status, _, err := n.Do("GET", "/health", nil)
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("/health %d", status)
		}
		return nil
	})
	return n
}

// TestFaultPartition: split 5 nodes 3|2 with drop rules for ~30 s while
// clients beat through their own side, then heal: the two sides must merge
// and converge, and nothing a client kept beating for may be lost. During the
// split a side cannot hear the other side's clients, so their instances may
// vanish there (that is AP); they must be back everywhere after the heal.
func TestFaultPartition(t *testing.T) {
	lab := newNetLab(t, 5)
	opts := faultOptions()
	var nodes []*Node
	for i := 1; i <= 5; i++ {
		var join []string
		if i > 1 {
			join = []string{nodes[0].GossipAddr}
		}
		nodes = append(nodes, startNetnsNode(t, lab.ns[i-1], fmt.Sprintf("node%d", i), lab.ip(i), opts, join...))
	}
	names := sortedNames(nodes)
	Eventually(t, 60*time.Second, "5 nodes in namespaces agree on members", func() error {
		_, err := AgreeOnMembers(nodes, names...)
		return err
	})
	sideA, sideB := []int{1, 2, 3}, []int{4, 5}
	sideOf := map[string]int{}
	for _, i := range sideB {
		sideOf[nodes[i-1].Name] = 1
	}
	window := faultDuration(t, 30*time.Second)
	w := newWorkload(t, defaultSpec(window, 4), func() []*Node { return nodes }, func(i int) (int, []*Node) {
		if i%5 < 3 {
			return 0, nodes[:3]
		}
		return 1, nodes[3:]
	})
	var splitAt, healAt time.Time // written by this goroutine before/after the window; read under w.mu by the observer
	w.exempt = func(n *Node, c *wclient, at time.Time) bool {
		return sideOf[n.Name] != c.side && !splitAt.IsZero() && !at.Before(splitAt) && (healAt.IsZero() || at.Before(healAt))
	}
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)

	w.mu.Lock()
	splitAt = time.Now()
	w.mu.Unlock()
	if err := lab.split(sideA, sideB); err != nil {
		t.Fatalf("split: %v", err)
	}
	w.beginFaults()
	Eventually(t, 30*time.Second, "each side sees only itself as alive", func() error {
		if _, err := AgreeOnMembers(nodes[:3], names[:3]...); err != nil {
			return err
		}
		_, err := AgreeOnMembers(nodes[3:], names[3:]...)
		return err
	})
	t.Logf("split 3|2 seen by both sides after %s", time.Since(splitAt).Round(time.Millisecond))
	time.Sleep(time.Until(splitAt.Add(window))) // the fault itself: the split lasts the window
	if err := lab.heal(sideA, sideB); err != nil {
		t.Fatalf("heal: %v", err)
	}
	w.mu.Lock()
	healAt = time.Now()
	w.mu.Unlock()
	t.Logf("healed after %s", healAt.Sub(splitAt).Round(time.Millisecond))
	w.waitLeaversDone(t, 30*time.Second)
	w.converge(t, "partition", nodes, names, healAt)
}
