package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
		Description: "Asks the node at --http for its members, then every live member (and every member\n" +
			"another member lists as live) for its own member list and distro status. Prints one row per\n" +
			"member, dead and left ones included, and a verdict: `converged` (exit 0) when every live member\n" +
			"answered, is ready, and all report one ring version, one digest and the same member list;\n" +
			"`diverged (...)` (exit 1) otherwise, naming each difference.",
		Flags:  []cli.Flag{httpFlag(), timeoutFlag()},
		Action: runStatus,
	}
}

// maxSurveyed bounds how many members status asks, whatever the member lists
// it receives claim: they come from the network.
const maxSurveyed = 1024

// surveyParallel bounds the requests status has in flight at once.
const surveyParallel = 16

// nodeAnswer is what one member said when asked at its own HTTP address.
type nodeAnswer struct {
	name    string                      // the member's name as the views list it
	addr    string                      // the HTTP address it was asked at
	members []membership.Member         // its member list, self included
	status  daemon.DistroStatusResponse // its distro status
	err     error                       // why it did not answer; members and status are then empty
}

// survey is everything status collected: the member list of the node named by
// --http, and the answer of every member that some view lists as live.
type survey struct {
	first []membership.Member
	nodes []nodeAnswer
}

func runStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return cli.Exit(fmt.Sprintf("status: unexpected argument %q", c.Args().First()), exitUsage)
	}
	if c.String("http") == "" {
		return flagError("http", "empty address (want host:port of any member)")
	}
	if c.Duration("timeout") <= 0 {
		return flagError("timeout", "%s is not positive", c.Duration("timeout"))
	}
	client := &http.Client{Timeout: c.Duration("timeout")}
	s, err := collect(client, c.String("http"))
	if err != nil {
		return cli.Exit(err.Error(), exitDiverged)
	}
	if err := printSurvey(c.App.Writer, s); err != nil {
		return err
	}
	v := judge(s)
	fmt.Fprintln(c.App.Writer, v)
	if code := v.exitCode(); code != 0 {
		return cli.Exit("", code)
	}
	return nil
}

// collect asks addr for its member list, then every member some answer lists
// as live for its own list and status, until no answer names a new one.
func collect(client *http.Client, addr string) (survey, error) {
	var first daemon.MembersResponse
	if err := getJSON(client, addr, "/v1/cluster/members", &first); err != nil {
		return survey{}, err
	}
	s := survey{first: first.Members}
	asked := map[string]bool{}
	pending := unasked(first.Members, asked)
	for len(pending) > 0 {
		answers := askAll(client, pending)
		s.nodes = append(s.nodes, answers...)
		pending = nil
		for _, a := range answers {
			pending = append(pending, unasked(a.members, asked)...)
		}
	}
	return s, nil
}

// unasked returns the live members of view not yet in asked, and adds them;
// past maxSurveyed they are returned with an error instead of being asked.
func unasked(view []membership.Member, asked map[string]bool) []nodeAnswer {
	var out []nodeAnswer
	for _, m := range view {
		if !live(m.State) || asked[m.Name] {
			continue
		}
		a := nodeAnswer{name: m.Name, addr: m.HTTPAddr}
		if len(asked) >= maxSurveyed {
			a.err = fmt.Errorf("not asked: more than %d live members", maxSurveyed)
		}
		asked[m.Name] = true
		out = append(out, a)
	}
	return out
}

// askAll fills in each answer that has no error yet, a bounded number at a time.
func askAll(client *http.Client, nodes []nodeAnswer) []nodeAnswer {
	sem := make(chan struct{}, surveyParallel)
	var wg sync.WaitGroup
	for i := range nodes {
		if nodes[i].err != nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(a *nodeAnswer) {
			defer func() { <-sem; wg.Done() }()
			a.err = ask(client, a)
		}(&nodes[i])
	}
	wg.Wait()
	return nodes
}

// ask gets a's member list and distro status from a.addr.
func ask(client *http.Client, a *nodeAnswer) error {
	if a.addr == "" {
		return errors.New("no HTTP address in its metadata")
	}
	var ms daemon.MembersResponse
	if err := getJSON(client, a.addr, "/v1/cluster/members", &ms); err != nil {
		return transportCause(err)
	}
	if err := getJSON(client, a.addr, "/v1/distro/status", &a.status); err != nil {
		return transportCause(err)
	}
	a.members = ms.Members
	return nil
}

// transportCause drops net/http's `Get "url":` wrapping: the verdict names the
// address already.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// live tells whether a member takes part in the cluster: membership treats a
// suspect member like an alive one until it is declared dead.
func live(s membership.State) bool {
	return s == membership.StateAlive || s == membership.StateSuspect
}

// verdict is judge's outcome.
type verdict struct {
	ready      int      // members that answered ready
	ring       string   // the one ring version, when converged
	digest     string   // the one digest, when converged
	diffs      []string // each difference; none means converged
	notCounted []string // members no answer lists as live, "n4 (dead)"
}

func (v verdict) converged() bool { return len(v.diffs) == 0 }

// exitCode is status's exit code for v.
func (v verdict) exitCode() int {
	if v.converged() {
		return 0
	}
	return exitDiverged
}

func (v verdict) String() string {
	var b strings.Builder
	if v.converged() {
		fmt.Fprintf(&b, "converged (%d ready nodes, ring %s, digest %s)", v.ready, v.ring, v.digest)
	} else {
		fmt.Fprintf(&b, "diverged (%s)", strings.Join(v.diffs, "; "))
	}
	if len(v.notCounted) > 0 {
		fmt.Fprintf(&b, ", not counting %s", strings.Join(v.notCounted, ", "))
	}
	return b.String()
}

