package main

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/distrod/distrod/daemon"
	"github.com/distrod/distrod/membership"
	"github.com/urfave/cli/v2"
)

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "ask every member for its distro status and say whether the cluster converged",
		Description: "Prints one row per member and a verdict: `converged` (exit 0) when every ready node\n" +
			"reports the same digest, `diverged` (exit 1) otherwise, naming the nodes that differ.",
		Flags:  []cli.Flag{httpFlag(), timeoutFlag()},
		Action: runStatus,
	}
}

// memberStatus is one member's row.
type memberStatus struct {
	member membership.Member
	status daemon.DistroStatusResponse
	err    error
}

func runStatus(c *cli.Context) error {
	client := &http.Client{Timeout: c.Duration("timeout")}
	var members daemon.MembersResponse
	if err := getJSON(client, c.String("http"), "/v1/cluster/members", &members); err != nil {
		return cli.Exit(err.Error(), 1)
	}
	rows := make([]memberStatus, len(members.Members))
	var wg sync.WaitGroup
	for i, m := range members.Members {
		rows[i].member = m
		if m.State != membership.StateAlive {
			continue
		}
		wg.Add(1)
		go func(r *memberStatus) {
			defer wg.Done()
			r.err = getJSON(client, r.member.HTTPAddr, "/v1/distro/status", &r.status)
		}(&rows[i])
	}
	wg.Wait()

	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tREADY\tRING\tKEYS\tSERVICES\tINSTANCES\tDIGEST\t")
	for _, r := range rows {
		switch {
		case r.member.State != membership.StateAlive:
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t\n", r.member.Name, r.member.State)
		case r.err != nil:
			fmt.Fprintf(tw, "%s\t%s\t?\t?\t?\t?\t?\tunreachable: %v\t\n", r.member.Name, r.member.State, r.err)
		default:
			s := r.status
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%d\t%d\t%d\t%s\t\n", r.member.Name, r.member.State, s.Ready,
				short(s.RingVersion), s.Keys, s.Services, s.Instances, s.Digest)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verdict, ok := convergence(rows)
	fmt.Fprintln(c.App.Writer, verdict)
	if !ok {
		return cli.Exit("", 1)
	}
	return nil
}

// convergence is the verdict line: converged when every alive member answered
// and every ready one reports the same digest.
func convergence(rows []memberStatus) (string, bool) {
	var unreachable []string
	byDigest := map[string][]string{}
	for _, r := range rows {
		switch {
		case r.member.State != membership.StateAlive:
		case r.err != nil:
			unreachable = append(unreachable, r.member.Name)
		case r.status.Ready:
			byDigest[r.status.Digest] = append(byDigest[r.status.Digest], r.member.Name)
		}
	}
	var reasons []string
	if len(unreachable) > 0 {
		reasons = append(reasons, "unreachable: "+strings.Join(unreachable, ", "))
	}
	if len(byDigest) == 0 {
		reasons = append(reasons, "no ready node")
	}
	if len(byDigest) > 1 {
		digests := make([]string, 0, len(byDigest))
		for d := range byDigest {
			digests = append(digests, d)
		}
		sort.Strings(digests)
		var groups []string
		for _, d := range digests {
			groups = append(groups, fmt.Sprintf("%s has %s", strings.Join(byDigest[d], ", "), d))
		}
		reasons = append(reasons, "digests differ: "+strings.Join(groups, "; "))
	}
	if len(reasons) > 0 {
		return "diverged (" + strings.Join(reasons, "; ") + ")", false
	}
	for d, nodes := range byDigest {
		return fmt.Sprintf("converged (%d ready nodes, digest %s)", len(nodes), d), true
	}
	return "converged", true
}

// short abbreviates a ring version for the table.
func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}
