package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// latencyStats summarises latencies in milliseconds.
type latencyStats struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// benchReport is everything one run measured; --json prints it as is.
type benchReport struct {
	Date        string           `json:"date"`
	CPUs        int              `json:"cpus"`
	Nodes       []string         `json:"nodes"`
	Spawned     bool             `json:"spawned"`
	Config      benchConfigOut   `json:"config"`
	Register    opResult         `json:"register"`
	Beats       opResult         `json:"beats"`
	BeatsLost   int64            `json:"beatsUnknownInstance"`
	Visibility  visibilityResult `json:"visibility"`
	Converge    convergeResult   `json:"converge"`
	List        listResult       `json:"list"`
	Verify      verifyResult     `json:"verify"`
	Join        *joinResult      `json:"join,omitempty"`
	Memory      []memNode        `json:"memory"`
	Unhealthy   float64          `json:"unhealthyInstancesAtEnd"`
	Interrupted bool             `json:"interrupted,omitempty"`
	Warnings    []string         `json:"warnings,omitempty"`
}

type benchConfigOut struct {
	Duration            string  `json:"duration"`
	MaxRequests         int     `json:"maxRequests"`
	Rate                float64 `json:"rate"`
	Concurrency         int     `json:"concurrency"`
	Services            int     `json:"services"`
	InstancesPerService int     `json:"instancesPerService"`
	SampleEvery         int     `json:"sampleEvery"`
	Prefix              string  `json:"servicePrefix"`
}

func lat(l latencyStats) string {
	if l.N == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f / %.2f / %.2f ms", l.P50, l.P99, l.Max)
}

func kb(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.2f KB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}

// printTable writes the human-readable report: figure, value, target.
func (r *benchReport) printTable(w io.Writer) {
	rate := "unlimited"
	if r.Config.Rate > 0 {
		rate = fmt.Sprintf("%.0f/s", r.Config.Rate)
	}
	mode := "given"
	if r.Spawned {
		mode = "spawned"
	}
	fmt.Fprintf(w, "\ndistrod bench · %s · %d CPUs · %d nodes (%s) · rate %s · concurrency %d · %d services × %d\n\n",
		r.Date, r.CPUs, len(r.Nodes), mode, rate, r.Config.Concurrency, r.Config.Services, r.Config.InstancesPerService)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(fig, val, target string) { fmt.Fprintf(tw, "%s\t%s\t%s\n", fig, val, target) }
	row("FIGURE", "VALUE", "TARGET")
	row("registrations", fmt.Sprintf("%d ok, %d errors in %.2f s", r.Register.OK, r.Register.Errors, r.Register.Seconds), "")
	row("registration throughput", fmt.Sprintf("%.0f/s", r.Register.PerSecond), "≥ 20 000/s (unlimited rate)")
	row("registration latency p50/p99/max", lat(r.Register.Latency), "")
	v := r.Visibility
	row("register → visible on all nodes p50/p99/max", lat(v.Latency),
		"p99 ≤ 50 ms at 1 000/s")
	row("  samples visible / sampled", fmt.Sprintf("%d / %d (timed out %d, skipped %d)", v.Visible, v.Sampled, v.TimedOut, v.Dropped), "")
	row("beats", fmt.Sprintf("%d ok, %d errors, %d unknown instance, %.0f/s", r.Beats.OK, r.Beats.Errors, r.BeatsLost, r.Beats.PerSecond), "")
	row("beat latency p50/p99/max", lat(r.Beats.Latency), "")
	conv := "NOT converged"
	if r.Converge.Converged {
		conv = fmt.Sprintf("%.2f s after the load", r.Converge.Seconds)
	}
	row("convergence (equal digests)", fmt.Sprintf("%s; instances per node %v", conv, r.Converge.Instances), "")
	row(fmt.Sprintf("/instance/list on %s (%d instances)", r.List.Node, r.List.Hosts),
		fmt.Sprintf("%.0f/s, %d errors, p50/p99 %.2f / %.2f ms", r.List.PerSecond, r.List.Errors, r.List.Latency.P50, r.List.Latency.P99), "≥ 50 000/s")
	vv := r.Verify
	services := 0
	if len(r.Converge.Services) > 0 {
		services = r.Converge.Services[0]
	}
	mism := "unknown"
	if vv.MismatchedPartitions >= 0 {
		mism = fmt.Sprintf("%.0f", vv.MismatchedPartitions)
	}
	row("verify per peer per round (steady)", fmt.Sprintf("%s (%s; %d services; mismatched partitions %s)",
		kb(vv.PerPeerPerRound), vv.Method, services, mism), "≤ 5 KB at 10 000 services")
	if j := r.Join; j != nil {
		if j.Error != "" {
			row("new node ready", "error: "+j.Error, "≤ 2 s for 100 000 instances")
		} else {
			row("new node ready (exec → /health 200)", fmt.Sprintf("%.3f s; snapshot %.3f s, %s; %d instances, %d services",
				j.ReadySeconds, j.SnapshotSeconds, kb(j.SnapshotBytes), j.Instances, j.Services), "≤ 2 s for 100 000 instances")
		}
	}
	for _, m := range r.Memory {
		val := fmt.Sprintf("%.0f B RSS, %.0f B heap (RSS %s → %s, %d instances)", m.RSSPerInstance, m.HeapPerInstance,
			kb(float64(m.RSSBefore)), kb(float64(m.RSSAfter)), m.Instances)
		if m.Error != "" {
			val += " [" + m.Error + "]"
		}
		row("memory per instance on "+m.Node, val, "≤ 500 B")
	}
	_ = tw.Flush()
	if vv.Note != "" {
		fmt.Fprintf(w, "\nverify: %s\n", vv.Note)
	}
	if len(r.Memory) > 0 {
		fmt.Fprintf(w, "memory: (after - before the load) / instances on the node; RSS from %s, heap from go_memstats_heap_inuse_bytes\n", r.Memory[0].Source)
	}
	for _, wmsg := range r.Warnings {
		fmt.Fprintln(w, "warning: "+wmsg)
	}
	if r.Register.LastError != "" {
		fmt.Fprintln(w, "last registration error: "+strings.TrimSpace(r.Register.LastError))
	}
	if r.Beats.LastError != "" {
		fmt.Fprintln(w, "last beat error: "+strings.TrimSpace(r.Beats.LastError))
	}
}