// judge decides from the collected answers alone. Converged means every
// member some view lists as live answered, under the name it is listed as,
// is ready, and all report one ring version, one digest and the same live
// members at the same addresses. Anything else is a difference, named.
func judge(s survey) verdict {
	var v verdict
	var unreachable, misnamed, loading, noRing []string
	rings := map[string][]string{}
	digests := map[string][]string{}
	views := map[string][]string{}
	addrs := map[string]map[string][]string{} // member → address → nodes that see it there
	for _, a := range s.nodes {
		if a.err != nil {
			unreachable = append(unreachable, fmt.Sprintf("%s (%s: %v)", a.name, a.addr, a.err))
			continue
		}
		if a.status.Node != a.name {
			misnamed = append(misnamed, fmt.Sprintf("%s at %s answers as %q", a.name, a.addr, a.status.Node))
		}
		var names []string
		for _, m := range a.members {
			if !live(m.State) {
				continue
			}
			names = append(names, m.Name)
			if addrs[m.Name] == nil {
				addrs[m.Name] = map[string][]string{}
			}
			addrs[m.Name][m.HTTPAddr] = append(addrs[m.Name][m.HTTPAddr], a.name)
		}
		sort.Strings(names)
		view := "{" + strings.Join(names, ",") + "}"
		views[view] = append(views[view], a.name)
		switch {
		case !a.status.Ready:
			loading = append(loading, a.name)
		case a.status.RingVersion == "":
			v.ready++
			noRing = append(noRing, a.name)
		default:
			v.ready++
			rings[a.status.RingVersion] = append(rings[a.status.RingVersion], a.name)
			digests[a.status.Digest] = append(digests[a.status.Digest], a.name)
		}
	}
	add := func(label string, names []string) {
		if len(names) > 0 {
			sort.Strings(names)
			v.diffs = append(v.diffs, label+": "+strings.Join(names, ", "))
		}
	}
	add("unreachable", unreachable)
	add("name", misnamed)
	add("loading", loading)
	add("no ring", noRing)
	if len(rings) > 1 {
		v.diffs = append(v.diffs, "ring: "+groups(rings, "has", "have"))
	}
	if len(digests) > 1 {
		v.diffs = append(v.diffs, "digest: "+groups(digests, "has", "have"))
	}
	if len(views) > 1 {
		v.diffs = append(v.diffs, "members: "+groups(views, "sees", "see"))
	}
	var moved []string
	for name, at := range addrs {
		if len(at) > 1 {
			moved = append(moved, "address of "+name+": "+groups(at, "sees", "see"))
		}
	}
	sort.Strings(moved)
	v.diffs = append(v.diffs, moved...)
	if v.ready == 0 {
		v.diffs = append(v.diffs, "no ready node")
	}
	for ring := range rings {
		v.ring = ring
	}
	for digest := range digests {
		v.digest = digest
	}
	seenLive := map[string]bool{}
	for _, a := range s.nodes {
		seenLive[a.name] = true
	}
	for _, m := range listedMembers(s) {
		if !seenLive[m.Name] {
			v.notCounted = append(v.notCounted, fmt.Sprintf("%s (%s)", m.Name, m.State))
		}
	}
	return v
}

// groups renders value → nodes as "n1 has X, {n2,n3} have Y", ordered by node name.
func groups(byValue map[string][]string, one, many string) string {
	type group struct{ first, text string }
	var gs []group
	for value, nodes := range byValue {
		sort.Strings(nodes)
		if value == "" {
			value = `""`
		}
		text := nodes[0] + " " + one + " " + value
		if len(nodes) > 1 {
			text = "{" + strings.Join(nodes, ",") + "} " + many + " " + value
		}
		gs = append(gs, group{first: nodes[0], text: text})
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].first < gs[j].first })
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = g.text
	}
	return strings.Join(parts, ", ")
}

// listedMembers is every member any view lists, once, sorted by name, with its
// state as the first view listing it has it (the --http node's first).
func listedMembers(s survey) []membership.Member {
	seen := map[string]bool{}
	var out []membership.Member
	addView := func(view []membership.Member) {
		for _, m := range view {
			if !seen[m.Name] {
				seen[m.Name] = true
				out = append(out, m)
			}
		}
	}
	addView(s.first)
	for _, a := range s.nodes {
		addView(a.members)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// printSurvey writes one row per member any view lists, dead and left included.
func printSurvey(w io.Writer, s survey) error {
	answers := map[string]nodeAnswer{}
	for _, a := range s.nodes {
		answers[a.name] = a
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tREADY\tRING\tKEYS\tSERVICES\tINSTANCES\tDIGEST\t")
	for _, m := range listedMembers(s) {
		a, asked := answers[m.Name]
		switch {
		case !asked:
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t\n", m.Name, m.State)
		case a.err != nil:
			fmt.Fprintf(tw, "%s\t%s\t?\t?\t?\t?\t?\tunreachable: %v\t\n", m.Name, m.State, a.err)
		default:
			st := a.status
			fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%d\t%d\t%d\t%s\t\n", m.Name, m.State, st.Ready,
				short(st.RingVersion), st.Keys, st.Services, st.Instances, st.Digest)
		}
	}
	return tw.Flush()
}

// short abbreviates a ring version for the table.
func short(v string) string {
	if len(v) > 8 {
		return v[:8]
	}
	return v
}
