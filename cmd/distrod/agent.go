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

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run one distrod node",
		Description: "Runs a registry node. Without --join (or with --bootstrap) it starts a new cluster, ready at once;\n" +
			"with --join it joins the cluster through any of the given gossip addresses (retried until one answers)\n" +
			"and is not ready until it loaded the registry from a ready member.\n" +
			"Every flag can also be set as DISTROD_<FLAG>, e.g. DISTROD_HTTP_ADDR.",
		Flags:  append(agentFlags(), logFlags("info")...),
		Action: runAgent,
	}
}

// agentConfig builds the agent's settings from the flags (agentSettingsTable),
// naming the flag of the first bad value.
func agentConfig(c *cli.Context) (agentSettings, error) {
	s := readAgentSettings(c)
	if c.IsSet("secret") && s.Node.Secret == "" {
		return s, flagError("secret", "must not be empty when given")
	}
	if err := s.Node.Validate(); err != nil {
		return s, configError(err)
	}
	return s, nil
}

// configError turns a daemon config error into a one-line flag error (exit 2).
func configError(err error) error {
	var fe *daemon.FieldError
	if errors.As(err, &fe) {
		if flag, ok := flagOfPath()[fe.Field]; ok {
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
	settings, err := agentConfig(c)
	if err != nil {
		return err
	}
	cfg := settings.Node
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
		logger.Info("signal received: leaving the cluster", "signal", sig.String(), "timeout", settings.ShutdownTimeout)
		return shutdownOnSignal(settings.ShutdownTimeout, sigs, node.Shutdown)
	case <-node.Failed():
		return refuseToRun(settings.ShutdownTimeout, node)
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
