package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "load a cluster and report throughput, latency, visibility, verify, snapshot and memory figures",
		Description: "Against a running cluster (--http, one or more members; the others are found through\n" +
			"/v1/cluster/members) or a local one it starts (--spawn N `distrod agent` processes on 127.0.0.1).\n" +
			"Phases: register instances over services at --rate with --concurrency clients through random nodes,\n" +
			"beating them; sample every --sample-every-th registration and poll every node until it is visible;\n" +
			"wait for equal digests; list one service of 10 instances on one node; measure verify traffic;\n" +
			"with --spawn start one more node and time its snapshot load; memory per instance on each node.\n" +
			"Instances are ephemeral, in services named after --prefix; without beats a cluster drops them after\n" +
			"its delete timeout. Spawned agents get --beat-timeout 10m so the cluster stays steady while measured.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "http", Usage: "HTTP host:port of a member of a running cluster (repeatable)"},
			&cli.IntFlag{Name: "spawn", Usage: "start N local agents (node 1 standalone, the others joined) and stop them at the end"},
			&cli.DurationFlag{Name: "duration", Value: 20 * time.Second, Usage: "bound on the load phase"},
			&cli.IntFlag{Name: "max-requests", Value: 2_000_000, Usage: "bound on registrations + beats, and on list requests"},
			&cli.Float64Flag{Name: "rate", Usage: "target registrations per second (0: as fast as possible)"},
			&cli.IntFlag{Name: "concurrency", Value: 64, Usage: "concurrent clients"},
			&cli.IntFlag{Name: "services", Value: 10_000, Usage: "services the instances spread over"},
			&cli.IntFlag{Name: "instances-per-service", Value: 10, Usage: "instances per service (registrations ≤ services × this)"},
			&cli.IntFlag{Name: "sample-every", Value: 100, Usage: "measure visibility of every n-th registration"},
			&cli.IntFlag{Name: "max-samples", Value: 1000, Usage: "bound on visibility samples"},
			&cli.DurationFlag{Name: "beat-interval", Value: 5 * time.Second, Usage: "beat interval of each registered instance (0: no beats)"},
			&cli.DurationFlag{Name: "list-duration", Value: 5 * time.Second, Usage: "bound on the list phase"},
			&cli.DurationFlag{Name: "settle-timeout", Value: 30 * time.Second, Usage: "bound on waiting for convergence, verify rounds and the joining node"},
			&cli.StringFlag{Name: "prefix", Usage: "service name prefix (default bench-<unix time>)"},
			&cli.StringSliceFlag{Name: "agent-flag", Usage: "extra flag for spawned agents, e.g. --agent-flag=--verify-interval=1s (repeatable)"},
			&cli.BoolFlag{Name: "json", Usage: "print the results as JSON on stdout"},
			&cli.BoolFlag{Name: "quiet", Usage: "no progress lines on stderr"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write the bench client's CPU profile to this file (go tool pprof)"},
		},
		Action: runBenchCommand,
	}
}

// benchFlags turns the flags into a config, naming the first bad flag.
func benchFlags(c *cli.Context) (benchConfig, error) {
	cfg := benchConfig{
		Duration: c.Duration("duration"), MaxRequests: c.Int("max-requests"), Rate: c.Float64("rate"),
		Concurrency: c.Int("concurrency"), Services: c.Int("services"), InstancesPerService: c.Int("instances-per-service"),
		SampleEvery: c.Int("sample-every"), MaxSamples: c.Int("max-samples"), BeatInterval: c.Duration("beat-interval"),
		ListDuration: c.Duration("list-duration"), VisibleTimeout: 10 * time.Second, SettleTimeout: c.Duration("settle-timeout"),
		Prefix: c.String("prefix"),
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "bench-" + strconv.FormatInt(time.Now().Unix(), 10)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"duration", cfg.Duration}, {"list-duration", cfg.ListDuration}, {"settle-timeout", cfg.SettleTimeout}} {
		if d.v <= 0 {
			return cfg, flagError(d.flag, "must be positive, got %s", d.v)
		}
	}
	for _, f := range []struct {
		flag string
		v    int
	}{{"max-requests", cfg.MaxRequests}, {"concurrency", cfg.Concurrency}, {"services", cfg.Services}, {"instances-per-service", cfg.InstancesPerService}} {
		if f.v <= 0 {
			return cfg, flagError(f.flag, "must be positive, got %d", f.v)
		}
	}
	if cfg.Concurrency > 4096 {
		return cfg, flagError("concurrency", "at most 4096, got %d", cfg.Concurrency)
	}
	if cfg.BeatInterval < 0 {
		return cfg, flagError("beat-interval", "must not be negative, got %s", cfg.BeatInterval)
	}
	if cfg.Rate < 0 {
		return cfg, flagError("rate", "must not be negative, got %v", cfg.Rate)
	}
	if cfg.SampleEvery < 0 || cfg.MaxSamples < 0 {
		return cfg, flagError("sample-every", "--sample-every and --max-samples must not be negative")
	}
	if cfg.Services*cfg.InstancesPerService > 1<<24 {
		return cfg, flagError("services", "services × instances-per-service must be at most %d", 1<<24)
	}
	return cfg, nil
}

