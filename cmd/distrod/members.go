package main

import (
	"fmt"
	"net/http"
	"text/tabwriter"

	"github.com/distrod/distrod/daemon"
	"github.com/urfave/cli/v2"
)

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:   "members",
		Usage:  "print the member table as one node sees it",
		Flags:  []cli.Flag{httpFlag(), timeoutFlag()},
		Action: runMembers,
	}
}

func runMembers(c *cli.Context) error {
	client := &http.Client{Timeout: c.Duration("timeout")}
	var resp daemon.MembersResponse
	if err := getJSON(client, c.String("http"), "/v1/cluster/members", &resp); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tREADY\tHTTP\tGOSSIP\t")
	for _, m := range resp.Members {
		name := m.Name
		if m.Self {
			name += " *"
		}
		fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t\n", name, m.State, m.Ready, m.HTTPAddr, m.GossipAddr)
	}
	return tw.Flush()
}
