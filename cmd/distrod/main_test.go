package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/distrod/distrod/daemon"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAgentBadFlagsExit2NamingTheFlag(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := func() []string { return []string{"--http-addr", "127.0.0.1:0", "--gossip-addr", "127.0.0.1:0"} }
	for _, tc := range []struct {
		args []string
		env  map[string]string
		flag string
	}{
		{args: []string{"--http-addr", "nohostport"}, flag: "--http-addr"},
		{args: []string{"--gossip-addr", "127.0.0.1:99999"}, flag: "--gossip-addr"},
		{args: []string{"--gossip-addr", "localhost:7946"}, flag: "--gossip-addr"},
		{args: []string{"--advertise", "1.2.3.4"}, flag: "--advertise"},
		{args: []string{"--join", "nope"}, flag: "--join"},
		{args: []string{"--profile", "moon"}, flag: "--profile"},
		{args: []string{"--secret", ""}, flag: "--secret"},
		{args: []string{"--log-level", "loud"}, flag: "--log-level"},
		{args: []string{"--log-format", "xml"}, flag: "--log-format"},
		{args: []string{"--partitions", "0"}, flag: "--partitions"},
		{args: []string{"--probe-interval", "-1s"}, flag: "--probe-interval"},
		{args: []string{"--max-clock-skew", "0s"}, flag: "--max-clock-skew"},
		{args: []string{"--verify-interval", "10s", "--tombstone-ttl", "10s"}, flag: "--tombstone-ttl"},
		{args: []string{"--partitions", "many"}, flag: "partitions"},
		{args: []string{"--no-such-flag"}, flag: "no-such-flag"},
		{args: append(free(), "--http-addr", taken.Addr().String()), flag: "--http-addr"},
		{env: map[string]string{"DISTROD_PROFILE": "moon"}, flag: "--profile"},
		// Knobs that had no flag before the one configuration tree.
		{args: []string{"--failure-hold", "-1s"}, flag: "--failure-hold"},
		{args: []string{"--settle-hold", "-1s"}, flag: "--settle-hold"},
		{args: []string{"--stall-hold", "-1s"}, flag: "--stall-hold"},
		{args: []string{"--list-cache-bytes", "-1"}, flag: "--list-cache-bytes"},
		{args: []string{"--max-subscribers", "0"}, flag: "--max-subscribers"},
		{args: []string{"--subscriber-ttl", "5s"}, flag: "--subscriber-ttl"},
		{args: []string{"--bootstrap-wait", "0s"}, flag: "--bootstrap-wait"},
		{args: []string{"--max-batch", "0"}, flag: "--max-batch"},
		{args: []string{"--remove-grace", "-1s"}, flag: "--remove-grace"},
		{args: []string{"--remove-grace", "10m"}, flag: "--remove-grace"}, // beyond --tombstone-ttl 5m
		{args: []string{"--sync-retry-max", "100ms"}, flag: "--sync-retry-max"},
		{args: []string{"--join-retry-max", "100ms"}, flag: "--join-retry-max"},
		{args: []string{"--forward-dial-timeout", "10s"}, flag: "--forward-dial-timeout"},
		{args: []string{"--max-peer-body-size", "1"}, flag: "--max-peer-body-size"},
		{args: []string{"--read-timeout", "0s"}, flag: "--read-timeout"},
		{env: map[string]string{"DISTROD_MAX_BATCH": "-5"}, flag: "--max-batch"},
	} {
		t.Run(strings.Join(tc.args, " ")+mapString(tc.env), func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"distrod", "agent", "--name", "t"}, tc.args...)
			code := run(args, &stdout, &stderr)
			msg := strings.TrimSpace(stderr.String())
			if code != exitUsage {
				t.Errorf("exit code %d, want %d (stderr %q)", code, exitUsage, msg)
			}
			if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, tc.flag) {
				t.Errorf("stderr %q: want one line naming %s", msg, tc.flag)
			}
		})
	}
}

func mapString(m map[string]string) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, " ")
}

func TestAgentDefaultsComeFromDaemon(t *testing.T) {
	d := daemon.DefaultConfig()
	cmd := agentCommand()
	for _, f := range cmd.Flags {
		switch f.Names()[0] {
		case "http-addr":
			if got := f.(interface{ GetValue() string }).GetValue(); got != d.HTTPAddr {
				t.Errorf("--http-addr default %q, want %q", got, d.HTTPAddr)
			}
		case "gossip-addr":
			if got := f.(interface{ GetValue() string }).GetValue(); got != d.Membership.BindAddr {
				t.Errorf("--gossip-addr default %q, want %q", got, d.Membership.BindAddr)
			}
		}
	}
}

func TestClientCommandsMissingFlagExit2(t *testing.T) {
	for _, args := range [][]string{
		{"distrod", "instances"},
		{"distrod", "register", "--service", "s", "--ip", "1.2.3.4"},
		{"distrod", "deregister", "--service", "s", "--port", "80"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", args, code, exitUsage, stderr.String())
		}
	}
}
