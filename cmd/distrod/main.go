// Command distrod runs and inspects distrod registry nodes.
package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
)

// exitUsage is the exit code for unparsable or conflicting flags.
const exitUsage = 2

// exitDiverged is the exit code of `status` when the cluster has not converged
// (or cannot be asked).
const exitDiverged = 1

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run executes the CLI and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.Run(args)
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := strings.TrimSpace(err.Error()); msg != "" {
			fmt.Fprintln(stderr, "distrod:", msg)
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(stderr, "distrod:", err)
	if strings.HasPrefix(err.Error(), "Required flag") { // urfave/cli checks these after OnUsageError
		return exitUsage
	}
	return 1
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:           "distrod",
		Usage:          "AP service registry speaking the Nacos v1 naming API, replicated with Distro",
		Writer:         stdout,
		ErrWriter:      stderr,
		ExitErrHandler: func(*cli.Context, error) {}, // run decides the exit code
		OnUsageError:   usageError,
		Commands: []*cli.Command{
			agentCommand(),
			devCommand(),
			membersCommand(),
			statusCommand(),
			benchCommand(),
		},
	}
	app.Commands = append(app.Commands, registryCommands()...)
	for _, c := range app.Commands {
		c.OnUsageError = usageError
	}
	return app
}

// usageError turns a flag parse error into a one-line message and exit code 2.
func usageError(_ *cli.Context, err error, _ bool) error {
	return cli.Exit(err.Error(), exitUsage)
}

// flagError is a one-line error naming a flag, with exit code 2.
func flagError(flag string, format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("--%s: %s", flag, fmt.Sprintf(format, args...)), exitUsage)
}

// logFlags are shared by agent and dev.
func logFlags(defaultLevel string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "log-level", Value: defaultLevel, Usage: "debug, info, warn or error", EnvVars: []string{"DISTROD_LOG_LEVEL"}},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text or json", EnvVars: []string{"DISTROD_LOG_FORMAT"}},
	}
}

// newLogger builds the process logger from --log-level and --log-format.
func newLogger(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, flagError("log-level", "unknown level %q (want debug, info, warn or error)", c.String("log-level"))
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, flagError("log-format", "unknown format %q (want text or json)", c.String("log-format"))
	}
}