func runBenchCommand(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("bench: unexpected argument %q", c.Args().First()), exitUsage)
	}
	cfg, err := benchFlags(c)
	if err != nil {
		return err
	}
	addrs, spawn := c.StringSlice("http"), c.Int("spawn")
	switch {
	case len(addrs) == 0 && spawn == 0:
		return flagError("http", "give --http H:P of a running cluster, or --spawn N")
	case len(addrs) > 0 && spawn > 0:
		return flagError("spawn", "give either --http or --spawn, not both")
	case spawn < 0 || spawn > 32:
		return flagError("spawn", "must be 1-32, got %d", spawn)
	}
	if !c.Bool("quiet") {
		cfg.Progress = c.App.ErrWriter
	}

	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return flagError("cpuprofile", "%v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return flagError("cpuprofile", "%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	client := newBenchClient(10*time.Second, cfg.Concurrency*2+64)
	defer client.Close()

	var cl *benchCluster
	if spawn > 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find the distrod executable: %w", err)
		}
		extra := append([]string{"--beat-timeout", "10m", "--delete-timeout", "20m"}, c.StringSlice("agent-flag")...)
		progress(cfg.Progress, "starting %d agents (%s)", spawn, exe)
		cl, err = spawnCluster(ctx, client, exe, spawn, extra, 30*time.Second)
		if err != nil {
			return fmt.Errorf("spawn cluster: %w", err)
		}
	} else {
		nodes, err := discoverCluster(client, addrs)
		if err != nil {
			return cli.Exit(err.Error(), 1)
		}
		cl = &benchCluster{nodes: nodes, stop: func() {}}
	}
	defer cl.stop()

	rep, err := runBenchmark(ctx, client, cl, cfg)
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		rep.Interrupted = true
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		rep.printTable(c.App.Writer)
	}
	if rep.Interrupted {
		return cli.Exit("interrupted", 130)
	}
	return nil
}

func progress(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// runBenchmark runs every phase against cl and returns the report. Only a
// cluster that cannot be used at all is an error; a failed phase is reported.
func runBenchmark(ctx context.Context, c *benchClient, cl *benchCluster, cfg benchConfig) (*benchReport, error) {
	nodes := cl.nodes
	rep := &benchReport{
		Date: time.Now().UTC().Format(time.RFC3339), CPUs: runtime.NumCPU(), Spawned: cl.spawn != nil,
		Config: benchConfigOut{Duration: cfg.Duration.String(), MaxRequests: cfg.MaxRequests, Rate: cfg.Rate,
			Concurrency: cfg.Concurrency, Services: cfg.Services, InstancesPerService: cfg.InstancesPerService,
			SampleEvery: cfg.SampleEvery, Prefix: cfg.Prefix},
	}
	for _, n := range nodes {
		rep.Nodes = append(rep.Nodes, n.Name+"@"+n.Addr)
	}
	progress(cfg.Progress, "cluster: %v", rep.Nodes)

	// Setup: the service the list phase reads, registered before the baseline.
	const listHosts = 10
	listSvc := cfg.Prefix + "-list"
	if err := listService(ctx, c, nodes[0].Addr, listSvc, listHosts, cfg.SettleTimeout); err != nil {
		return nil, fmt.Errorf("set up the list service: %w", err)
	}
	before := make([]memSample, len(nodes))
	for i, n := range nodes {
		before[i] = readMemory(c, n)
	}

	progress(cfg.Progress, "load: up to %d registrations over %d services for %s", cfg.Services*cfg.InstancesPerService, cfg.Services, cfg.Duration)
	load := runLoad(ctx, c, nodes, cfg)
	rep.Register, rep.Beats, rep.BeatsLost, rep.Visibility = load.Register, load.Beats, load.BeatsLost, load.Visibility
	if load.Registered == 0 {
		return rep, fmt.Errorf("no registration succeeded: %s", load.Register.LastError)
	}

	progress(cfg.Progress, "waiting for equal digests on every node")
	rep.Converge = waitConverged(ctx, c, nodes, cfg.SettleTimeout)
	if !rep.Converge.Converged {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("nodes did not converge within %s", cfg.SettleTimeout))
	}
	for i, n := range nodes {
		rep.Memory = append(rep.Memory, memoryResult(n, before[i], readMemory(c, n), rep.Converge.Instances[i]))
	}

	if ctx.Err() == nil {
		progress(cfg.Progress, "list: %s on %s for %s", listSvc, nodes[0].Name, cfg.ListDuration)
		rep.List = runList(ctx, c, nodes[0], listSvc, listHosts, cfg)
	}
	if ctx.Err() == nil {
		progress(cfg.Progress, "verify: waiting for two verify rounds on every node")
		rep.Verify = runVerify(ctx, c, nodes, cfg.SettleTimeout)
	}
	if cl.spawn != nil && ctx.Err() == nil {
		name := "bench" + strconv.Itoa(len(nodes)+1)
		progress(cfg.Progress, "join: starting %s", name)
		j, p := runJoin(ctx, c, cl, name, cfg.SettleTimeout)
		rep.Join = &j
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	for _, n := range nodes {
		if m, err := c.metrics(n.Addr); err == nil {
			rep.Unhealthy += m[`distrod_naming_instances{health="unhealthy"}`]
		}
	}
	if rep.Unhealthy > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%.0f instances (summed over nodes) were unhealthy at the end: "+
			"beats stopped for longer than the cluster's beat timeout", rep.Unhealthy))
	}
	if v := rep.Visibility; v.TimedOut > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d sampled registrations were not visible on every node within %s", v.TimedOut, cfg.VisibleTimeout))
	}
	return rep, nil
}
