package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/distrod/distrod/daemon"
	"github.com/urfave/cli/v2"
)

// flagOfField maps daemon.Config fields to the agent flag that sets them, so a
// *daemon.FieldError names the flag the user typed.
var flagOfField = map[string]string{
	"Name": "name", "GossipAddr": "gossip-addr", "HTTPAddr": "http-addr", "Advertise": "advertise",
	"Join": "join", "Bootstrap": "bootstrap", "Secret": "secret", "Profile": "profile", "Partitions": "partitions",
	"SyncDelay": "sync-delay", "SyncRetryDelay": "sync-retry-delay", "VerifyInterval": "verify-interval",
	"TombstoneTTL": "tombstone-ttl", "BeatTimeout": "beat-timeout", "DeleteTimeout": "delete-timeout",
	"PushTrustClientIP": "push-trust-client-ip", "UDPAddr": "udp-addr",
	"ProbeInterval": "probe-interval", "ProbeTimeout": "probe-timeout", "SuspicionMult": "suspicion-mult",
	"GossipInterval": "gossip-interval", "FaultDropPushRatio": "fault-drop-push-ratio",
	"FaultLosePushRatio": "fault-lose-push-ratio", "MaxClockSkew": "max-clock-skew",
}

func env(flag string) []string {
	b := []byte("DISTROD_" + flag)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return []string{string(b)}
}

func agentCommand() *cli.Command {
	d := daemon.DefaultConfig()
	hostname, _ := os.Hostname()
	return &cli.Command{
		Name:  "agent",
		Usage: "run one distrod node",
		Description: "Runs a registry node. Without --join (or with --bootstrap) it starts a new cluster, ready at once;\n" +
			"with --join it joins the cluster through any of the given gossip addresses (retried until one answers)\n" +
			"and is not ready until it loaded the registry from a ready member.\n" +
			"Every flag can also be set as DISTROD_<FLAG>, e.g. DISTROD_HTTP_ADDR.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "name", Value: hostname, Usage: "unique node name; keep it across restarts", EnvVars: env("name")},
			&cli.StringFlag{Name: "gossip-addr", Value: d.GossipAddr, Usage: "gossip host:port (TCP and UDP)", EnvVars: env("gossip-addr")},
			&cli.StringFlag{Name: "http-addr", Value: d.HTTPAddr, Usage: "HTTP host:port: Nacos API, peer and ops endpoints", EnvVars: env("http-addr")},
			&cli.StringFlag{Name: "advertise", Usage: "gossip host:port peers dial, when it differs from --gossip-addr", EnvVars: env("advertise")},
			&cli.StringSliceFlag{Name: "join", Usage: "gossip host:port of a member to join (repeatable); not ready until a ready member is reached", EnvVars: env("join")},
			&cli.BoolFlag{Name: "bootstrap", Usage: "start a new cluster: ready at once, empty, even with --join (first node only, never on a restart)", EnvVars: env("bootstrap")},
			&cli.StringFlag{Name: "secret", Usage: "shared secret: encrypts gossip, authenticates peer HTTP", EnvVars: env("secret")},
			&cli.StringFlag{Name: "profile", Value: d.Profile, Usage: "gossip timings: lan, local or wan", EnvVars: env("profile")},
			&cli.DurationFlag{Name: "probe-interval", Value: d.ProbeInterval, Usage: "gossip failure-detector probe interval (0: the profile's)", EnvVars: env("probe-interval")},
			&cli.DurationFlag{Name: "probe-timeout", Value: d.ProbeTimeout, Usage: "wait for a probe ack (0: the profile's)", EnvVars: env("probe-timeout")},
			&cli.IntFlag{Name: "suspicion-mult", Value: d.SuspicionMult, Usage: "suspicion timeout multiplier (0: the profile's)", EnvVars: env("suspicion-mult")},
			&cli.DurationFlag{Name: "gossip-interval", Value: d.GossipInterval, Usage: "gossip round interval (0: the profile's)", EnvVars: env("gossip-interval")},
			&cli.IntFlag{Name: "partitions", Value: d.Partitions, Usage: "partition count, the same on every node", EnvVars: env("partitions")},
			&cli.DurationFlag{Name: "sync-delay", Value: d.SyncDelay, Usage: "minimum wait before a change is pushed (merges bursts)", EnvVars: env("sync-delay")},
			&cli.DurationFlag{Name: "sync-retry-delay", Value: d.SyncRetryDelay, Usage: "first backoff after a failed push", EnvVars: env("sync-retry-delay")},
			&cli.DurationFlag{Name: "verify-interval", Value: d.VerifyInterval, Usage: "interval of the checksum verify (anti-entropy)", EnvVars: env("verify-interval")},
			&cli.DurationFlag{Name: "tombstone-ttl", Value: d.TombstoneTTL, Usage: "how long deletions are remembered (>= 3 verify intervals)", EnvVars: env("tombstone-ttl")},
			&cli.DurationFlag{Name: "max-clock-skew", Value: d.MaxClockSkew, Usage: "refuse peer versions more than this ahead of this node's clock", EnvVars: env("max-clock-skew")},
			&cli.DurationFlag{Name: "beat-timeout", Value: d.BeatTimeout, Usage: "instance marked unhealthy after this long without a beat", EnvVars: env("beat-timeout")},
			&cli.DurationFlag{Name: "delete-timeout", Value: d.DeleteTimeout, Usage: "instance removed after this long without a beat", EnvVars: env("delete-timeout")},
			&cli.BoolFlag{Name: "push-trust-client-ip", Value: d.PushTrustClientIP, Usage: "send UDP pushes to the clientIP parameter, not the request's source", EnvVars: env("push-trust-client-ip")},
			&cli.StringFlag{Name: "udp-addr", Value: d.UDPAddr, Usage: "local host:port of the UDP push socket (default: HTTP host, any port)", EnvVars: env("udp-addr")},
			&cli.Float64Flag{Name: "fault-drop-push-ratio", Hidden: true, Usage: "tests only: fail this share of peer pushes", EnvVars: env("fault-drop-push-ratio")},
			&cli.Float64Flag{Name: "fault-lose-push-ratio", Hidden: true, Usage: "tests only: silently lose this share of peer pushes", EnvVars: env("fault-lose-push-ratio")},
			&cli.Int64Flag{Name: "fault-seed", Hidden: true, Usage: "tests only: seed of the fault injection", EnvVars: env("fault-seed")},
			&cli.DurationFlag{Name: "shutdown-timeout", Value: 10 * time.Second, Usage: "bound on the graceful shutdown after SIGINT/SIGTERM", EnvVars: env("shutdown-timeout")},
		}, logFlags("info")...),
		Action: runAgent,
	}
}

