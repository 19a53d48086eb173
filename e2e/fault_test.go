package e2e

// The fault suite (issue 5): real distrod processes under crashes, rolling
// restarts, a pause and lost pushes, with clients registering, beating and
// deregistering throughout; DESIGN.md's invariants are checked while the
// faults happen and once they stop. The partition scenario is in
// fault_partition_test.go. Run: make e2e, or
//
//	cd e2e && go test -race -count=1 -run Fault -v .
//
// DISTROD_FAULT_SECONDS=N shortens the longest fault windows to N seconds.

import (
	"math/rand/v2"
	"testing"
	"time"
)

// defaultSpec is the workload of a 5-node scenario: 40 clients over 6 services.
func defaultSpec(window time.Duration, seed uint64) workloadSpec {
	return workloadSpec{services: 6, keepers: 25, leavers: 10, late: 5, faultWindow: window, seed: seed}
}

// startFaultCluster starts n nodes, makes every restart join through all the
// others, and waits until they agree on members.
func startFaultCluster(t *testing.T, n int, opts Options) []*Node {
	t.Helper()
	nodes := StartCluster(t, n, opts).Nodes
	joinAll(nodes)
	names := sortedNames(nodes)
	Eventually(t, 60*time.Second, "every node sees all as alive, one ring", func() error {
		_, err := AgreeOnMembers(nodes, names...)
		return err
	})
	return nodes
}

func allOf(nodes []*Node) func(int) (int, []*Node) {
	return func(int) (int, []*Node) { return 0, nodes }
}

// TestFaultCrashRestart: 5 nodes; every few seconds a random node is killed
// with SIGKILL and restarted 2–5 s later, never more than 2 down at once.
func TestFaultCrashRestart(t *testing.T) {
	nodes := startFaultCluster(t, 5, faultOptions())
	window := faultDuration(t, 60*time.Second)
	w := newWorkload(t, defaultSpec(window, 1), func() []*Node { return nodes }, allOf(nodes))
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)

	rng := rand.New(rand.NewPCG(11, 13))
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	type downNode struct {
		n         *Node
		restartAt time.Time
	}
	var down []downNode
	kills, restarts := 0, 0
	w.beginFaults()
	end := time.Now().Add(window)
	nextKill := time.Now().Add(time.Second)
	for time.Now().Before(end) || len(down) > 0 {
		now := time.Now()
		for i := 0; i < len(down); {
			if now.After(down[i].restartAt) || now.After(end) {
				s := time.Now()
				down[i].n.Restart()
				restarts++
				t.Logf("t+%.1fs restarted %s (healthy after %s)", time.Since(w.faultsStart).Seconds(), down[i].n.Name, time.Since(s).Round(time.Millisecond))
				down = append(down[:i], down[i+1:]...)
				continue
			}
			i++
		}
		if now.Before(end) && now.After(nextKill) && len(down) < 2 {
			var up []*Node
			for _, n := range nodes {
				if n.Running() {
					up = append(up, n)
				}
			}
			victim := up[rng.IntN(len(up))]
			victim.Kill()
			kills++
			down = append(down, downNode{victim, now.Add(between(2*time.Second, 5*time.Second))})
			t.Logf("t+%.1fs kill -9 %s (%d down)", time.Since(w.faultsStart).Seconds(), victim.Name, len(down))
			nextKill = now.Add(between(2*time.Second, 4*time.Second))
		}
		time.Sleep(100 * time.Millisecond) // the fault scheduler's tick
	}
	stopped := time.Now()
	t.Logf("faults stopped after %s: %d kills, %d restarts", stopped.Sub(w.faultsStart).Round(time.Millisecond), kills, restarts)
	w.waitLeaversDone(t, 30*time.Second)
	w.converge(t, "crash-restart", nodes, sortedNames(nodes), stopped)
}

