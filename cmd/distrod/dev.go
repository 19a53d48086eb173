package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/distrod/distrod/daemon"
	"github.com/urfave/cli/v2"
)

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a local cluster of N nodes on loopback in this process",
		Description: "Starts node1 standalone and the others joined to it, all on 127.0.0.1, prints their\n" +
			"addresses and example requests, and stops them cleanly on Ctrl-C.",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 3, Usage: "number of nodes (1-64)"},
			&cli.IntFlag{Name: "http-port", Value: 8848, Usage: "HTTP port of node1; node i uses http-port+i-1"},
			&cli.IntFlag{Name: "gossip-port", Value: 7946, Usage: "gossip port of node1; node i uses gossip-port+i-1"},
			&cli.IntFlag{Name: "base-port", Usage: "when set: HTTP ports from base-port, gossip ports from base-port+100"},
			&cli.StringFlag{Name: "profile", Value: "local", Usage: "gossip timings: lan, local or wan"},
			&cli.StringFlag{Name: "secret", Usage: "shared secret for the dev cluster"},
			&cli.DurationFlag{Name: "ready-timeout", Value: 30 * time.Second, Usage: "how long to wait for every node to be ready"},
		}, logFlags("warn")...),
		Action: runDev,
	}
}

func runDev(c *cli.Context) error {
	n := c.Int("nodes")
	if n < 1 || n > 64 {
		return flagError("nodes", "must be 1-64, got %d", n)
	}
	httpPort, gossipPort := c.Int("http-port"), c.Int("gossip-port")
	if c.IsSet("base-port") {
		httpPort, gossipPort = c.Int("base-port"), c.Int("base-port")+100
	}
	for flag, p := range map[string]int{"http-port": httpPort, "gossip-port": gossipPort} {
		if p < 1 || p+n-1 > 65535 {
			return flagError(flag, "ports %d-%d out of range", p, p+n-1)
		}
	}
	if c.IsSet("secret") && c.String("secret") == "" {
		return flagError("secret", "must not be empty when given")
	}
	logger, err := newLogger(c, c.App.ErrWriter)
	if err != nil {
		return err
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	var nodes []*daemon.Node
	stopAll := func(ctx context.Context) error {
		var errs []error
		for i := len(nodes) - 1; i >= 0; i-- {
			if err := nodes[i].Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", nodes[i].Name(), err))
			}
		}
		return errors.Join(errs...)
	}
	for i := 0; i < n; i++ {
		cfg := daemon.DefaultConfig()
		cfg.Name = "node" + strconv.Itoa(i+1)
		cfg.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort+i))
		cfg.Membership.BindAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(gossipPort+i))
		cfg.Membership.Profile = c.String("profile")
		cfg.Secret = c.String("secret")
		cfg.Logger = logger
		if i > 0 {
			cfg.Membership.Join = []string{nodes[0].GossipAddr()}
		}
		node, err := daemon.New(cfg)
		if err != nil {
			_ = stopAll(context.Background())
			var fe *daemon.FieldError
			if errors.As(err, &fe) {
				return cli.Exit(fmt.Sprintf("%s: %v (choose other ports with --base-port)", cfg.Name, err), exitUsage)
			}
			return fmt.Errorf("%s: %w", cfg.Name, err)
		}
		node.Start()
		nodes = append(nodes, node)
	}

	w := c.App.Writer
	ready := waitDevReady(nodes, c.Duration("ready-timeout"), sigs)
	fmt.Fprintf(w, "distrod dev cluster: %d nodes (profile %s)\n\n", n, c.String("profile"))
	fmt.Fprintf(w, "  %-8s %-22s %-22s\n", "NAME", "HTTP", "GOSSIP")
	for _, node := range nodes {
		fmt.Fprintf(w, "  %-8s %-22s %-22s\n", node.Name(), node.HTTPAddr(), node.GossipAddr())
	}
	if !ready {
		fmt.Fprintln(w, "\nwarning: not every node is ready yet; see /health")
	}
	h1, h2 := nodes[0].HTTPAddr(), nodes[len(nodes)-1].HTTPAddr()
	fmt.Fprintf(w, `
Try:
  curl -s http://%[1]s/v1/cluster/members
  curl -s http://%[1]s/v1/cluster/ring | head -c 300; echo
  curl -s -X POST 'http://%[1]s/nacos/v1/ns/instance?serviceName=demo&ip=10.0.0.1&port=8080'
  curl -s 'http://%[2]s/nacos/v1/ns/instance/list?serviceName=demo'
  curl -s http://%[2]s/v1/distro/status
  %[3]s members --http %[1]s
  %[3]s status --http %[1]s
  %[3]s instances --http %[2]s --service demo

(An instance registered with curl expires after the delete timeout, 30 s, unless it is sent beats.)
Ctrl-C stops the cluster.
`, h1, h2, self())

	sig := <-sigs
	fmt.Fprintf(w, "\n%s: stopping %d nodes\n", sig, len(nodes))
	return shutdownOnSignal(15*time.Second, sigs, stopAll)
}

// self is how this program was invoked, for copy-pasteable examples.
func self() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "distrod"
}

// waitDevReady polls until every node is ready and sees every other one, or
// the timeout passes, or a signal arrives (which is put back for the caller).
func waitDevReady(nodes []*daemon.Node, timeout time.Duration, sigs chan os.Signal) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		all := true
		for _, node := range nodes {
			if !node.Ready() || node.Ring() == nil || len(node.Ring().Members()) != len(nodes) {
				all = false
				break
			}
		}
		if all {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case sig := <-sigs:
			sigs <- sig
			return false
		case <-tick.C:
		}
	}
}