// agentConfig builds the node config from the flags, naming the flag of the first bad value.
func agentConfig(c *cli.Context) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	cfg.Name = c.String("name")
	cfg.GossipAddr = c.String("gossip-addr")
	cfg.HTTPAddr = c.String("http-addr")
	cfg.Advertise = c.String("advertise")
	cfg.Join = c.StringSlice("join")
	cfg.Bootstrap = c.Bool("bootstrap")
	cfg.Secret = c.String("secret")
	if c.IsSet("secret") && cfg.Secret == "" {
		return cfg, flagError("secret", "must not be empty when given")
	}
	cfg.Profile = c.String("profile")
	cfg.Partitions = c.Int("partitions")
	cfg.ProbeInterval = c.Duration("probe-interval")
	cfg.ProbeTimeout = c.Duration("probe-timeout")
	cfg.SuspicionMult = c.Int("suspicion-mult")
	cfg.GossipInterval = c.Duration("gossip-interval")
	cfg.SyncDelay = c.Duration("sync-delay")
	cfg.SyncRetryDelay = c.Duration("sync-retry-delay")
	cfg.VerifyInterval = c.Duration("verify-interval")
	cfg.TombstoneTTL = c.Duration("tombstone-ttl")
	if !c.IsSet("tombstone-ttl") && cfg.TombstoneTTL < 3*cfg.VerifyInterval {
		cfg.TombstoneTTL = 3 * cfg.VerifyInterval // follow a longer --verify-interval
	}
	cfg.MaxClockSkew = c.Duration("max-clock-skew")
	cfg.BeatTimeout = c.Duration("beat-timeout")
	cfg.DeleteTimeout = c.Duration("delete-timeout")
	cfg.PushTrustClientIP = c.Bool("push-trust-client-ip")
	cfg.UDPAddr = c.String("udp-addr")
	cfg.FaultDropPushRatio = c.Float64("fault-drop-push-ratio")
	cfg.FaultLosePushRatio = c.Float64("fault-lose-push-ratio")
	cfg.FaultSeed = c.Int64("fault-seed")
	if err := cfg.Validate(); err != nil {
		return cfg, configError(err)
	}
	return cfg, nil
}

// configError turns a daemon config error into a one-line flag error (exit 2).
func configError(err error) error {
	var fe *daemon.FieldError
	if errors.As(err, &fe) {
		if flag, ok := flagOfField[fe.Field]; ok {
			return flagError(flag, "%v", fe.Err)
		}
		return cli.Exit(err.Error(), exitUsage)
	}
	return err
}

func runAgent(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("agent: unexpected argument %q", c.Args().First()), exitUsage)
	}
	logger, err := newLogger(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	cfg, err := agentConfig(c)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	node, err := daemon.New(cfg)
	if err != nil {
		return configError(err)
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	node.Start()
	logger.Info("distrod agent running", "name", cfg.Name, "http", node.HTTPAddr(), "gossip", node.GossipAddr())

	select {
	case sig := <-sigs:
		logger.Info("signal received: leaving the cluster", "signal", sig.String(), "timeout", c.Duration("shutdown-timeout"))
		return shutdownOnSignal(c.Duration("shutdown-timeout"), sigs, node.Shutdown)
	case <-node.Failed():
		return refuseToRun(c.Duration("shutdown-timeout"), node)
	}
}

// refuseToRun stops a node that cannot take part in the cluster (another live
// node has its name) and names the cause in a one-line error, exit 2: the
// operator has to pick another --name.
func refuseToRun(timeout time.Duration, node *daemon.Node) error {
	cause := node.Err()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil {
		cause = fmt.Errorf("%w (and shutting down: %v)", cause, err)
	}
	return flagError("name", "%v", cause)
}

// shutdownOnSignal runs shutdown bounded by timeout; a second signal exits at once.
func shutdownOnSignal(timeout time.Duration, sigs <-chan os.Signal, shutdown func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- shutdown(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			return cli.Exit(fmt.Sprintf("shutdown: %v", err), 1)
		}
		return nil
	case sig := <-sigs:
		return cli.Exit(fmt.Sprintf("second signal (%s): exiting without waiting", sig), 130)
	}
}