// TestFaultRollingRestart: every node in turn gets SIGTERM (a graceful leave)
// and is started again; the next one goes once the restarted node is healthy
// and its peers see it alive and ready, as an operator upgrading would do.
func TestFaultRollingRestart(t *testing.T) {
	nodes := startFaultCluster(t, 5, faultOptions())
	w := newWorkload(t, defaultSpec(20*time.Second, 2), func() []*Node { return nodes }, allOf(nodes))
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)

	w.beginFaults()
	for _, n := range nodes {
		s := time.Now()
		if err := n.Stop(); err != nil {
			t.Errorf("%s: exit after SIGTERM: %v", n.Name, err)
		}
		n.Restart()
		Eventually(t, 30*time.Second, n.Name+" seen alive and ready by every peer", func() error {
			return EverySees(nodes, n.Name, func(m Member) bool { return m.State == "alive" && m.Ready })
		})
		t.Logf("t+%.1fs %s restarted and back in the cluster after %s", time.Since(w.faultsStart).Seconds(), n.Name, time.Since(s).Round(time.Millisecond))
		time.Sleep(time.Second) // load on the whole cluster before the next restart
	}
	stopped := time.Now()
	w.waitLeaversDone(t, 30*time.Second)
	w.converge(t, "rolling-restart", nodes, sortedNames(nodes), stopped)
}

// TestFaultPause: SIGSTOP one node until every other node declares it dead,
// hold it stopped past the delete timeout (its own view of the last beats is
// then stale), SIGCONT it: it must rejoin and converge, and delete nothing.
func TestFaultPause(t *testing.T) {
	nodes := startFaultCluster(t, 5, faultOptions())
	w := newWorkload(t, defaultSpec(15*time.Second, 3), func() []*Node { return nodes }, allOf(nodes))
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)

	victim := nodes[2]
	var others []*Node
	for _, n := range nodes {
		if n != victim {
			others = append(others, n)
		}
	}
	w.beginFaults()
	if err := pause(victim); err != nil {
		t.Fatalf("SIGSTOP %s: %v", victim.Name, err)
	}
	t.Cleanup(func() { _ = resume(victim) }) // before the harness's kill: a stopped process must not linger
	paused := time.Now()
	Eventually(t, 60*time.Second, "every other node declares "+victim.Name+" dead", func() error {
		return EverySees(others, victim.Name, func(m Member) bool { return m.State == "dead" })
	})
	detected := time.Since(paused)
	hold := faultDeleteTimeout + 2*time.Second
	time.Sleep(hold) // the fault itself: the node stays stopped this long after being declared dead
	if err := resume(victim); err != nil {
		t.Fatalf("SIGCONT %s: %v", victim.Name, err)
	}
	stopped := time.Now()
	t.Logf("%s stopped for %s: declared dead by every peer after %s, held %s more", victim.Name,
		stopped.Sub(paused).Round(time.Millisecond), detected.Round(time.Millisecond), hold)
	w.waitLeaversDone(t, 30*time.Second)
	w.converge(t, "pause", nodes, sortedNames(nodes), stopped)
}

// TestFaultLostPushes: every node fails half of its pushes with an error
// (retried) and silently loses half of the rest (answered OK, never
// delivered: only verify can repair those), through the agent's hidden fault
// flags; with clients registering and deregistering, verify must bring every
// node to the same data within one verify interval plus a few seconds.
func TestFaultLostPushes(t *testing.T) {
	flags := []string{"--fault-drop-push-ratio=0.5", "--fault-lose-push-ratio=0.5", "--fault-seed=5"}
	if ok, why := agentSupports(flags...); !ok {
		t.Skipf("distrod agent does not accept the hidden fault flags %v (%s): the lead wires them to "+
			"daemon.Config.FaultDropPushRatio/FaultLosePushRatio/FaultSeed → distro.DropPushes/LosePushes", flags, why)
	}
	nodes := startFaultCluster(t, 3, faultOptions(flags...))
	w := newWorkload(t, workloadSpec{services: 6, keepers: 20, leavers: 10, late: 10, faultWindow: 15 * time.Second, seed: 5},
		func() []*Node { return nodes }, allOf(nodes))
	w.run()
	w.waitRegistered(t, nodes, 30*time.Second)
	w.beginFaults()
	w.waitLeaversDone(t, 45*time.Second)
	stopped := time.Now() // the last change: pushes keep failing, only verify repairs
	w.converge(t, "lost-pushes", nodes, sortedNames(nodes), stopped)

	failed := metricSum(nodes, "distro_push_failures_total")
	pulled := metricSum(nodes, "distro_verify_pulled_keys_total")
	t.Logf("FIGURES lost-pushes: push batches failed (and retried) %.0f; keys pulled by verify %.0f", failed, pulled)
	if failed == 0 {
		t.Errorf("no push failed although half of them are dropped: is the fault flag wired?")
	}
	if pulled == 0 {
		t.Errorf("verify pulled no key although a quarter of the pushes were lost silently")
	}
}
